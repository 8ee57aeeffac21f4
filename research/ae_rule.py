"""The product AE's label-free answer: chosen on the selection groups, by a rule fixed beforehand (issue 21).

The AE (fers.detect.ae, SPEC §3) trains on the scene it scores; its map changes with every iteration. The
authors keep the iteration with the best ground-truth AUC (leakage); the product returned the 50th, which on
Table II's scenes is far worse than the best (bench/ae_harness.py). Here a label-free answer is chosen on the
two groups that may choose anything (bench_accuracy.GROUPS): the background scenes' own anomalies and the
sub-pixel targets implanted in them (bench/implanted.py) — never an evaluation scene.

Rule, fixed (and committed with this file) before any of its figures was computed:
- scenes: the 4 "background anomalies" scenes and the 4 "implanted targets" scenes;
- cubes (SPEC §0 scaling): "original", the first min(200, B) bands; "enhanced", H + F_spe + F_spa (fusion B's
  cube) of the bundled model of the scene's band count (fers-aviris-200 on the first 200 bands where the
  scene has them, else fers-aviris-100 on the first 100), as bench/ae_harness.py builds them;
- runs: the AE of fers.detect.ae (ae_iterations), 50 iterations, seeds SEEDS; every candidate is computed
  from these runs' per-iteration maps and losses (never from a label);
- candidates (a map is divided by its mean over the valid pixels before it is averaged with others):
  * iteration-k, k in FIXED: the map of iteration k;
  * mean-k, k in MEANS: the mean of the maps of iterations 1..k;
  * loss-plateau: the map of the first iteration t >= 5 whose loss fell by less than PLATEAU (relative)
    over the 5 iterations before it (loss[t-5] - loss[t] < PLATEAU * loss[t-5]); the 50th if none;
  * seeds-S × each of the above: the mean over the SEEDS runs of that candidate's map;
- figure: per scene the AUC (over the pixels the group counts); a single-run candidate's AUC is the mean over
  the seeds of its per-seed AUC; per (group, cube) the mean over the group's 4 scenes; the figure is the mean
  of the four (group, cube) means (each group and each cube weighs the same);
- decision: of the candidates whose figure is within TIE of the highest, the cheapest one (cost = runs ×
  iterations trained; loss-plateau counts 50, its worst case), then the one with fewer iterations; that
  becomes the product's rule (fers.detect.ae). TIE is 0.003, about twice the seed standard error of a
  single-run figure measured for the bundled models' seeds (research/ensemble_candidates.py); this script
  prints the AE's own seed standard error beside it.

``nice .venv/bin/python research/ae_rule.py`` (CPU, a few minutes). Prints per scene the candidates' AUC,
the group means, the figure of each candidate and the decision; research/decisions/ae-rule.json keeps them.
"""
import json
import os
import statistics
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(os.path.dirname(_HERE), "bench")]
from ae_harness import cubes, trajectory  # noqa: E402
from bench_accuracy import GROUPS, scene_data  # noqa: E402

from fers.metrics import roc_auc  # noqa: E402

SEEDS = [0, 1, 2, 3, 4]
FIXED = [5, 10, 15, 20, 30, 40, 50]
MEANS = [20, 50]
PLATEAU = 0.05
TIE = 0.003
SELECTION = ("background anomalies", "implanted targets")
CUBE_LABELS = {"original": "original", "enhanced (bundled)": "enhanced"}


def plateau_iteration(losses):
    """1-based iteration of the loss-plateau stop."""
    for t in range(5, len(losses)):
        if losses[t - 5] - losses[t] < PLATEAU * losses[t - 5]:
            return t + 1
    return len(losses)


def normalised(m):
    return m / m.mean()


def candidate_maps(maps, losses):
    """{candidate: (map over the valid pixels, iterations trained)} of one run."""
    out = {f"iteration-{k}": (maps[k - 1], k) for k in FIXED}
    for k in MEANS:
        out[f"mean-{k}"] = (np.mean([normalised(m) for m in maps[:k]], axis=0), k)
    t = plateau_iteration(losses)
    out["loss-plateau"] = (maps[t - 1], 50)
    return out


def main():
    per_scene = {}  # (group, cube, scene) → {candidate: auc}
    cost = {}
    plateau_at = []
    for group in SELECTION:
        for name in GROUPS[group]:
            for label, (cube, valid, gt, counted, bands) in cubes(scene_data(name, group)).items():
                if label not in CUBE_LABELS:
                    continue
                m = np.asarray(counted, bool)[valid]
                y = np.asarray(gt, bool)[valid][m]
                runs = []
                for seed in SEEDS:
                    maps, losses = trajectory(cube, valid, seed)
                    plateau_at.append(plateau_iteration(losses))
                    runs.append(candidate_maps(maps, losses))
                aucs = {}
                for c in runs[0]:
                    aucs[c] = statistics.mean(roc_auc(r[c][0][m], y) for r in runs)
                    aucs[f"seeds-{len(SEEDS)} × {c}"] = roc_auc(
                        np.mean([normalised(r[c][0]) for r in runs], axis=0)[m], y)
                    aucs[f"seed-sd {c}"] = statistics.stdev(roc_auc(r[c][0][m], y) for r in runs)
                    cost[c] = runs[0][c][1]
                    cost[f"seeds-{len(SEEDS)} × {c}"] = len(SEEDS) * runs[0][c][1]
                per_scene[(group, CUBE_LABELS[label], name)] = aucs
                print(f"{group:21s} {name:12s} {CUBE_LABELS[label]:8s} {bands} bands: " + ", ".join(
                    f"{c} {aucs[c]:.4f}" for c in ("iteration-10", "iteration-20", "iteration-50", "mean-50",
                                                    "loss-plateau", "seeds-5 × iteration-20")), flush=True)
    candidates = [c for c in cost]
    cells = sorted({(g, cu) for g, cu, _ in per_scene})
    means = {c: {cell: statistics.mean(v[c] for k, v in per_scene.items() if k[:2] == cell) for cell in cells}
             for c in candidates + [f"seed-sd {c}" for c in candidates if not c.startswith("seeds-")]}
    figure = {c: statistics.mean(means[c].values()) for c in candidates}
    # seed SE of a single-run figure: per scene sd/√seeds, averaged as the figure is
    se = {c: statistics.mean(means[f"seed-sd {c}"].values()) / len(SEEDS) ** 0.5
          for c in candidates if not c.startswith("seeds-")}
    print()
    print("| candidate | " + " | ".join(f"{g[:10]} {cu}" for g, cu in cells) + " | figure | cost | seed SE |")
    print("|" + " --- |" * (len(cells) + 4))
    for c in sorted(candidates, key=lambda c: -figure[c]):
        print(f"| {c} | " + " | ".join(f"{means[c][cell]:.4f}" for cell in cells)
              + f" | {figure[c]:.4f} | {cost[c]} | {se.get(c, float('nan')):.4f} |")
    best = max(figure.values())
    near = [c for c in candidates if figure[c] >= best - TIE]
    choice = min(near, key=lambda c: (cost[c], int(c.rsplit("-", 1)[-1]) if c[-1].isdigit() else 99))
    print(f"\nloss-plateau stopped at iterations {sorted(plateau_at)}")
    print(f"highest figure {best:.4f}; within {TIE}: {', '.join(near)}")
    print(f"decision: {choice} (figure {figure[choice]:.4f}, cost {cost[choice]} iterations)")
    out = os.path.join(_HERE, "decisions", "ae-rule.json")
    with open(out, "w") as f:
        json.dump({"rule": "research/ae_rule.py (docstring)", "seeds": SEEDS, "figure": figure, "cost": cost,
                   "group_cube_means": {c: {f"{g} / {cu}": v for (g, cu), v in means[c].items()} for c in candidates},
                   "per_scene": {" / ".join(k): {c: v[c] for c in candidates} for k, v in per_scene.items()},
                   "seed_se": se, "plateau_iterations": sorted(plateau_at), "decision": choice}, f, indent=1)
    print(f"written {out}")


if __name__ == "__main__":
    main()
