"""The default threshold of the anomaly mask and objects: chosen on the selection groups, by a rule fixed beforehand.

``fers:detect``'s MASK and OBJECTS (and ``fers detect --mask/--objects``) call a pixel anomalous when its score
is above the P-th percentile of the scene's valid scores. P was 99.5 by hand. It is chosen here on the two
groups that may choose anything (bench_accuracy.GROUPS): the background scenes' own anomalies and the
sub-pixel targets implanted in them (bench/implanted.py) — never an evaluation scene.

Rule, fixed (and committed with this file) before any of its figures was computed:
- the map: what ``fers:detect`` gives with only INPUT and OUTPUT (STRATEGY=auto, the bundled model the engine
  picks for the scene, ``fers.pipeline.default_model`` with BANDS=0, the model's bands by position since these
  scenes carry no wavelengths, the default trimmed RX);
- the threshold: ``fers.objects.threshold`` over every valid pixel of the scene, as the products are made;
- candidates: P in CANDIDATES;
- figure: the F1 score of the mask (score > threshold) against the group's truth, over the pixels the group
  counts (implanted targets: every pixel but the host's own objects and their margin, as their AUC counts),
  per scene; the mean over a group's scenes; the mean of the two group means (each group weighs the same:
  objects of many pixels, and one-pixel targets);
- the P with the highest figure becomes the default; a tie (equal to 4 decimals) goes to the higher P, which
  flags fewer pixels. IoU is printed beside it and decides nothing.

Prints per scene and per group F1 and IoU for each candidate, and the decision.
``nice .venv/bin/python research/threshold.py`` (CPU, a minute or two).
"""
import os
import statistics
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(os.path.dirname(_HERE), "bench")]
from bench_accuracy import GROUPS, scaled_bands, scene_data  # noqa: E402

from fers.checkpoint import load_model  # noqa: E402
from fers.feedback import Feedback  # noqa: E402
from fers.objects import threshold  # noqa: E402
from fers.pipeline import default_model, score_scene  # noqa: E402

CANDIDATES = [90.0, 95.0, 97.0, 98.0, 98.5, 99.0, 99.25, 99.5, 99.75, 99.9]
SELECTION = ("background anomalies", "implanted targets")


def mask_scores(scores, valid, gt, counted, p):
    """(F1, IoU) of the mask at the P-th percentile against the truth, over the counted pixels."""
    t = threshold(scores, valid, percentile=p).value
    mask = (scores > t) & valid
    tp = int((mask & gt & counted).sum())
    fp = int((mask & ~gt & counted).sum())
    fn = int((~mask & gt & counted).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    return f1, iou


def main():
    models = {}
    figures = {g: {} for g in SELECTION}  # group → scene → {p: (f1, iou)}
    for group in SELECTION:
        for name in GROUPS[group]:
            scene = scene_data(name, group)
            path = default_model(0, scene[0].band_count, Feedback())
            if path not in models:
                models[path] = load_model(path)
            model = models[path]
            cube, valid, gt, counted = scaled_bands(scene, model.bands)
            scores, info = score_scene(cube, valid, "auto", "rx", model, "cpu")
            gt = np.asarray(gt, bool)
            figures[group][name] = {p: mask_scores(scores, valid, gt, counted, p) for p in CANDIDATES}
            print(f"{group:21s} {name:12s} {scene[0].band_count} bands → {os.path.basename(path)}, "
                  f"{info['strategy']}, {int((gt & counted).sum())} anomalous pixels of {int(counted.sum())}",
                  flush=True)
    print()
    print("P        " + "  ".join(f"{g[:10]:>10s} F1  IoU   " for g in SELECTION) + "  figure (mean F1)")
    figure = {}
    for p in CANDIDATES:
        cells, means = [], []
        for g in SELECTION:
            f1 = statistics.mean(v[p][0] for v in figures[g].values())
            iou = statistics.mean(v[p][1] for v in figures[g].values())
            cells.append(f"{f1:10.4f} {iou:6.4f}  ")
            means.append(f1)
        figure[p] = round(statistics.mean(means), 4)
        print(f"{p:<7g}  " + "  ".join(cells) + f"  {figure[p]:.4f}")
    print()
    for g in SELECTION:
        for name, v in figures[g].items():
            print(f"{g[:10]:10s} {name:12s} F1 " + " ".join(f"{p:g}:{v[p][0]:.3f}" for p in CANDIDATES))
    best = max(CANDIDATES, key=lambda p: (figure[p], p))
    print(f"\ndecision: default threshold percentile {best:g} (mean F1 {figure[best]:.4f}; "
          f"99.5 before: {figure[99.5]:.4f})")


if __name__ == "__main__":
    main()
