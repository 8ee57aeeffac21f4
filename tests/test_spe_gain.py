"""The F_spe gain of a shipped model: baked exactly into the FPL by make train-default's compact step, and the
rule of research/spe_gain.py that chose it, on hand-made figures whose outcome is worked out here."""
import math
import os
import statistics
import sys

import numpy as np
import torch

from conftest import REPO
from fers.checkpoint import load_model, read_checkpoint

sys.path.insert(0, os.path.join(REPO, "scripts"))
sys.path[:0] = [os.path.join(REPO, "research"), os.path.join(REPO, "bench")]
import spe_gain as sg  # noqa: E402
import train_default as td  # noqa: E402


def test_compact_scales_f_spe_exactly_and_nothing_else(stage2_model, tmp_path):
    out = td.compact(stage2_model, str(tmp_path / "half.pt"), 0.5)
    a, b = load_model(stage2_model), load_model(out)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.1, 0.1, (1, 100, 40, 40)).astype(np.float32))
    with torch.inference_mode():
        np.testing.assert_allclose(b.spe(x).numpy(), 0.5 * a.spe(x).numpy(), rtol=1e-6, atol=1e-7)
        spa = a.spa(x).numpy()  # compact stores the random, frozen ResNet-34 in float16: that rounding alone
        np.testing.assert_allclose(b.spa(x).numpy(), spa, rtol=0, atol=2e-3 * np.abs(spa).max())
        # research/spe_gain.py measured the gain on the same model scaled in memory: the same features
        np.testing.assert_array_equal(sg.with_gain(a, 0.5).spe(x).numpy(), b.spe(x).numpy())
    meta = read_checkpoint(out)["meta"]
    assert meta["spe_gain"] == 0.5 and "spe_gain" not in read_checkpoint(td.compact(stage2_model, str(tmp_path / "one.pt")))["meta"]


def test_the_bundled_100_band_model_ships_the_gain_its_recipe_names():
    assert td.RECIPE[100]["spe_gain"] == 0.1 and "spe_gain" not in td.RECIPE[200]
    assert read_checkpoint(os.path.join(REPO, "resources", "models", "fers-aviris-100.pt"))["meta"]["spe_gain"] == 0.1
    assert "spe_gain" not in read_checkpoint(os.path.join(REPO, "resources", "models", "fers-aviris-200.pt"))["meta"]


def test_the_rule_wants_twice_the_standard_error_and_the_guard():
    flat = {"spectral": 0.995, "A": 0.996, "B": 0.995}
    guards = {g: dict(flat) for g in (1.0, 0.5, 2.0)}
    d_half = [0.0002, 0.0001, 0.0002, 0.0003, 0.0001, 0.0002, 0.0002]  # small but steady: passes
    d_two = [0.004, -0.003, 0.005, -0.004, 0.003, -0.002, 0.001]     # larger mean, too noisy
    assert statistics.mean(d_two) > statistics.mean(d_half)
    assert statistics.mean(d_two) < 2 * statistics.stdev(d_two) / math.sqrt(7)
    adopted, verdicts = sg.decide({0.5: d_half, 2.0: d_two}, guards)
    assert adopted == 0.5 and verdicts[0.5] == ["passes"] and verdicts[2.0][0].startswith("mean d")
    guards[0.5]["B"] = flat["B"] - sg.GUARD - 1e-4
    adopted, verdicts = sg.decide({0.5: d_half, 2.0: d_two}, guards)
    assert adopted == 1.0 and verdicts[0.5] == [f"background anomalies B {guards[0.5]['B']:.4f} < 0.9950 − 0.001"]
