"""Should the product's Auto-AD scale its input band by band? Decided on the selection groups only.

Why the question arose (research/autoad_enhanced.py, docs/REPRODUCING.md §3): on the bundled model's
enhanced cube the product's Auto-AD stops after 101-201 iterations and scores far below the original cube
(selection-group means 0.71 vs 0.99 and 0.49 vs 0.92). The enhanced cube spans -0.1..14.5 on abu-urban-1,
and most of its bands a small share of that (median 1.5 %, against 24 % on the original cube), so after the
product's one global min-max the loss and its steps are small and the authors' fixed stop (mean |Δloss| over
50 iterations below 1.5e-5) fires early; with the stop off (1001 iterations) that cube's AUC is 0.97. The
Auto-AD authors' published scene is min-max scaled band by band, the scale their threshold was set on.

Candidates (one seed-0 run of the product's Auto-AD per cell, cubes and AUC as research/autoad_enhanced.py):
- "global": the shipped scaling (one min/max over all bands); its figures are autoad_enhanced.py's cells,
  read from research/decisions/autoad-enhanced.json, not run again;
- "per-band": every band min-max scaled to [0, 1] over the valid pixels before the same Auto-AD.

The rule, fixed before any per-band figure was computed: the figure of a candidate is the mean of its four
(group, cube) means. "per-band" replaces "global" when its figure is higher by more than 0.02 (a bit over
one seed-to-seed spread of one run) and neither of its original-cube means is lower than global's by more
than 0.02 (the enhancement must not be bought with the plain detector). Otherwise the product keeps the
global scaling.

Run on 2026-12-02 and stopped after two cells, once no remaining cell could change the outcome (the
bound is in research/decisions/autoad-scaling.json, written by hand for that reason, and re-derived by
tests/test_autoad_enhanced_rule.py).
"""
import json
import os
import statistics
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(os.path.dirname(_HERE), "bench")]
from autoad_enhanced import SELECTION, group_means, run_cells  # noqa: E402

MARGIN = 0.02
GLOBAL = os.path.join(_HERE, "decisions", "autoad-enhanced.json")
OUT = os.path.join(_HERE, "decisions", "autoad-scaling.json")


def per_band(cube, valid):
    """Each band min-max scaled to [0, 1] over the valid pixels (a constant band to 0)."""
    px = cube[:, valid]
    lo, hi = px.min(1), px.max(1)
    span = np.where(hi > lo, hi - lo, 1.0)
    return ((cube - lo[:, None, None]) / span[:, None, None]).astype(np.float32)


def figure(means):
    return statistics.mean(means[g][c] for g in means for c in means[g])


def decide(glob, band):
    """(adopt per-band?, why) from {group: {cube: mean AUC}} of each candidate."""
    gain = figure(band) - figure(glob)
    worst = max(glob[g]["original"] - band[g]["original"] for g in glob)
    adopt = gain > MARGIN and worst <= MARGIN
    return adopt, f"figure per-band {figure(band):.4f} vs global {figure(glob):.4f} (gain {gain:+.4f}); " \
                  f"original cube at most {worst:+.4f} below global"


def main():
    groups = [g for g in SELECTION if not sys.argv[1:] or g.split()[0] in sys.argv[1:]]  # "background", "implanted"
    cells = run_cells(groups, per_band, ", per-band")
    for group in groups:  # one file per group, so that the groups can run in two processes side by side
        with open(OUT.replace(".json", f"-{group.split()[0]}.json"), "w") as f:
            json.dump([c for c in cells if c["group"] == group], f, indent=1)
    parts = [OUT.replace(".json", f"-{g.split()[0]}.json") for g in SELECTION]
    if not all(os.path.exists(p) for p in parts):
        return
    cells = [c for p in parts for c in json.load(open(p))]
    glob = json.load(open(GLOBAL))["means"]
    band = group_means(cells)
    adopt, why = decide(glob, band)
    print(f"\n{why}\nrule: {'per-band' if adopt else 'keep global'}")
    with open(OUT, "w") as f:
        json.dump({"rule": f"per-band when its figure beats global's by more than {MARGIN} and no original-cube "
                           f"mean is lower by more than {MARGIN}", "global": glob, "per-band": band,
                   "adopt_per_band": adopt, "why": why, "cells": cells}, f, indent=1)
    for p in parts:
        os.remove(p)


if __name__ == "__main__":
    main()
