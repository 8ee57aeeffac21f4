"""Batched scoring of many small scenes = scoring each on its own (score_scene)."""
import numpy as np
import pytest

from conftest import mat_scene
from fers.batched import score_batch, seconds_per_scene
from fers.checkpoint import load_model
from fers.pipeline import score_scene
from fers.preprocess import scale_cube


@pytest.fixture(scope="module")
def chips():
    """Six real 64×64×100 chips from two evaluation scenes, each scaled on its own (SPEC §0)."""
    out = []
    for name in ("abu-airport-2", "abu-airport-4"):
        cube = np.moveaxis(mat_scene(name)[0][:, :, :100], 2, 0).astype(np.float32)
        for r, c in ((0, 0), (36, 36), (0, 36)):
            chip = np.ascontiguousarray(cube[:, r:r + 64, c:c + 64])
            out.append(scale_cube(chip, np.ones((64, 64), bool))[0])
    return np.stack(out)


@pytest.mark.parametrize("strategy", ["none", "spectral", "spatial", "additive", "multiplicative"])
def test_batch_equals_one_scene_at_a_time(chips, strategy):
    model = load_model("fers-aviris-100") if strategy != "none" else None
    batch = score_batch(chips, strategy, model)
    valid = np.ones((64, 64), bool)
    for i, chip in enumerate(chips):
        single, _ = score_scene(chip, valid, strategy, model=model, rx_trim=0.0)  # score_batch: plain RX
        # float32 features, RX in float64 on ill-conditioned covariances: agreement to float rounding
        np.testing.assert_allclose(batch[i], single, rtol=5e-3, atol=1e-4 * float(single.max()))


def test_seconds_per_scene_is_measured(chips):
    s = seconds_per_scene(load_model("fers-aviris-100"), "additive", "cpu", cubes=chips, repeat=1)
    assert 0 < s < 5
