"""AE conformance (issue 21): our AE loop is the authors' utils/AE.py loop, and with their ground-truth selection
(bench/ae_harness.py, never the product) it lands on Table II's AE figures within the stated tolerance."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from conftest import RAW
from fers.detect.ae import LightAutoEncoder, ae_iterations, ae_scores
from fers.io import open_source
from fers.metrics import roc_auc
from fers.preprocess import scale_cube


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def scene(name, bands=200, crop=None):
    src = open_source(os.path.join(RAW, name + ".mat"))
    cube, valid = src.read(list(range(bands)))
    gt = np.asarray(src.ground_truth()) > 0
    if crop:
        cube, valid, gt = cube[:, crop, crop], valid[crop, crop], gt[crop, crop]
    cube, _ = scale_cube(np.ascontiguousarray(cube), valid)
    return cube, valid, gt


def authors_conv2d_curve(cube, ours, iterations, lr=1e-3):
    """The reference's loop written independently: Conv2d 1×1 layers on the (1, B, H, W) image, the global
    min-max (with their +1e-8), full-image MSE, Adam; the map of each iteration from the forward pass before
    the step. Weights are copied from ``ours`` so that both start from the same draw."""
    h = torch.from_numpy(cube)[None].double()
    h = ((h - h.min()) / (h.max() - h.min() + 1e-8)).float()
    lin = [m for m in ours.modules() if isinstance(m, nn.Linear)]
    convs = []
    for m in lin:
        c = nn.Conv2d(m.in_features, m.out_features, 1)
        with torch.no_grad():
            c.weight.copy_(m.weight[:, :, None, None])
            c.bias.copy_(m.bias)
        convs.append(c)
    net = nn.Sequential(nn.Sigmoid(), *convs[:3], nn.Tanh(), *convs[3:], nn.Sigmoid())
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    maps = []
    for _ in range(iterations):
        opt.zero_grad()
        rec = net(h)
        loss = nn.functional.mse_loss(rec, h)
        loss.backward()
        opt.step()
        maps.append(((rec - h) ** 2).mean(dim=1)[0].detach().numpy().ravel())
    return maps


def test_our_loop_is_the_authors_loop_iteration_by_iteration():
    cube, valid, _ = scene("abu-airport-2", 200, slice(30, 70))
    ours = LightAutoEncoder(200)
    ours.reset_parameters(torch.Generator().manual_seed(3))  # the draw ae_iterations makes for seed 3
    ref = authors_conv2d_curve(cube, ours, 20)
    got = [s.numpy().copy() for _, _, s in ae_iterations(cube, valid, iterations=20, seed=3)]
    assert len(got) == 20
    for k, (a, b) in enumerate(zip(got, ref)):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-7, err_msg=f"iteration {k + 1}")
    # and the maps really change along the way (a test that would pass with a frozen network is worthless)
    assert np.abs(got[-1] - got[0]).max() > 10 * np.abs(got[-1] - ref[-1]).max()


# Table II "AE" (original cube) as issue 21 quotes it, and the tolerance: the authors' selection over five seeds
# (bench/ae_harness.py) has a seed SD of 0.002-0.004 on these scenes; one seed is allowed 0.015 around the
# paper (≈ 4 SD). airport-1 is not asserted: ours is 0.823 ± 0.004 against 0.853 (docs/ARCHITECTURE.md says why).
TABLE2_AE = {"abu-airport-2": 0.926, "abu-airport-3": 0.943}
TOLERANCE = 0.015


@pytest.mark.parametrize("name", sorted(TABLE2_AE))
def test_authors_selection_reproduces_table2_ae_original(name):
    cube, valid, gt = scene(name)
    curve = [roc_auc(s.numpy(), gt[valid]) for _, _, s in ae_iterations(cube, valid, seed=0)]
    best = max(curve)
    print(f"\n{name}: authors' selection {best:.4f} at iteration {int(np.argmax(curve)) + 1}, "
          f"last {curve[-1]:.4f}, Table II {TABLE2_AE[name]}")
    assert abs(best - TABLE2_AE[name]) <= TOLERANCE
    # the product's label-free answer is what the product computes, not the best iteration
    product = ae_scores(cube, valid, seed=0)
    assert roc_auc(product, gt, valid) <= best + 1e-9
