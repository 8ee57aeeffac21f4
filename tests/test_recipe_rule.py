"""scripts/device_recipes.py's decision rule: the figures it adopts a recipe on, checked by hand."""
import math
import os
import statistics
import sys

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "scripts"))
import device_recipes as dr  # noqa: E402

BASE = {10: 0.94, 11: 0.91, 12: 0.905, 13: 0.898, 14: 0.898, 15: 0.918, 16: 0.913}


def _runs(name, means):
    return [{"candidate": name, "seed": s, "implanted": {"mean": m}} for s, m in zip(dr.CANDIDATES[name]["seeds"], means)]


def _se(x, b):
    return math.sqrt(statistics.variance(x) / len(x) + statistics.variance(b) / len(b))


def test_a_candidate_is_adopted_only_above_one_standard_error_and_only_when_complete():
    base = {s: {"mean": m} for s, m in BASE.items()}
    b = list(BASE.values())
    p = [0.95, 0.93, 0.935, 0.94]                     # P: four seeds, clearly above
    l12 = [0.915, 0.92, 0.91, 0.925, 0.905, 0.93, 0.90]  # L12: above the mean, within one SE
    runs = _runs("P", p) + _runs("L12", l12) + _runs("N", [0.99] * 6)  # N: one seed short
    out, adopted = dr.decide(runs, base)
    assert math.isclose(out["baseline"]["mean"], statistics.mean(b))
    assert math.isclose(out["baseline"]["sd"], statistics.stdev(b))
    assert math.isclose(out["P"]["diff"], statistics.mean(p) - statistics.mean(b))
    assert math.isclose(out["P"]["se"], _se(p, b))
    assert out["P"]["passes"] and not out["L12"]["passes"]
    assert 0 < out["L12"]["diff"] < out["L12"]["se"]
    assert out["N"] == {"n": 6, "incomplete": True}  # however high, an incomplete candidate decides nothing
    assert adopted == "P"


def test_of_several_passing_candidates_the_highest_mean_wins_and_none_passing_changes_nothing():
    base = {s: {"mean": m} for s, m in BASE.items()}
    runs = _runs("P", [0.95, 0.94, 0.945, 0.94]) + _runs("L12", [0.96, 0.955, 0.95, 0.965, 0.96, 0.95, 0.955])
    out, adopted = dr.decide(runs + _runs("N", [0.9] * 7), base)
    assert out["P"]["passes"] and out["L12"]["passes"] and adopted == "L12"
    assert not out["N"]["passes"]
    _, adopted = dr.decide(_runs("N", [0.9] * 7), base)
    assert adopted is None
