"""research/trimmed_rx.py's decision rule, on hand-made figures whose outcome is worked out here."""
import math
import os
import statistics
import sys

from conftest import REPO

sys.path[:0] = [os.path.join(REPO, "research"), os.path.join(REPO, "bench")]
import trimmed_rx as tr  # noqa: E402

# paired differences per seed: 0.01 clearly positive at both band counts; 0.05 larger on average but, at
# 200 bands, noisy enough that its mean stays below twice its standard error
D = {100: {0.01: [0.010, 0.012, 0.011, 0.013, 0.009, 0.012, 0.011], 0.05: [0.03, 0.02, 0.04, 0.03, 0.02, 0.03, 0.03]},
     200: {0.01: [0.008, 0.007, 0.009, 0.010, 0.006, 0.008, 0.009], 0.05: [0.09, -0.05, 0.08, -0.06, 0.10, -0.04, 0.02]}}
FLAT = {"spectral": 0.995, "A": 0.996, "B": 0.995}
G = {b: {0.0: dict(FLAT), 0.01: dict(FLAT), 0.05: dict(FLAT)} for b in (100, 200)}


def test_twice_the_standard_error_decides_and_the_larger_mean_wins():
    d = D[200][0.05]
    assert statistics.mean(d) < 2 * statistics.stdev(d) / math.sqrt(7)  # the premise of the case
    adopted, verdicts = tr.decide(D, G)
    assert adopted == 0.01 and verdicts[0.01] == ["passes"]
    assert len(verdicts[0.05]) == 1 and verdicts[0.05][0].startswith("200 bands: mean d")
    # once 0.05 is clean at 200 bands too, its larger mean difference wins
    clean = {100: D[100], 200: {0.01: D[200][0.01], 0.05: [0.02, 0.025, 0.03, 0.02, 0.022, 0.028, 0.024]}}
    assert tr.decide(clean, G)[0] == 0.05


def test_the_background_anomaly_guard_refuses_a_trim_that_costs_more_than_its_tolerance():
    guards = {b: {t: dict(g) for t, g in by.items()} for b, by in G.items()}
    guards[100][0.01]["A"] = FLAT["A"] - tr.GUARD - 1e-4   # just beyond the tolerance
    guards[200][0.01]["B"] = FLAT["B"] - tr.GUARD + 1e-4   # just within it
    adopted, verdicts = tr.decide(D, guards)
    assert adopted is None
    assert verdicts[0.01] == [f"100 bands: background anomalies A {guards[100][0.01]['A']:.4f} < 0.9960 − 0.001"]
