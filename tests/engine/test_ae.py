"""AE detector (SPEC §3): seeded and repeatable, nodata-blind, no ground truth, sane on a real scene."""
import os

import numpy as np
import pytest
import torch

from conftest import RAW
from fers.detect.ae import ae_scores
from fers.errors import Cancelled, InputError
from fers.feedback import Feedback
from fers.io import open_source
from fers.metrics import roc_auc
from fers.preprocess import scale_cube


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synthetic():
    """12-band background with a few bright targets and a nodata block."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(12, 1)) * np.linspace(0.5, 1.5, 12)[:, None]
    cube = (base + 0.1 * rng.normal(size=(12, 24 * 30))).reshape(12, 24, 30).astype(np.float32)
    cube[:, 5, 7] += 2.0
    cube[:, 18, 22] -= 2.0
    valid = np.ones((24, 30), bool)
    valid[:4, -6:] = False
    return cube, valid


def test_seeded_repeatable_and_global_rng_untouched(synthetic):
    cube, valid = synthetic
    rng_before = torch.get_rng_state()
    a = ae_scores(cube, valid, iterations=10, seed=0)
    b = ae_scores(cube, valid, iterations=10, seed=0)
    assert torch.equal(rng_before, torch.get_rng_state())
    assert a.dtype == np.float32 and a.shape == valid.shape
    assert np.array_equal(a, b, equal_nan=True)  # bit-identical
    c = ae_scores(cube, valid, iterations=10, seed=1)
    assert not np.array_equal(a[valid], c[valid])


def test_nodata_is_nan_and_never_influences_the_valid_scores(synthetic):
    cube, valid = synthetic
    a = ae_scores(cube, valid, iterations=10, seed=0)
    assert np.isnan(a[~valid]).all() and np.isfinite(a[valid]).all() and (a[valid] >= 0).all()
    other = cube.copy()
    other[:, ~valid] = 1e6  # would dominate the min-max scaling and the training if it were used
    other[0, 0, -1] = np.nan
    b = ae_scores(other, valid, iterations=10, seed=0)
    assert np.array_equal(a, b, equal_nan=True)
    # the two planted targets are the strongest scores
    top = set(zip(*np.unravel_index(np.argsort(np.nan_to_num(a, nan=-1).ravel())[-2:], a.shape)))
    assert top == {(5, 7), (18, 22)}


def test_errors_and_cancel(synthetic):
    cube, valid = synthetic
    with pytest.raises(InputError, match="same value"):
        ae_scores(np.ones_like(cube), valid)
    with pytest.raises(InputError, match="every pixel is nodata"):
        ae_scores(cube, np.zeros_like(valid))

    class Cancel(Feedback):
        def cancelled(self):
            return True

    with pytest.raises(Cancelled):
        ae_scores(cube, valid, feedback=Cancel())


def test_airport2_auc_sanity():
    src = open_source(os.path.join(RAW, "abu-airport-2.mat"))
    cube, valid = src.read(list(range(50)))
    cube, _ = scale_cube(cube, valid)
    gt = src.ground_truth()
    scores = ae_scores(cube, valid, seed=0)  # 50 iterations, last one: no ground truth involved
    auc = roc_auc(scores, gt > 0, valid)
    print(f"\nAE on abu-airport-2 (first 50 bands, 50 iterations, seed 0): AUC {auc:.4f}")
    assert auc > 0.6


def test_label_free_rules_are_what_they_say(synthetic):
    """ae_scores' rules against their definitions, computed here from the raw per-iteration maps."""
    from fers.detect.ae import ae_iterations, plateau_iteration

    cube, valid = synthetic
    runs = {}
    for seed in (4, 5, 6):
        maps, losses = [], []
        for _, loss, s in ae_iterations(cube, valid, iterations=30, seed=seed):
            maps.append(s.numpy().astype(np.float64))
            losses.append(loss)
        runs[seed] = (maps, losses)
    maps, losses = runs[4]
    got = ae_scores(cube, valid, iterations=30, seed=4, rule="last")[valid]
    np.testing.assert_allclose(got, maps[-1], rtol=1e-6)
    mean = np.mean([m / m.mean() for m in maps], axis=0)
    np.testing.assert_allclose(ae_scores(cube, valid, iterations=30, seed=4, rule="mean")[valid], mean, rtol=1e-5)
    t = plateau_iteration(losses) or 30
    assert 5 < t < 30  # the synthetic scene's loss does flatten within 30 iterations: the rule is exercised
    np.testing.assert_allclose(ae_scores(cube, valid, iterations=30, seed=4, rule="plateau")[valid], maps[t - 1],
                               rtol=1e-6)
    ens = np.mean([runs[s][0][-1] / runs[s][0][-1].mean() for s in (4, 5, 6)], axis=0)
    np.testing.assert_allclose(ae_scores(cube, valid, iterations=30, seed=4, rule="last", seeds=3)[valid], ens, rtol=1e-5)
    with pytest.raises(InputError, match="rule"):
        ae_scores(cube, valid, rule="best-auc")


def test_ae_on_an_enhanced_cube_warns_with_the_rules_figures():
    from fers.checkpoint import load_model
    from fers.pipeline import score_scene
    from conftest import REPO

    src = open_source(os.path.join(RAW, "abu-urban-1.mat"))
    cube, valid = src.read(list(range(100)))
    cube, _ = scale_cube(np.ascontiguousarray(cube[:, :40, :40]), valid[:40, :40])
    model = load_model(os.path.join(REPO, "resources", "models", "fers-aviris-100.pt"))
    warned = []

    class Log(Feedback):
        def warn(self, message):
            warned.append(message)

    score_scene(cube, valid[:40, :40], "none", "ae", model, feedback=Log())
    assert warned == []
    scores, _ = score_scene(cube, valid[:40, :40], "additive", "ae", model, feedback=Log())
    assert len(warned) == 1 and "below chance" in warned[0] and np.isfinite(scores).all()
