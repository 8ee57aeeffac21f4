"""Auto-AD (fers.detect.autoad): the published network's shape, its adaptive weights and loss-based stop,
seeded repeatability, nodata, and that it finds a real scene's anomalies without labels. Small crops and a
narrow network keep it to seconds; the architecture is the published one at any width."""
import numpy as np
import pytest
import torch

from conftest import mat_scene
from fers.detect.autoad import SkipNet, autoad_scores
from fers.errors import InputError
from fers.metrics import roc_auc


def test_the_network_reproduces_the_scene_size_for_any_size():
    net = SkipNet(7, channels=8)
    for h, w in ((33, 33), (45, 37), (100, 100)):  # odd sizes: DIP's Concat crops the deeper branch
        assert net(torch.rand(1, 7, h, w)).shape == (1, 7, h, w)
    # the authors' skip(B, B, [128]*5, [128]*5, [128]*5, filter 3, skip filter 1, need1x1_up, bias, BN): counted
    # layer by layer from their models/skip.py (conv k×k cin→cout: k²·cin·cout + cout; BN(c): 2c)
    def conv(k, cin, cout):
        return k * k * cin * cout + cout

    bands, c, want = 200, 128, 0
    for i in range(5):
        cin = bands if i == 0 else c
        want += conv(1, cin, c) + 2 * c  # skip branch
        want += conv(3, cin, c) + 2 * c + conv(3, c, c) + 2 * c  # stride-2 down, 3×3
        want += 2 * (2 * c) + conv(3, 2 * c, c) + 2 * c + conv(1, c, c) + 2 * c  # BN of the concat, 3×3, 1×1
    want += conv(1, c, bands)  # the output layer (then a sigmoid)
    assert sum(p.numel() for p in SkipNet(bands).parameters()) == want


@pytest.fixture(scope="module")
def scene():
    hwb, gt = mat_scene("abu-urban-1")
    r, c = np.argwhere(gt > 0)[0]  # a window around the first labelled anomaly
    r0, c0 = max(0, min(r - 16, hwb.shape[0] - 48)), max(0, min(c - 16, hwb.shape[1] - 48))
    crop = hwb[r0:r0 + 48, c0:c0 + 48, :20].astype(np.float32)
    return np.ascontiguousarray(crop.transpose(2, 0, 1)), gt[r0:r0 + 48, c0:c0 + 48] > 0


def test_seeded_runs_repeat_and_find_the_anomalies_without_labels(scene):
    cube, truth = scene
    valid = np.ones(truth.shape, bool)
    a, info = autoad_scores(cube, valid, seed=3, max_iterations=101, channels=16)
    b, _ = autoad_scores(cube, valid, seed=3, max_iterations=101, channels=16)
    c, _ = autoad_scores(cube, valid, seed=4, max_iterations=3, channels=16)
    d, _ = autoad_scores(cube, valid, seed=3, max_iterations=3, channels=16)
    assert np.array_equal(a, b) and not np.array_equal(c, d)
    assert info["autoad_iterations"] <= 101 and info["autoad_stop"]
    assert truth.any() and roc_auc(a.ravel(), truth.ravel()) > 0.8


def test_nodata_is_left_out_and_scored_nan(scene):
    cube, truth = scene
    valid = np.ones(truth.shape, bool)
    valid[:5, :] = False
    cube = cube.copy()
    cube[:, :5, :] = 1e6  # would dominate the scaling and the loss if it entered
    s, _ = autoad_scores(cube, valid, seed=0, max_iterations=101, channels=16)
    assert np.isnan(s[~valid]).all() and np.isfinite(s[valid]).all()
    ref, _ = autoad_scores(np.where(valid[None], cube, 0.0).astype(np.float32), valid, seed=0, max_iterations=101,
                           channels=16)
    np.testing.assert_allclose(s[valid], ref[valid], rtol=1e-4, atol=1e-7)  # what nodata holds does not matter


def test_too_small_and_constant_scenes_are_refused(scene):
    cube, truth = scene
    with pytest.raises(InputError):
        autoad_scores(cube[:, :20, :20], np.ones((20, 20), bool))
    with pytest.raises(InputError):
        autoad_scores(np.ones_like(cube), np.ones(truth.shape, bool))
