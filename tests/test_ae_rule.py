"""research/ae_rule.py's outcome is what the product runs: the recorded figures, decided again by the rule's
own tie-and-cost logic, give the recorded decision, and fers.detect.ae's defaults are that decision. The
rule's loss-plateau stop is the product's plateau_iteration."""
import json
import os

import numpy as np

from conftest import REPO
from fers.detect import ae

DECISION = os.path.join(REPO, "research", "decisions", "ae-rule.json")
TIE = 0.003  # research/ae_rule.py


def decide(figure, cost):
    best = max(figure.values())
    near = [c for c in figure if figure[c] >= best - TIE]
    return min(near, key=lambda c: (cost[c], int(c.rsplit("-", 1)[-1]) if c[-1].isdigit() else 99))


def test_the_recorded_figures_give_the_recorded_decision_and_the_product_runs_it():
    rec = json.load(open(DECISION))
    assert decide(rec["figure"], rec["cost"]) == rec["decision"] == "iteration-50"
    # a rival within the tie but dearer does not win: the five-seed average of the same map
    assert rec["figure"]["seeds-5 × iteration-50"] >= rec["figure"]["iteration-50"] - TIE
    assert (ae.RULE, ae.ITERATIONS, ae.SEEDS) == ("last", 50, 1)


def test_the_rules_plateau_is_the_products():
    import sys

    sys.path[:0] = [os.path.join(REPO, "research"), os.path.join(REPO, "bench")]
    import ae_rule

    rng = np.random.default_rng(0)
    for _ in range(200):
        losses = list(np.cumprod(1 - rng.uniform(0, 0.03, 50)) * rng.uniform(0.01, 1))
        assert ae_rule.plateau_iteration(losses) == (ae.plateau_iteration(losses) or 50)
