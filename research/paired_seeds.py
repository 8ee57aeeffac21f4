"""Paired seed comparisons of a test-time choice: what research/trimmed_rx.py and research/spe_gain.py share.

A choice that needs no retraining (the RX trim, the weight of F_spe) is scored, for every stage-1 seed
10-16 of the bundled recipe, on the implanted targets with and without it; the seeds' paired differences
decide (their mean above twice its standard error), and the bundled model's background-anomaly means of
spectral, fusion A and fusion B guard (at most GUARD lower). Each script holds its own rule and candidates.
"""
import argparse
import os
import statistics

import numpy as np

from bench_accuracy import group_scenes, rx_auc, spe_features
from common import REPO
from ensemble_candidates import members
from fers.metrics import roc_auc
from fers.pipeline import score_scene

GUARD = 0.001
STRATEGIES = {"spectral": "spectral", "A": "multiplicative", "B": "additive"}


def seed10_for(bands, seed10_100, bundled):
    """The model whose Spe-FEN is seed 10: the v3 100-band model (given), the bundled 200-band model itself."""
    return seed10_100 if bands == 100 else bundled[200]


def implanted_seed_aucs(bands, seeds_file, seed10, variants):
    """{key: {seed: mean over hosts of the implanted-target AUC}} of strategy spectral, RX(H + gain·F_spe) with
    RX trim ``trim`` for each ``variants`` {key: (gain, trim)}."""
    nets = members(bands, seeds_file, seed10)
    per_host = {}
    for name, (cube, valid, gt, counted) in group_scenes("implanted targets", bands):
        for seed, net in nets.items():
            f = spe_features(cube, net)
            for key, (gain, trim) in variants.items():
                per_host.setdefault(key, {}).setdefault(seed, []).append(
                    rx_auc(cube + gain * f, valid, gt, counted, trim))
        print(f"{bands} implanted {name}: done", flush=True)
    return {k: {s: float(np.mean(v)) for s, v in d.items()} for k, d in per_host.items()}


def guard_means(bands, variants):
    """{key: {strategy label: background-anomaly mean AUC}} for ``variants`` {key: (model, rx_trim)} (None:
    the default detector)."""
    out = {}
    for _, (cube, valid, gt, counted) in group_scenes("background anomalies", bands):
        for key, (model, trim) in variants.items():
            for label, strategy in STRATEGIES.items():
                s = score_scene(cube, valid, strategy, "rx", model, "cpu", rx_trim=trim)[0]
                out.setdefault(key, {}).setdefault(label, []).append(roc_auc(s, gt, counted & np.isfinite(s)))
    return {k: {lb: float(np.mean(v)) for lb, v in d.items()} for k, d in out.items()}


def paired_differences(bands, what, aucs, base, candidates):
    """{candidate: [AUC(candidate) − AUC(base) per seed]}, printing each variant's seeds and each mean ± SE."""
    seeds = sorted(aucs[base])
    for k in [base] + list(candidates):
        print(f"{bands} bands, {what} {k}: " + ", ".join(f"s{s} {aucs[k][s]:.4f}" for s in seeds)
              + f" | mean {np.mean([aucs[k][s] for s in seeds]):.4f}", flush=True)
    diffs = {k: [aucs[k][s] - aucs[base][s] for s in seeds] for k in candidates}
    for k, d in diffs.items():
        print(f"{bands} bands, {what} {k}: d = {statistics.mean(d):+.4f} ± SE {statistics.stdev(d) / len(d) ** 0.5:.4f}")
    return diffs


def print_guards(bands, what, guards):
    for k, g in guards.items():
        print(f"{bands} bands, background anomalies, {what} {k}: " + ", ".join(f"{lb} {v:.4f}" for lb, v in g.items()))


def reasons_against(d, guard, guard_base):
    """Why a candidate fails at one band count ([] when it passes): its seeds' paired differences ``d`` not
    above twice their standard error, or a background-anomaly mean of ``guard`` more than GUARD below
    ``guard_base``."""
    mean, se = statistics.mean(d), statistics.stdev(d) / len(d) ** 0.5
    why = [] if mean > 2 * se else [f"mean d {mean:+.4f} not above 2 × SE {2 * se:.4f}"]
    return why + [f"background anomalies {label} {v:.4f} < {guard_base[label]:.4f} − {GUARD}"
                  for label, v in guard.items() if v < guard_base[label] - GUARD]


def pick(reasons, score, default):
    """(adopted, verdicts): of the candidates with no reason against them (``reasons`` {candidate: [why]}),
    the one with the highest ``score`` {candidate: mean difference}, else ``default``."""
    verdicts = {k: why or ["passes"] for k, why in reasons.items()}
    passing = {k: score[k] for k, why in reasons.items() if not why}
    return (max(passing, key=passing.get) if passing else default), verdicts


def arguments(doc):
    """The command line both scripts share: where the seeds are and which model is the 100-band seed 10."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--seeds", default=os.path.join(REPO, "runs", "seeds"))
    ap.add_argument("--seed10-100", required=True,
                    help="the v3 100-band model, whose Spe-FEN is seed 10 (git show d7e7245~1:resources/models/fers-aviris-100.pt)")
    return ap
