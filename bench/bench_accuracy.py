"""Per-scene ROC AUC on every evaluation scene of ../shared/data/README.md (`make bench-accuracy`).

Methods, per scene and band count (first 100 / first 200 bands, where the scene has them):
RX on the raw bands (the SPEC's plain RX, the baseline), the trimmed RX of the enhanced
strategies on the raw bands too (so that what the detector gains alone is visible), RX(H + F_spe)
with the FERS authors' checkpoint of that band count (aviris_ng-100bands, aviris-200bands), and
the default (bundled) model with strategy spectral, fusion A (multiplicative) and fusion B
(additive). The enhanced runs, the authors' included, use what ``fers detect`` uses for them: the
trimmed RX of fers.detect.rx (research/trimmed_rx.py chose it). Ground truth is read only for the AUC.
Seconds per scene are scoring time (features + detector), reading excluded.

The groups "background anomalies" and "implanted targets" are not evaluations: those are
the training scenes' own (masked) anomalies, and sub-pixel targets made of those anomalies'
spectra implanted elsewhere in the same scenes (bench/implanted.py), the figures that may
choose between training recipes.

Writes bench/out/accuracy.md and bench/out/accuracy.csv and prints the Markdown.
``--models 100=PATH 200=PATH`` evaluates other checkpoints in place of the bundled ones.
"""
import argparse
import csv
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DATA, REPO  # noqa: E402
from implanted import HOSTS, ImplantedScene  # noqa: E402

from fers.bundled import list_models  # noqa: E402
from fers.checkpoint import load_model  # noqa: E402
from fers.detect.rx import DEFAULT_TRIM, rx  # noqa: E402
from fers.io import load_ground_truth, open_source  # noqa: E402
from fers.metrics import roc_auc  # noqa: E402
from fers.pipeline import enhance_features, score_scene  # noqa: E402
from fers.preprocess import scale_cube  # noqa: E402

GROUPS = {
    "paper set": ["abu-airport-1", "abu-airport-2", "abu-airport-3", "abu-airport-4", "abu-urban-3",
                  "LREN__abu-beach-4", "RCRD__dataPavia"],
    "other held-out": ["abu-urban-4", "abu-urban-5", "abu-beach-2", "sandiego", "sandiego_plane", "NJCR__Sandiego",
                       "DSC__Sandiego_224b", "AVIRIS-1", "AVIRIS-2", "CNND__AVIRIS-I_120", "hydice", "HYDICE_data",
                       "RCRD__dataHYDICE", "TAEF__MUUFL"],
    # Not evaluation: the ABU background scenes' own anomalies, masked (with a margin) out of every training
    # patch. The only ground truth allowed to choose between training recipes (scripts/train_default.py).
    "background anomalies": ["abu-urban-1", "abu-urban-2", "abu-beach-1", "abu-beach-3"],
    # Not evaluation either: sub-pixel targets of those scenes' own object spectra (bench/implanted.py).
    "implanted targets": HOSTS,
}
TRUTH_FILES = {"RCRD__dataPavia": "RCRD__maskPavia", "RCRD__dataHYDICE": "RCRD__maskHYDICE"}
AUTHORS = {100: "aviris_ng-100bands", 200: "aviris-200bands"}
OURS = (("spectral", "ours spectral"), ("multiplicative", "ours A"), ("additive", "ours B"))
COLUMNS = ["RX", "RX trimmed", "authors"] + [label for _, label in OURS]


def default_models():
    """{bands: path} of the bundled models (one per band count; the first by name wins)."""
    out = {}
    for m in list_models():
        mdl = load_model(m.path)
        if mdl.spa is not None:
            out.setdefault(mdl.bands, m.path)
    return out


def scene_data(name, group=None):
    """(source, anomalies, pixels the detector may use, pixels the AUC counts)."""
    if group == "implanted targets":
        scene = ImplantedScene(name)
        return scene, scene.targets, np.ones(scene.targets.shape, bool), scene.auc_mask
    raw = os.path.join(DATA, "raw")
    src = open_source(os.path.join(raw, name + ".mat"))
    if name in TRUTH_FILES:
        gt, gt_valid = load_ground_truth(os.path.join(raw, TRUTH_FILES[name] + ".mat"))
    else:
        g = np.asarray(src.ground_truth())
        gt, gt_valid = g > 0, np.ones(g.shape, bool)
    return src, gt, gt_valid, gt_valid


def scaled_bands(scene, bands):
    """(cube, valid, gt, counted) of a scene_data() scene's first ``bands`` bands, SPEC §0-scaled; None when it
    has fewer."""
    src, gt, gt_valid, counted = scene
    if src.band_count < bands:
        return None
    cube, valid = src.read(range(bands))
    valid &= gt_valid
    cube, _ = scale_cube(cube, valid)
    return cube, valid, gt, valid & counted


def group_scenes(group, bands):
    """(name, (cube, valid, gt, counted)) of each scene of a group that has ``bands`` bands."""
    for name in GROUPS[group]:
        scaled = scaled_bands(scene_data(name, group), bands)
        if scaled is not None:
            yield name, scaled


def spe_features(cube, spe):
    """F_spe of one Spe-FEN (or ensemble) on a scaled (B, H, W) cube, on the CPU (the seed and recipe studies
    score networks that are not whole models)."""
    return enhance_features(cube, type("M", (), {"spe": spe})(), True, False, "cpu")[0]


def rx_auc(x, valid, gt, counted, trim=0.0):
    """ROC AUC of RX on a cube over the counted pixels. trim 0: the plain RX with which every recipe and seed
    decision was made (research/device_recipes.py keeps it, so its pre-registered baseline still applies)."""
    scores = rx(np.asarray(x, dtype=np.float32), valid, trim=trim)[0]
    return float(roc_auc(scores, gt, counted & np.isfinite(scores)))


def timed_auc(cube, valid, gt, counted, strategy, model, rx_trim=None):
    t0 = time.perf_counter()
    scores, _ = score_scene(cube, valid, strategy, "rx", model, "cpu", rx_trim=rx_trim)
    return roc_auc(scores, gt, counted & np.isfinite(scores)), time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=[], help="BANDS=PATH: evaluate these instead of the bundled ones")
    ap.add_argument("--bands", nargs="*", type=int, default=[100, 200])
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "out"))
    ap.add_argument("--groups", nargs="*", default=list(GROUPS))
    args = ap.parse_args()
    ours = default_models()
    for spec in args.models:
        b, p = spec.split("=", 1)
        ours[int(b)] = p
    weights = os.environ.get("FERS_WEIGHTS") or os.path.join(os.path.dirname(DATA), "weights")
    models = {}
    for b in args.bands:
        a = os.path.join(weights, "fers-reference", AUTHORS[b])
        models[b] = (load_model(a) if os.path.isdir(a) else None, load_model(ours[b]) if b in ours else None)
    rows = []
    for group in args.groups:
        for name in GROUPS[group]:
            scene = scene_data(name, group)
            for b in args.bands:
                scaled = scaled_bands(scene, b)
                if scaled is None:
                    continue
                cube, valid, gt, counted = scaled
                authors, mine = models[b]
                runs = [("RX", "none", None, 0.0), ("RX trimmed", "none", None, DEFAULT_TRIM),
                        ("authors", "spectral", authors, None)]
                runs += [(label, s, mine, None) for s, label in OURS]
                for label, strategy, model, trim in runs:
                    if strategy != "none" and model is None:
                        continue
                    auc, sec = timed_auc(cube, valid, gt, counted, strategy, model, trim)
                    rows.append({"scene": name, "group": group, "bands": b, "method": label,
                                 "auc": round(auc, 6), "seconds": round(sec, 4)})
                print(f"{group}, {name} {b}: " + ", ".join(
                    f"{r['method']} {r['auc']:.4f}" for r in rows
                    if r["group"] == group and r["scene"] == name and r["bands"] == b), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "accuracy.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["scene", "group", "bands", "method", "auc", "seconds"])
        w.writeheader()
        w.writerows(rows)
    md = markdown(rows, args.bands, args.groups, {b: ours.get(b) for b in args.bands})
    with open(os.path.join(args.out, "accuracy.md"), "w") as f:
        f.write(md)
    print(md)


def group_table(rows, bands, columns, headers, extra=None):
    """Markdown lines of accuracy rows (dicts as in accuracy.csv) at ``bands`` bands: one line per group and
    scene with a cell per method of ``columns`` (titled ``headers``), then each group's mean, in bold, where
    every scene has that method. ``extra``: (titles, cells(table, scene)) of more cells per scene line (the
    mean line leaves them empty). Also the model cards' table (scripts/model_card.py)."""
    titles, cells = extra or ((), None)
    sel = [r for r in rows if int(r["bands"]) == bands]
    lines = ["| group | scene | " + " | ".join(list(headers) + list(titles)) + " |",
             "|" + " --- |" * (2 + len(headers) + len(titles))]
    for group in dict.fromkeys(r["group"] for r in sel):
        names = list(dict.fromkeys(r["scene"] for r in sel if r["group"] == group))
        # keyed by group too: the two selection groups hold the same scenes (with and without implants)
        table = {(r["scene"], r["method"]): r for r in sel if r["group"] == group}
        for n in names:
            lines.append(f"| {group} | {n} | " + " | ".join(
                f"{float(table[(n, c)]['auc']):.4f}" if (n, c) in table else "" for c in columns)
                + "".join(f" | {x}" for x in (cells(table, n) if cells else [])) + " |")
        means = []
        for c in columns:
            v = [float(table[(n, c)]["auc"]) for n in names if (n, c) in table]
            means.append(f"**{np.mean(v):.4f}**" if len(v) == len(names) else "")
        lines.append(f"| {group} | **mean of {len(names)}** | " + " | ".join(means) + " |" * (len(titles) + 1))
    return lines


EVALUATION = ("paper set", "other held-out")
FLOOR = 0.005  # issue 5: on no evaluation scene more than this below the scene's RX


def acceptance(rows, bands, names=None):
    """Markdown lines of issue 5's acceptance at ``bands`` bands, per strategy of the default model (and the
    authors' checkpoint, for reference): the paper-set mean against RX's and the authors' (compared as reported,
    to 4 decimals), and every evaluation scene on which it falls more than FLOOR below that scene's RX.
    ``names``: {method label: what the line calls it} (the model cards' column titles)."""
    names = names or {}
    sel = [r for r in rows if int(r["bands"]) == bands and r["group"] in EVALUATION]
    auc = {(r["group"], r["scene"], r["method"]): float(r["auc"]) for r in sel}
    paper = list(dict.fromkeys(r["scene"] for r in sel if r["group"] == "paper set"))

    def mean(method):
        v = [auc[("paper set", n, method)] for n in paper if ("paper set", n, method) in auc]
        return round(float(np.mean(v)), 4) if v and len(v) == len(paper) else None

    rx, authors = mean("RX"), mean("authors")
    shown = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"| strategy | paper-set mean | above RX ({shown(rx)}) | at least the authors' ({shown(authors)}) | "
             f"evaluation scenes more than {FLOOR} below their RX |", "| --- | --- | --- | --- | --- |"]
    for label in ["authors"] + [label for _, label in OURS]:
        m = mean(label)
        if m is None:
            continue
        below = [f"{n} ({a:.4f} vs {auc[(g, n, 'RX')]:.4f})" for (g, n, meth), a in auc.items()
                 if meth == label and (g, n, "RX") in auc and a < auc[(g, n, "RX")] - FLOOR]
        lines.append(f"| {names.get(label, label)} | {m:.4f} | {'yes' if rx is not None and m > rx else 'no'} | "
                     f"{'' if label == 'authors' else 'yes' if authors is not None and m >= authors else 'no'} | "
                     f"{'; '.join(below) if below else 'none'} |")
    return lines


def markdown(rows, bands, groups, ours):
    def cells(table, n):
        rx = float(table[(n, "RX")]["auc"])
        best = [float(table[(n, c)]["auc"]) for c in ("ours A", "ours B") if (n, c) in table]
        return [f"{max(best) - rx:+.4f}" if best else "", f"{float(table[(n, 'RX')]['seconds']):.3f}",
                f"{float(table[(n, 'ours B')]['seconds']):.3f}" if (n, "ours B") in table else ""]

    lines = []
    for b in bands:
        sel = [r for r in rows if r["bands"] == b and r["group"] in groups]
        if not sel:
            continue
        lines += [f"### First {b} bands (default model: {os.path.basename(ours[b]) if ours[b] else 'none'})", ""]
        lines += group_table(sel, b, COLUMNS, COLUMNS, (["best default − RX", "s/scene RX", "s/scene ours B"], cells))
        lines.append("")
        if "paper set" in groups:
            lines += [f"Acceptance of issue 5 at {b} bands (evaluation scenes only):", ""] + acceptance(sel, b) + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
