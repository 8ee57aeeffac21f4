"""The plugin through real `qgis_process` (our fers-qgis-process wrapper), offscreen."""
import os

import pytest

from conftest import PUBLISHED_RX, REPO, qgis_process, read_geotiff


def _results(stdout):
    out, on = {}, False
    for line in stdout.splitlines():
        if line.startswith("Results"):
            on = True
        elif on and ":\t" in line:
            k, v = line.split(":\t", 1)
            out[k.strip()] = v.strip()
    return out


def test_provider_lists_algorithms():
    r = qgis_process("list")
    assert r.returncode == 0, r.stderr
    assert "fers:detect" in r.stdout and "fers:evaluate" in r.stdout


def test_detect_help_has_contract_parameters():
    r = qgis_process("help", "fers:detect")
    assert r.returncode == 0, r.stderr
    for p in ("INPUT", "BANDS", "STRATEGY", "DETECTOR", "MODEL", "DEVICE", "OUTPUT"):
        assert p in r.stdout
    assert "multiplicative" in r.stdout and "additive" in r.stdout


@pytest.mark.parametrize("name,bands,published", [r for r in PUBLISHED_RX if r[1] == 200 or r[0] in ("abu-airport-4", "abu-urban-3")])
def test_qgis_process_reproduces_published_rx(scene_tifs, tmp_path, name, bands, published):
    tif, gt = scene_tifs[name]
    out = tmp_path / "score.tif"
    r = qgis_process("run", "fers:detect", "--", f"INPUT={tif}", f"BANDS={bands}", "STRATEGY=none", "DETECTOR=rx",
                     "DEVICE=cpu", f"OUTPUT={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _results(r.stdout)["OUTPUT"] == str(out)
    _, wkt, geotransform, _ = read_geotiff(out)
    assert "UTM zone 11N" in wkt and geotransform == (380000.0, 7.1, 0.0, 3760000.0, 0.0, -7.1)
    r = qgis_process("run", "fers:evaluate", "--", f"SCORE={out}", f"GROUND_TRUTH={gt}", f"ROC={tmp_path / 'roc.png'}")
    assert r.returncode == 0, r.stdout + r.stderr
    res = _results(r.stdout)
    assert abs(float(res["AUC"]) - published) <= 1e-4
    assert os.path.getsize(tmp_path / "roc.png") > 1000
    # the 3D-ROC areas: means of the min–max normalised scores (computed here with NumPy alone)
    from conftest import mat_scene

    s = read_geotiff(out)[0][0]
    truth = mat_scene(name)[1] > 0
    t = (s - s.min()) / (s.max() - s.min())
    assert float(res["AUC_DT"]) == pytest.approx(t[truth].mean(), abs=1e-9)
    assert float(res["AUC_FT"]) == pytest.approx(t[~truth].mean(), abs=1e-9)
    assert float(res["AUC_OD"]) == pytest.approx(float(res["AUC"]) + t[truth].mean() - t[~truth].mean(), abs=1e-9)


def test_error_is_a_message_not_a_traceback(scene_tifs, tmp_path):
    tif, _ = scene_tifs["abu-airport-2"]
    out = tmp_path / "o.tif"
    r = qgis_process("run", "fers:detect", "--", f"INPUT={tif}", "BANDS=999", f"OUTPUT={out}")
    assert r.returncode != 0
    text = r.stdout + r.stderr
    assert "asks for the first 999 bands, but the raster has only 205" in text
    assert "Traceback" not in text and not out.exists()


def test_demo_sample_is_georeferenced_and_detects():
    sample = os.path.join(REPO, "resources", "sample", "abu-airport-2.tif")
    _, wkt, geotransform, _ = read_geotiff(sample)
    assert "UTM zone 11N" in wkt


def test_a_large_map_from_qgis_carries_max_overviews(tmp_path):
    """A 1100×1030 map written through the plugin carries its overviews (QGIS draws large maps from them),
    the smallest level holding the map's highest score."""
    import numpy as np
    from osgeo import gdal

    from conftest import mat_scene, write_geotiff

    gdal.UseExceptions()
    big = np.tile(mat_scene("abu-airport-2")[0][:, :, :3].astype(np.float32), (11, 11, 1))[:1100, :1030]
    tif = write_geotiff(tmp_path / "big.tif", big)
    out = tmp_path / "map.tif"
    r = qgis_process("run", "fers:detect", "--", f"INPUT={tif}", "BANDS=0", "STRATEGY=none", "DETECTOR=rx",
                     "DEVICE=cpu", f"OUTPUT={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    ds = gdal.Open(str(out))  # kept: a band outlives no dataset in GDAL's bindings
    band = ds.GetRasterBand(1)
    assert [band.GetOverview(k).XSize for k in range(band.GetOverviewCount())] == [515, 258, 129]
    assert band.GetOverview(2).ReadAsArray().max() == band.ReadAsArray().max()
