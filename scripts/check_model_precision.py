"""Score maps and AUC of the bundled models against reference files of the same models (issue 19).

For every model (100 and 200 bands), every strategy it supports (spectral, spatial, fusion A =
multiplicative, fusion B = additive) and every scene of the paper set (Makefile PAPER_SET,
bench/bench_accuracy.py GROUPS) that has the model's bands, the same scaled cube is scored with
the reference model and with the candidate (by default: the files in resources/models), and this
prints max |Δscore| / score range (the reference map's range) and the ROC AUC of both.

The reference defaults to the models as they were before they were compacted (git revision
``REFERENCE_REV``, read with ``git show``): pass ``--reference 100=PATH 200=PATH`` for others.
Exit status 1 when a map moves by more than ``--tol`` of its range or an AUC changes at 4 decimals.

    .venv/bin/python scripts/check_model_precision.py
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
from bench_accuracy import GROUPS, scaled_bands, scene_data  # noqa: E402

from fers.checkpoint import load_model  # noqa: E402
from fers.metrics import roc_auc  # noqa: E402
from fers.pipeline import score_scene  # noqa: E402

# the last revision whose resources/models/fers-aviris-{100,200}.pt held the frozen backbone in the file
REFERENCE_REV = "a268724"
STRATEGIES = ("spectral", "spatial", "multiplicative", "additive")


def reference_files(rev, out_dir):
    out = {}
    for b in (100, 200):
        path = os.path.join(out_dir, f"fers-aviris-{b}.pt")
        with open(path, "wb") as f:
            subprocess.run(["git", "-C", REPO, "show", f"{rev}:resources/models/fers-aviris-{b}.pt"], stdout=f,
                           check=True)
        out[b] = path
    return out


def pairs(specs):
    return {int(b): p for b, p in (s.split("=", 1) for s in specs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", nargs="*", default=[], help="BANDS=PATH (default: git " + REFERENCE_REV + ")")
    ap.add_argument("--candidate", nargs="*", default=[], help="BANDS=PATH (default: resources/models)")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest |Δscore| allowed, as a share of the range")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    ref = pairs(args.reference) or reference_files(REFERENCE_REV, tmp.name)
    cand = pairs(args.candidate) or {b: os.path.join(REPO, "resources", "models", f"fers-aviris-{b}.pt")
                                     for b in (100, 200)}
    worst, auc_moved = 0.0, 0
    print(f"{'model':>5} {'scene':<18} {'strategy':<15} {'max|Δ|/range':>12} {'AUC before':>10} {'AUC after':>10}")
    for b in sorted(cand):
        before, after = load_model(ref[b]), load_model(cand[b])
        for name in GROUPS["paper set"]:
            scaled = scaled_bands(scene_data(name), b)
            if scaled is None:
                continue
            cube, valid, gt, counted = scaled
            for strategy in STRATEGIES:
                s0 = score_scene(cube, valid, strategy, "rx", before, "cpu")[0]
                s1 = score_scene(cube, valid, strategy, "rx", after, "cpu")[0]
                ok = np.isfinite(s0)
                rel = float(np.nanmax(np.abs(s1[ok] - s0[ok])) / (np.nanmax(s0) - np.nanmin(s0)))
                a0 = roc_auc(s0, gt, counted & ok)
                a1 = roc_auc(s1, gt, counted & np.isfinite(s1))
                worst = max(worst, rel)
                auc_moved += round(a0, 4) != round(a1, 4)
                print(f"{b:>5} {name:<18} {strategy:<15} {rel:12.2e} {a0:10.4f} {a1:10.4f}", flush=True)
    print(f"largest |Δscore| / range: {worst:.2e} (tolerance {args.tol:g}); AUCs changed at 4 decimals: {auc_moved}")
    sys.exit(1 if worst > args.tol or auc_moved else 0)


if __name__ == "__main__":
    main()
