"""bench/implanted.py: sub-pixel targets implanted in the background scenes (a selection group, not a test set)."""
import os
import sys

import numpy as np

from conftest import REPO, mat_scene

sys.path.insert(0, os.path.join(REPO, "bench"))
import implanted  # noqa: E402


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    cube = rng.uniform(100, 200, (6, 90, 90))
    objects = np.zeros((90, 90), bool)
    objects[10:12, 10:13] = objects[60:63, 70:72] = True
    cube[:, 10:12, 10:13] = np.arange(1000, 1006)[:, None, None]
    cube[:, 60:63, 70:72] = np.arange(3000, 2994, -1)[:, None, None]
    return cube, objects


def test_targets_are_sub_pixel_shifts_towards_the_scenes_own_objects_placed_apart():
    cube, objects = _scene()
    out, targets, counted = implanted.implant(cube, objects, seed=7)
    mean = cube.reshape(cube.shape[0], -1).mean(axis=1)
    assert targets.sum() == implanted.N_TARGETS
    np.testing.assert_array_equal(out[:, ~targets], cube[:, ~targets])  # nothing else is touched
    spectra = [np.arange(1000, 1006.0), np.arange(3000, 2994.0, -1)]
    m = implanted.MARGIN
    rows, cols = np.nonzero(targets)
    for r, c in zip(rows, cols):
        x, y = cube[:, r, c], out[:, r, c]
        # y = x + a·(t − m) for one object spectrum t and the scene's mean m: recover a by least squares, check
        # that the fit is exact
        fits = [((y - x) @ (t - mean)) / ((t - mean) @ (t - mean)) for t in spectra]
        exact = [a for a, t in zip(fits, spectra) if np.allclose(x + a * (t - mean), y, rtol=0, atol=1e-9)]
        assert len(exact) == 1 and implanted.A_MIN <= exact[0] <= implanted.A_MAX, (r, c, fits)
        assert m <= r < 90 - m and m <= c < 90 - m
        # no object pixel within MARGIN (Chebyshev), no other target either
        assert not objects[max(r - m, 0):r + m + 1, max(c - m, 0):c + m + 1].any()
        assert targets[max(r - m, 0):r + m + 1, max(c - m, 0):c + m + 1].sum() == 1
    # the AUC counts every target and no pixel within MARGIN of an original object
    assert counted[targets].all()
    near = np.zeros_like(objects)
    for r, c in zip(*np.nonzero(objects)):
        near[max(r - m, 0):r + m + 1, max(c - m, 0):c + m + 1] = True
    np.testing.assert_array_equal(counted, ~near)
    # same seed, same scene; another seed, other places
    np.testing.assert_array_equal(implanted.implant(cube, objects, seed=7)[0], out)
    assert (implanted.implant(cube, objects, seed=8)[1] != targets).any()


def test_a_real_background_scene_reads_like_a_source():
    scene = implanted.ImplantedScene("abu-urban-1")
    raw, gt = mat_scene("abu-urban-1")
    assert scene.band_count == raw.shape[2] and scene.targets.sum() == implanted.N_TARGETS
    assert not (scene.targets & (gt > 0)).any() and not scene.auc_mask[gt > 0].any()
    cube, valid = scene.read(range(100))
    assert cube.shape == (100,) + gt.shape and valid.all()
    # untouched pixels are the scene's own values
    np.testing.assert_allclose(cube[:, ~scene.targets], np.moveaxis(raw[:, :, :100], 2, 0)[:, ~scene.targets],
                               rtol=1e-6)
