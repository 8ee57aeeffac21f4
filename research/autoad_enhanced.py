"""Does Auto-AD gain or lose on the bundled model's enhanced cube? Decided on the selection groups only.

The product warns when the AE is asked to score an enhanced cube (research/ae_rule.py found it below chance
there). This script asks the same of Auto-AD, on the same footing:

- Groups: the background scenes' own masked anomalies and the targets implanted into those scenes
  (bench/implanted.py); never an evaluation scene.
- Cubes: "original" (the first min(200, B) bands, SPEC §0 scaling) and "enhanced" (H + F_spe + F_spa of the
  bundled model of the scene's band count), as bench/ae_harness.cubes builds them.
- One run per cell, seed 0, the product's Auto-AD (fers.detect.autoad.autoad_scores, its loss-based stop);
  AUC over the counted valid pixels, as ae_rule.py counts them.

The rule, fixed before any figure was computed: the product warns that Auto-AD is better used on the
original cube when the enhanced cube's mean AUC is below the original's by more than 0.03 in *both* groups
(0.03: about two seed-to-seed spreads of one Auto-AD run, measured 0.010-0.016 on airport-2 with the
authors' code and ours). Otherwise it says nothing. Either way the figures are written to
research/decisions/autoad-enhanced.json and told in docs/REPRODUCING.md §3.

Each run takes 1-8 minutes on one CPU core; the 16 cells take about an hour on a 2-core machine.
"""
import json
import os
import statistics
import sys
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(os.path.dirname(_HERE), "bench")]
from ae_harness import cubes  # noqa: E402
from bench_accuracy import GROUPS, scene_data  # noqa: E402

from fers.detect.autoad import autoad_scores  # noqa: E402
from fers.metrics import roc_auc  # noqa: E402

SELECTION = ("background anomalies", "implanted targets")
CUBE_LABELS = {"original": "original", "enhanced (bundled)": "enhanced"}
MARGIN = 0.03
OUT = os.path.join(_HERE, "decisions", "autoad-enhanced.json")


def decide(means):
    """{group: {"original": auc, "enhanced": auc}} → (warn?, why)."""
    drops = {g: means[g]["original"] - means[g]["enhanced"] for g in means}
    warn = all(d > MARGIN for d in drops.values())
    why = ", ".join(f"{g}: enhanced {means[g]['enhanced']:.4f} vs original {means[g]['original']:.4f}" for g in means)
    return warn, why


def run_cells(groups, prepare=None, tag=""):
    """One seed-0 run of the product's Auto-AD per (group, scene, cube) cell: a list of dicts (group, scene,
    cube, bands, auc, iterations, seconds). ``prepare(cube, valid)``: what Auto-AD is given instead of the
    cube (research/autoad_scaling.py's candidate); ``tag`` says so in the printed lines."""
    cells = []
    for group in groups:
        for name in GROUPS[group]:
            for label, (cube, valid, gt, counted, bands) in cubes(scene_data(name, group)).items():
                if label not in CUBE_LABELS:
                    continue
                t0 = time.perf_counter()
                scores, info = autoad_scores(prepare(cube, valid) if prepare else cube, valid, seed=0)
                seconds = time.perf_counter() - t0
                m = np.asarray(counted, bool)[valid]
                auc = roc_auc(scores[valid][m], np.asarray(gt, bool)[valid][m])
                cells.append({"group": group, "scene": name, "cube": CUBE_LABELS[label], "bands": bands,
                              "auc": round(float(auc), 6), "iterations": info["autoad_iterations"],
                              "seconds": round(seconds, 1)})
                print(f"{group:21s} {name:12s} {CUBE_LABELS[label]:8s} {bands} bands{tag}: AUC {auc:.4f} "
                      f"({info['autoad_iterations']} iterations, {seconds:.0f} s)", flush=True)
    return cells


def group_means(cells):
    """{group: {cube: mean AUC}} over the selection groups."""
    return {g: {c: statistics.mean(x["auc"] for x in cells if x["group"] == g and x["cube"] == c)
                for c in CUBE_LABELS.values()} for g in SELECTION}


def main():
    cells = run_cells(SELECTION)
    means = group_means(cells)
    warn, why = decide(means)
    print(f"\nmeans: {why}\nrule (enhanced below original by more than {MARGIN} in both groups): "
          f"{'warn' if warn else 'no warning'}")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"rule": f"warn when the enhanced cube's mean AUC is below the original's by more than {MARGIN} "
                           "in both selection groups", "means": means, "warn": warn, "cells": cells}, f, indent=1)


if __name__ == "__main__":
    main()
