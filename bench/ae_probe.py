"""Why our AE with the authors' selection is below Table II on abu-airport-1: protocol variants, the harness only.

Each variant changes one thing of the protocol (bench/ae_harness.py: first 200 bands, SPEC §0 scaling, lr 1e-3,
50 iterations, torch's default init) and reports the authors' ground-truth selection over three seeds on the
airports whose Table II AE figure we have. It decides nothing in the product; it tells docs/ARCHITECTURE.md
which protocol differences can and cannot explain the gap.

``nice .venv/bin/python bench/ae_probe.py`` (CPU, a few minutes).
"""
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ae_harness import PAPER_AE  # noqa: E402
from common import DATA  # noqa: E402

from fers.detect.ae import ae_iterations  # noqa: E402
from fers.io import open_source  # noqa: E402
from fers.metrics import roc_auc  # noqa: E402
from fers.preprocess import scale_cube  # noqa: E402

SEEDS = [0, 1, 2]


def per_band(cube, valid):
    lo = cube[:, valid].min(axis=1)[:, None, None]
    hi = cube[:, valid].max(axis=1)[:, None, None]
    return (cube - lo) / np.maximum(hi - lo, 1e-12)


VARIANTS = {
    "harness (200 bands, lr 1e-3, 50 it.)": dict(),
    "all bands": dict(bands=None),
    "first 100 bands": dict(bands=100),
    "per-band min-max first": dict(transform=per_band),
    "lr 3e-3": dict(lr=3e-3),
    "lr 3e-4, 150 it.": dict(lr=3e-4, iterations=150),
}


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="*", default=["abu-airport-1", "abu-airport-2", "abu-airport-3"])
    ap.add_argument("--seeds", nargs="*", type=int, default=SEEDS)
    args = ap.parse_args()
    for name in args.scenes:
        src = open_source(os.path.join(DATA, "raw", name + ".mat"))
        gt = np.asarray(src.ground_truth()) > 0
        for label, v in VARIANTS.items():
            bands = v.get("bands", 200) or src.band_count
            cube, valid = src.read(list(range(bands)))
            cube = np.asarray(cube, dtype=np.float32)
            if "transform" in v:
                cube = v["transform"](cube, valid).astype(np.float32)
            cube, _ = scale_cube(cube, valid)
            best, at = [], []
            for seed in args.seeds:
                c = [roc_auc(s.numpy(), gt[valid]) for _, _, s in
                     ae_iterations(cube, valid, iterations=v.get("iterations", 50), lr=v.get("lr", 1e-3), seed=seed)]
                best.append(max(c))
                at.append(int(np.argmax(c)) + 1)
            print(f"{name:14s} {label:38s} {statistics.mean(best):.4f} ± {statistics.stdev(best) if len(best) > 1 else 0:.4f} "
                  f"(iterations {at}); Table II {PAPER_AE[(name, 'original')]:.3f}", flush=True)


if __name__ == "__main__":
    main()
