"""Models through qgis_process: the authors' folders as MODEL, and a checkpoint fresh from fers:train_spectral."""
import os

import pytest

from conftest import WEIGHTS, mat_scene, pairwise_auc, qgis_process, read_geotiff, write_geotiff
from fers.checkpoint import read_checkpoint
from test_qgis_process import _results


@pytest.mark.parametrize("name,bands,ckpt,published", [
    ("abu-airport-2", 200, "aviris-200bands", 0.9871), ("abu-airport-4", 100, "aviris_ng-100bands", 0.9752)])
def test_detect_with_authors_checkpoint_folder(scene_tifs, tmp_path, name, bands, ckpt, published):
    tif, _ = scene_tifs[name]
    out = tmp_path / "s.tif"
    # RX_TRIM=0: the paper's plain RX, which the published figures used (the default trims 1%)
    r = qgis_process("run", "fers:detect", "--", f"INPUT={tif}", f"BANDS={bands}", "STRATEGY=spectral",
                     f"MODEL={os.path.join(WEIGHTS, 'fers-reference', ckpt)}", "DEVICE=cpu", "RX_TRIM=0",
                     f"OUTPUT={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    scores, wkt, _, _ = read_geotiff(out)
    assert "UTM zone 11N" in wkt
    from osgeo import gdal

    ds = gdal.Open(str(out))
    assert ds.GetMetadataItem("FERS_RX_TRIM") == "0"
    assert ds.GetRasterBand(1).GetDescription() == "anomaly score (spectral, rx)"
    assert abs(pairwise_auc(scores[0], mat_scene(name)[1]) - published) <= 5e-4


def test_train_spectral_then_detect_with_the_new_checkpoint(tmp_path):
    folder = tmp_path / "background"
    folder.mkdir()
    for n, bands in (("abu-urban-1", 16), ("abu-beach-3", 11), ("abu-urban-2", 16)):
        write_geotiff(folder / f"{n}.tif", mat_scene(n)[0][:, :, :bands])
    ckpt = tmp_path / "model.pt"
    # abu-beach-3 has 11 bands: it trains the 12-band model only through the band stretch (11 × 1.1 ≥ 12)
    r = qgis_process("run", "fers:train_spectral", "--", f"SOURCE_FOLDER={folder}", "BANDS=12", "EPOCHS=1",
                     "BATCH=2", "PATCH=32", "STEPS=2", "BACKBONE_WEIGHTS=random", "DEVICE=cpu", "BAND_STRETCH=0.1",
                     f"OUTPUT={ckpt}")
    assert r.returncode == 0, r.stdout + r.stderr
    res = _results(r.stdout)
    assert res["OUTPUT"] == str(ckpt) and res["BEST_EPOCH"] == "1" and os.path.exists(res["LOG"])
    data = read_checkpoint(str(ckpt))["meta"]["training"]["data"]
    assert data["stretched_scenes"] == {"abu-beach-3.tif": 11} and data["band_stretch"] == 0.1
    assert data["train_scenes"] == ["abu-beach-3.tif", "abu-urban-1.tif"] and data["skipped_scenes"] == []
    out = tmp_path / "map.tif"
    r = qgis_process("run", "fers:detect", "--", f"INPUT={folder / 'abu-urban-2.tif'}", "STRATEGY=spectral",
                     f"MODEL={ckpt}", f"OUTPUT={out}")
    assert r.returncode == 0, r.stdout + r.stderr
    scores, wkt, _, _ = read_geotiff(out)
    assert scores.shape == (1, 100, 100) and (scores >= 0).all() and "UTM zone 11N" in wkt


def test_train_spectral_offline_imagenet_is_a_clear_error(tmp_path):
    folder = tmp_path / "background"
    folder.mkdir()
    write_geotiff(folder / "a.tif", mat_scene("abu-urban-1")[0][:, :, :16])
    r = qgis_process("run", "fers:train_spectral", "--", f"SOURCE_FOLDER={folder}", "BANDS=12", "EPOCHS=1",
                     f"OUTPUT={tmp_path / 'm.pt'}", env={"TORCH_HOME": str(tmp_path / "hub")})
    text = r.stdout + r.stderr
    assert r.returncode != 0 and "offline" in text and "--backbone-weights random" in text
    assert "Traceback" not in text and not (tmp_path / "m.pt").exists()
