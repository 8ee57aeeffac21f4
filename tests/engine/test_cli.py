"""`fers` on real GeoTIFFs: the published RX figures and clean errors."""
import os

import numpy as np
import pytest

from conftest import PUBLISHED_RX, fers, mat_scene, numpy_rx, pairwise_auc, read_geotiff


@pytest.mark.parametrize("name,bands,published", PUBLISHED_RX)
def test_fers_detect_then_evaluate_reproduces_published_rx(scene_tifs, tmp_path, name, bands, published):
    tif, gt = scene_tifs[name]
    out = tmp_path / f"{name}_{bands}.tif"
    r = fers("-q", "detect", tif, out, "--bands", bands, "--strategy", "none", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out)
    r = fers("-q", "evaluate", out, gt)
    assert r.returncode == 0, r.stderr
    assert abs(float(r.stdout) - published) <= 1e-4
    scores, wkt, geotransform, _ = read_geotiff(out)
    assert "UTM zone 11N" in wkt and geotransform[1] == 7.1
    assert abs(pairwise_auc(scores[0], mat_scene(name)[1]) - published) <= 1e-4


@pytest.mark.parametrize("name", ["abu-airport-4", "abu-urban-3"])
def test_all_bands_matches_independent_numpy_rx(scene_tifs, tmp_path, name):
    # the issue also asks for these scenes with all bands; the README's table only lists 100 bands,
    # so the reference is a textbook per-pixel RX computed here (np.cov + np.linalg.pinv)
    tif, gt = scene_tifs[name]
    r = fers("-q", "detect", tif, tmp_path / "o.tif", "--bands", 0)
    assert r.returncode == 0, r.stderr
    cube, truth = mat_scene(name)
    ref = pairwise_auc(numpy_rx(cube.reshape(-1, cube.shape[2])), truth)
    got = float(fers("-q", "evaluate", tmp_path / "o.tif", gt).stdout)
    assert abs(got - ref) <= 1e-4


def test_band_list_and_json(scene_tifs, tmp_path):
    tif, gt = scene_tifs["abu-airport-2"]
    r = fers("-q", "detect", tif, tmp_path / "o.tif", "--band-list", "1-50,60", "--json")
    assert r.returncode == 0, r.stderr
    import json

    info = json.loads(r.stdout)
    assert info["bands"] == 51 and info["rx_rank"] == 51
    from osgeo import gdal

    assert gdal.Open(str(tmp_path / "o.tif")).GetMetadataItem("FERS_BANDS") == "1-50,60"


def test_evaluate_writes_roc_png_and_html(scene_tifs, tmp_path):
    tif, gt = scene_tifs["abu-airport-2"]
    fers("-q", "detect", tif, tmp_path / "o.tif", "--bands", 200)
    for ext, magic in ((".png", b"\x89PNG"), (".html", b"<!DOCTYPE html>")):
        r = fers("-q", "evaluate", tmp_path / "o.tif", gt, "--roc", tmp_path / f"roc{ext}")
        assert r.returncode == 0, r.stderr
        assert open(tmp_path / f"roc{ext}", "rb").read(len(magic)) == magic


def test_evaluate_json_is_strict_json_even_for_a_binary_map(scene_tifs, tmp_path):
    """The ground truth scored against itself: AUC 1, every background pixel at the minimum, so AUC(F,τ) = 0 and
    AUC_SNPR is infinite; --json says null there (strict JSON parsers reject Infinity)."""
    import json

    _, gt = scene_tifs["abu-airport-2"]
    r = fers("-q", "evaluate", gt, gt, "--json")
    assert r.returncode == 0, r.stderr

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    out = json.loads(r.stdout, parse_constant=refuse)
    assert out["auc"] == 1.0 and out["roc3d"]["auc_ft"] == 0.0 and out["roc3d"]["auc_dt"] == 1.0
    assert out["roc3d"]["auc_snpr"] is None and out["roc3d"]["auc_odp"] == 2.0


@pytest.mark.parametrize("args,message", [
    (["detect", "{tif}", "{out}", "--bands", "300"], "asks for the first 300 bands, but the raster has only 205"),
    (["detect", "/etc/hostname", "{out}"], "is not a raster GDAL can read"),
    (["detect", "{tif}", "{tif}"], "output path is the input itself"),
    (["detect", "{tif}", "/nonexistent/dir/o.tif"], "output folder does not exist"),
    (["detect", "{tif}", "{out}", "--strategy", "spectral", "--bands", "37"], "no bundled model for 37 bands"),
    (["detect", "{tif}", "{out}", "--device", "cuda"], "no CUDA GPU"),
    (["detect", "{tif}", "{out}", "--rx-trim", "0.6"], "the RX trim must be a fraction of the pixels in [0, 0.5)"),
    (["evaluate", "{tif}", "{gt}"], "has 205 bands; a score map has one"),
])
def test_errors_are_one_clear_line_and_leave_no_output(scene_tifs, tmp_path, args, message):
    tif, gt = scene_tifs["abu-airport-2"]
    out = tmp_path / "o.tif"
    r = fers(*[a.format(tif=tif, out=out, gt=gt) for a in args])
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.endswith(".partial.tif")]
