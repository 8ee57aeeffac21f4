"""Seed ensembles of the bundled Spe-FEN: RX(H + mean_k F_spe^k), scored per group.

Members: the seeds that research/device_seeds.py trained with the bundled stage-1 recipe
(runs/seeds/seeds-<bands><tag>.pt) and, with ``--seed10 BANDS=MODEL``, that model's Spe-FEN as
seed 10 (for the rule below: the v3 bundled models, whose Spe-FEN was seed 10 of the recipe; the
100-band bundled model is itself an ensemble since v4). The K = 4 / K = 7 ensembles are scored when
all their seeds are present.

Rule, fixed before any figure was seen: the ensemble of the bundled Spe-FEN and seeds
11-13 (K = 4: a Spe-FEN pass costs a fraction of a fusion run, four of them stay below the
Spa-FEN's cost) may replace the single Spe-FEN when its spectral mean on the background
scenes' own masked anomalies (group "background anomalies", the only ground truth that
chooses) is not more than 0.001 below the single Spe-FEN's. K = 7 and every single seed are
printed too, to show the seed-to-seed spread; they choose nothing.

``--groups`` defaults to the selection group; the evaluation groups are for reporting.
"""
import argparse
import json
import os
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.join(os.path.dirname(_HERE), "bench"), os.path.join(os.path.dirname(_HERE), "scripts")]
from common import REPO  # noqa: E402

import torch  # noqa: E402
from bench_accuracy import group_scenes, rx_auc, spe_features  # noqa: E402
from fers.checkpoint import load_model, spefen_from_state  # noqa: E402

ENSEMBLES = {"K4": [10, 11, 12, 13], "K7": [10, 11, 12, 13, 14, 15, 16]}


def rebuild(bands, states, label=""):
    """{key: Spe-FEN} of stage-1 runs kept as their trained CWL/FPL tensors ({key: state}), on the bundled
    model's layer1 (the authors' frozen ImageNet layer1, the same in every run)."""
    bundled = load_model(f"fers-aviris-{bands}")
    base = {k: v for k, v in bundled.spe.state_dict().items() if k.startswith("layer1.")}
    return {int(key): spefen_from_state(dict(base, **state), bundled.meta, f"{label}seed {key}")
            for key, state in states.items()}


def members(bands, seeds_file, seed10=None):
    """{seed: Spe-FEN}: the seeds file's runs and, as seed 10, ``seed10``'s Spe-FEN when given (the bundled
    model's before it became an ensemble)."""
    out = {10: load_model(seed10).spe} if seed10 else {}
    out.update(rebuild(bands, torch.load(seeds_file, weights_only=True)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bands", nargs="*", type=int, default=[100, 200])
    ap.add_argument("--groups", nargs="*", default=["background anomalies"])
    ap.add_argument("--seeds", default=os.path.join(REPO, "runs", "seeds"))
    ap.add_argument("--tag", default="", help="seed files seeds-<bands><tag>.pt, e.g. -j0.1 (spectral jitter)")
    ap.add_argument("--seed10", nargs="*", default=[], metavar="BANDS=MODEL",
                    help="the model whose Spe-FEN is seed 10 (the v3 bundled models: git show d7e7245~1:...)")
    ap.add_argument("--out", default=os.path.join(REPO, "runs", "seeds", "ensembles.json"))
    args = ap.parse_args()
    seed10 = dict(x.split("=", 1) for x in args.seed10)
    table = {}
    for b in args.bands:
        nets = members(b, os.path.join(args.seeds, f"seeds-{b}{args.tag}.pt"), seed10.get(str(b)))
        for group in args.groups:
            for name, (cube, valid, gt, counted) in group_scenes(group, b):
                feats = {s: spe_features(cube, n) for s, n in nets.items()}
                row = {}
                ensembles = [(k, v) for k, v in ENSEMBLES.items() if set(v) <= set(feats)]
                for label, seeds in [(f"s{s}", [s]) for s in sorted(feats)] + ensembles:
                    row[label] = round(rx_auc(cube + np.mean([feats[s] for s in seeds], axis=0), valid, gt, counted), 6)
                table.setdefault(str(b), {}).setdefault(group, {})[name] = row
                print(f"{b} {group} {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)
            rows = table[str(b)][group].values()
            means = {k: float(np.mean([r[k] for r in rows])) for k in next(iter(rows))}
            table[str(b)][group]["mean"] = {k: round(v, 6) for k, v in means.items()}
            singles = [v for k, v in means.items() if k.startswith("s")]
            print(f"{b} {group} MEAN: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items())
                  + f" | single seeds {np.mean(singles):.4f} ± {np.std(singles, ddof=1):.4f}", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(table, f, indent=1)


if __name__ == "__main__":
    main()
