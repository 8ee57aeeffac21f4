"""research/autoad_enhanced.py's outcome is what the product says: the recorded cells give the recorded means,
the rule applied to them gives the recorded decision (warn), the warning quotes those means, and score_scene
says it once for Auto-AD on an enhanced cube and never on the original cube or for RX."""
import json
import os
import re
import statistics
import sys

import numpy as np
import pytest

from conftest import RAW, REPO
from fers.errors import Cancelled
from fers.feedback import Feedback

DECISION = os.path.join(REPO, "research", "decisions", "autoad-enhanced.json")


def test_the_recorded_cells_give_the_recorded_decision_and_the_warning_quotes_them():
    sys.path[:0] = [os.path.join(REPO, "research"), os.path.join(REPO, "bench")]
    import autoad_enhanced

    from fers.pipeline import ENHANCED_CUBE_WARNINGS

    rec = json.load(open(DECISION))
    assert len(rec["cells"]) == 16  # 2 groups × 4 scenes × (original, enhanced)
    means = {g: {c: statistics.mean(x["auc"] for x in rec["cells"] if x["group"] == g and x["cube"] == c)
                 for c in ("original", "enhanced")} for g in autoad_enhanced.SELECTION}
    for g in means:
        for c in means[g]:
            assert means[g][c] == pytest.approx(rec["means"][g][c], abs=1e-9)
    warn, _ = autoad_enhanced.decide(means)
    assert warn is rec["warn"] is True
    # the rule needs the drop in both groups: one group within the margin and it stays silent
    calm = {g: dict(v) for g, v in means.items()}
    calm["implanted targets"]["enhanced"] = calm["implanted targets"]["original"] - 0.02
    assert autoad_enhanced.decide(calm)[0] is False
    quoted = [float(v) for v in re.findall(r"0\.\d\d", ENHANCED_CUBE_WARNINGS["autoad"])]
    want = [means[g][c] for g in ("background anomalies", "implanted targets") for c in ("enhanced", "original")]
    assert quoted == [round(v, 2) for v in want]


class _Stop(Feedback):
    """Records warnings and cancels at the first unit of work, after score_scene's checks have spoken."""

    def __init__(self):
        self.warned = []

    def warn(self, message):
        self.warned.append(message)

    def cancelled(self):
        return True


def test_score_scene_warns_once_for_autoad_on_an_enhanced_cube():
    from fers.checkpoint import load_model
    from fers.io import open_source
    from fers.pipeline import ENHANCED_CUBE_WARNINGS, score_scene
    from fers.preprocess import scale_cube

    src = open_source(os.path.join(RAW, "abu-urban-1.mat"))
    cube, valid = src.read(list(range(100)))
    cube, _ = scale_cube(np.ascontiguousarray(cube[:, :40, :40]), valid[:40, :40])
    model = load_model(os.path.join(REPO, "resources", "models", "fers-aviris-100.pt"))
    autoad = ENHANCED_CUBE_WARNINGS["autoad"]
    for strategy, detector, said in (("additive", "autoad", [autoad]), ("spectral", "autoad", [autoad]),
                                     ("none", "autoad", []), ("additive", "rx", [])):
        log = _Stop()
        with pytest.raises(Cancelled):
            score_scene(cube, valid[:40, :40], strategy, detector, model, feedback=log)
        assert log.warned == said, (strategy, detector)


def test_the_scaling_rule_was_decided_for_global_and_the_product_scales_globally():
    """research/autoad_scaling.py stopped once its outcome was fixed: with the recorded per-band cell and the
    best case (AUC 1) for every cell it did not run, per-band still fails the rule. And the product's Auto-AD
    is what was kept: one global min-max, so an affine map of the whole cube leaves its map unchanged, while
    rescaling one band changes it."""
    sys.path[:0] = [os.path.join(REPO, "research"), os.path.join(REPO, "bench")]
    import autoad_scaling

    from fers.detect.autoad import autoad_scores
    from fers.io import open_source

    rec = json.load(open(os.path.join(REPO, "research", "decisions", "autoad-scaling.json")))
    best = {g: {"original": 1.0, "enhanced": 1.0} for g in rec["global"]}
    ran = [c for c in rec["cells"] if c["group"] == "background anomalies" and c["cube"] == "original"]
    best["background anomalies"]["original"] = (sum(c["auc"] for c in ran) + 4 - len(ran)) / 4
    adopt, _ = autoad_scaling.decide(rec["global"], best)
    assert adopt is rec["adopt_per_band"] is False

    src = open_source(os.path.join(RAW, "abu-urban-1.mat"))
    cube, valid = src.read(list(range(30)))
    cube = np.ascontiguousarray(cube[:, :40, :40], dtype=np.float32)
    valid = valid[:40, :40]
    base, _ = autoad_scores(cube, valid, max_iterations=3)
    same, _ = autoad_scores(cube * 3.0 + 100.0, valid, max_iterations=3)
    np.testing.assert_allclose(same, base, rtol=1e-3, atol=1e-6 * np.nanmax(base))
    stretched = cube.copy()
    stretched[0] = stretched[0] * 50.0  # one band rescaled: per-band scaling would undo this, the global one not
    other, _ = autoad_scores(stretched, valid, max_iterations=3)
    assert not np.allclose(other, base, rtol=1e-2)
