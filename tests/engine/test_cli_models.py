"""`fers detect --model` with the authors' published checkpoints, on GeoTIFF input."""
import os

import numpy as np
import pytest

from conftest import WEIGHTS, fers, mat_scene, pairwise_auc, read_geotiff

# ../shared/data/README.md: RX(H + F_spe) with the authors' checkpoints (first C bands)
PUBLISHED_SPECTRAL = [
    ("abu-airport-1", 200, "aviris-200bands", 0.9489), ("abu-airport-2", 200, "aviris-200bands", 0.9871),
    ("abu-airport-3", 200, "aviris-200bands", 0.9738), ("abu-urban-4", 200, "aviris-200bands", 0.9754),
    ("abu-urban-5", 200, "aviris-200bands", 0.9697), ("abu-airport-1", 100, "aviris_ng-100bands", 0.9372),
    ("abu-airport-4", 100, "aviris_ng-100bands", 0.9752), ("abu-urban-3", 100, "aviris_ng-100bands", 0.9737),
]


@pytest.mark.parametrize("name,bands,ckpt,published", PUBLISHED_SPECTRAL)
def test_authors_checkpoint_reproduces_published_spectral_auc(scene_tifs, tmp_path, name, bands, ckpt, published):
    tif, gt = scene_tifs[name]
    out = tmp_path / "spectral.tif"
    # BANDS left at 0: the model decides (its band count); the result must be the same as --bands N
    r = fers("-q", "detect", tif, out, "--strategy", "spectral", "--model",
             os.path.join(WEIGHTS, "fers-reference", ckpt), "--device", "cpu", "--rx-trim", "0")  # the paper's RX
    assert r.returncode == 0, r.stderr
    scores, wkt, _, _ = read_geotiff(out)
    assert "UTM zone 11N" in wkt
    auc = pairwise_auc(scores[0], mat_scene(name)[1])
    assert abs(auc - published) <= 5e-4, auc
    r = fers("-q", "evaluate", out, gt)
    assert abs(float(r.stdout) - auc) < 1e-6  # printed with 6 decimals


def test_model_band_mismatch_and_missing_branch_are_clear(scene_tifs, tmp_path):
    tif, _ = scene_tifs["abu-airport-1"]
    model = os.path.join(WEIGHTS, "fers-reference", "aviris_ng-100bands")
    r = fers("detect", tif, tmp_path / "o.tif", "--strategy", "spectral", "--model", model, "--bands", "50")
    assert r.returncode == 2 and "trained on 100 bands, but 50 are selected" in r.stderr
    r = fers("detect", tif, tmp_path / "o.tif", "--strategy", "additive", "--model", model)
    assert r.returncode == 2 and "needs the spatial branch (Spa-FEN)" in r.stderr
    r = fers("detect", tif, tmp_path / "o.tif", "--strategy", "spectral", env={"FERS_MODELS_DIR": str(tmp_path)})
    assert r.returncode == 2 and "no bundled model for this raster (bundled: none installed)" in r.stderr
    r = fers("detect", tif, tmp_path / "o.tif", "--strategy", "spectral", "--model", tmp_path / "none.pt")
    assert r.returncode == 2 and "not found" in r.stderr
    assert not (tmp_path / "o.tif").exists()


def test_without_a_model_the_bundled_one_for_the_band_count_is_used(scene_tifs, tmp_path):
    """The bundled default (resources/models) is picked by BANDS, said, and its map equals the explicit run."""
    tif, gt = scene_tifs["abu-airport-4"]
    auto = tmp_path / "auto.tif"
    r = fers("detect", tif, auto, "--strategy", "additive", "--bands", 100, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "no model given: using the bundled model fers-aviris-100 (100 bands)" in r.stderr
    explicit = tmp_path / "explicit.tif"
    r = fers("-q", "detect", tif, explicit, "--strategy", "additive", "--model", "fers-aviris-100", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(read_geotiff(auto)[0], read_geotiff(explicit)[0])
    r = fers("detect", tif, tmp_path / "x.tif", "--strategy", "spectral", "--bands", 50)
    assert r.returncode == 2 and "no bundled model for 50 bands (bundled: 100 bands (fers-aviris-100)" in r.stderr
    assert not (tmp_path / "x.tif").exists()
