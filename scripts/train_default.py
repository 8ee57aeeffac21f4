"""Regenerate the bundled default models (`make train-default`) from ../shared/data alone.

For each band count: stage 1 (FERD / Spe-FEN) on the background split of
../shared/data/README.md, once per seed where the recipe lists ``seeds`` (joined into one
Spe-FEN ensemble, fers.spectral.SpeFENEnsemble), then stage 2 (Spa-FEN) against that frozen
Spe-FEN, then
``compact``: the frozen ResNet-34 convolution weights of the Spa-FEN are rounded to
float16 (they are random and never trained, so nothing learned is rounded; BatchNorm
statistics and every trained tensor stay float32) and stored as the seed that draws them
plus 2 bits per weight (fers.spatial.frozen), so that two models fit the plugin
repository's 25 MB limit. Every step resumes where it stopped (the
trainers' resume files), so an interrupted run continues with the same command.

Evaluation scenes are never read here. Model selection is the trainers' own: the
epoch with the lowest loss on held-out background.

CUDA is used when present (``--device auto``); the hardware goes into the model card.
"""
import argparse
import json
import os
import platform
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("FERS_DATA") or os.path.abspath(os.path.join(REPO, "..", "shared", "data"))
WEIGHTS = os.environ.get("FERS_WEIGHTS") or os.path.join(os.path.dirname(DATA), "weights")

# ../shared/data/README.md, "background training sources" (LREN__abu-urban-2 is a copy of abu-urban-2)
BACKGROUND = ["abu-urban-1", "abu-urban-2", "abu-beach-1", "abu-beach-3", "jasperRidge2_R198", "Moffet",
              "Rcuprite50x90x188"]
# The frozen ImageNet layer1 of Wide-ResNet-101-2 (torchvision's weights) that the authors' enc.pt carries;
# layer2/3 of the training trunk stay random (nothing downloads here). Only layer1 reaches the Spe-FEN.
LAYER1 = os.path.join(WEIGHTS, "fers-reference", "aviris-200bands", "enc.pt")

# The paper's optimisation budget (SPEC §1-2: 60 epochs, batch 16), with an epoch of 16 steps: ~256 patches,
# about one HAD100 training set per epoch.
PAPER_BUDGET = dict(epochs=60, steps_per_epoch=16, batch=16, lr=0.005, seed=10, patch=64)
# what the scripts' --tiny runs change in the stage-1 recipe: one step, to try a script on a CPU
TINY_STAGE1 = dict(epochs=1, steps_per_epoch=1, batch=2)

# Per band count. 200 bands: only abu-urban-1/2 have ≥ 200 bands, so the AVIRIS scenes with 188–198 bands
# join through the band stretch (fers.train.data: resampled onto 200 band positions); Moffet (159) stays out.
# Stage 1 stays short: at the paper's budget it scored lower on the background anomalies (CHANGES).
# Stage 2 runs at the paper's budget: 960 steps of batch 16, about 1.5 h (100 bands) and 4 h (200 bands) on
# two CPU cores, 50 s and 81 s on an NVIDIA H100.
RECIPE = {
    # 100 bands: a Spe-FEN ensemble of four stage-1 seeds (fers.spectral.SpeFENEnsemble, CHANGES v4)
    100: {"stage1": dict(trunk="wide_resnet50_2", epochs=12, steps_per_epoch=8, batch=8, lr=0.005, seed=10, patch=64,
                         seeds=[10, 11, 12, 13]),
          "stage2": PAPER_BUDGET,
          # F_spe × 0.1 in the shipped model (H + 0.1·F_spe): chosen by research/spe_gain.py's rule (CHANGES v5, v6)
          "spe_gain": 0.1},
    200: {"band_stretch": 0.1,  # both stages: the Spa-FEN trains on the scenes its teacher saw
          "stage1": dict(trunk="wide_resnet50_2", epochs=6, steps_per_epoch=8, batch=8, lr=0.005, seed=10, patch=64),
          "stage2": PAPER_BUDGET},
}

# What changed from the first release (v1: both band counts 6 × 8 stage-1 steps and 5 × 8 stage-2 steps of
# batch 8, no band stretch) and what it did; figures are `make bench-accuracy` on each version's models.
# Decided beforehand: a new recipe replaces the old one when fusion A's mean AUC on the background scenes'
# own (masked, never trained on) anomalies does not drop by more than 0.001; evaluation scenes never choose.
# v3's candidates were trained on a lent GPU by research/device_candidates.py, which applies the same rule.
CHANGES = {
    100: "v2: stage 1 trained 12 × 8 steps instead of 6 × 8 (background-anomaly A 0.9965 → 0.9965; paper set "
         "A 0.9727 → 0.9719, B 0.9718 → 0.9720). v3: stage 2 at the paper's budget, 60 epochs × 16 "
         "steps of batch 16 instead of 5 × 8 of batch 8, on an NVIDIA H100 (50 s). Measured v2 → v3: "
         "background-anomaly A 0.9965 → 0.9964 (within the 0.001 the recipe rule allows); paper set A 0.9719 → 0.9716, "
         "B 0.9720 → 0.9715; other held-out A 0.9689 → 0.9674, B 0.9634 → 0.9617. Tried, not shipped: stage 1 "
         "at the paper's budget too (227 s on the H100): background-anomaly A 0.9961. v4: the Spe-FEN is "
         "an ensemble of four stage-1 runs, seeds 10-13 of the same recipe (seed 10 is v3's Spe-FEN; seeds 11-13 "
         "trained on an NVIDIA H100, 81 s), F_spe averaged, and stage 2 retrained against it at the paper's budget "
         "(41 s). Why: seven seeds of the v3 recipe (10 and 11-16, research/device_seeds.py, "
         "research/ensemble_candidates.py) spread by ±0.0006 (100 bands) and ±0.0016 (200) in background-anomaly "
         "spectral AUC, more than the 0.001 the recipe rule decides on (on the paper set, looked at only after the "
         "decision: ±0.0017 and ±0.0030). Rules fixed "
         "before any figure: the ensemble of seeds 10-13 could replace the single Spe-FEN if its background-anomaly "
         "spectral mean fell by at most 0.001 (0.9951 → 0.9944: kept; at 200 bands 0.9957 → 0.9938: refused, so "
         "the 200-band model stays single). The shipped seeds 11-13 are new runs of that recipe, and the finished "
         "model passed the fusion-A rule above (0.9964 → 0.9966). "
         "Measured v3 → v4: paper set spectral 0.9709 → 0.9737, A 0.9716 → 0.9757, B 0.9715 → 0.9734; other "
         "held-out A 0.9674 → 0.9688, B 0.9617 → 0.9607. Cost: the Spe-FEN runs four times: fusion B on a "
         "100×100×100 scene 0.20 → 0.57 s on two CPU cores. Size +0.6 MB (layer1 is stored once). Tried, not "
         "shipped: spectral jitter σ 0.1 in stage 1 (smooth random per-band gains): background-anomaly spectral "
         "mean of seeds 11-14 0.99563 ± 0.00026 vs 0.99556 ± 0.00053 without, a difference (0.00007) below its "
         "standard error (0.00030), the adoption bar fixed beforehand. v5: F_spe halved (the FPL's "
         "last convolution × 0.5, so every strategy scores H + 0.5·F_spe), adopted by the rule of research/spe_gain.py "
         "fixed beforehand (gains 0.5 and 2; paired implanted-target spectral difference over seeds 10-16 above "
         "twice its standard error, background-anomaly guard 0.001): gain 0.5 +0.0002 ± 0.0001, gain 2 −0.0000; "
         "at 200 bands neither passed (−0.0005 ± 0.0003, +0.0003 ± 0.0003), so that model keeps gain 1. F_spe "
         "is about a hundred times larger than the scaled H, so the gain moves little. Measured v4 → v5 (trimmed "
         "RX): paper set spectral 0.9746 → 0.9751, A 0.9763 → 0.9762, B 0.9743 → 0.9747; other held-out spectral "
         "0.9610 → 0.9621, A 0.9676 → 0.9676, B 0.9611 → 0.9622; background anomalies A 0.9967 → 0.9968. "
         "v6 (this model): F_spe × 0.1 (relative to the trained FPL), adopted by research/spe_gain.py's round 2, "
         "a rule written after round 1 and before its figures (gains 0.1 and 0.01 against the shipped 0.5, the "
         "same test): 0.1 +0.0019 ± 0.0009, at the margin of twice its standard error (0.0018); 0.01 −0.0001 "
         "± 0.0021. Measured v5 → v6: background anomalies A 0.9968 → 0.9970, spectral 0.9947 → 0.9956; paper "
         "set spectral 0.9751 → 0.9752, A 0.9762 → 0.9745, B 0.9747 → 0.9751; other held-out spectral 0.9621 → "
         "0.9641, A 0.9676 → 0.9669, B 0.9622 → 0.9641; abu-beach-2 A 0.8894 → 0.8969 (RX 0.9147).",
    200: "v2: band stretch 0.1 adds abu-beach-1, abu-beach-3, jasperRidge2_R198 (training) and "
         "Rcuprite50x90x188 (validation, a held-out scene instead of patches of the training scenes) to "
         "abu-urban-1/2 (background-anomaly A 0.9942 → 0.9966; paper set A 0.9535 → 0.9475, B 0.9595 → 0.9552). "
         "v3 (this model): stage 2 at the paper's budget, 60 epochs × 16 steps of batch 16, on an NVIDIA H100 "
         "(81 s). The Spa-FEN collapsed to F_spa = 0, the stage-2 loss's global minimum, in the last epochs of "
         "both H100 runs; the first run's lowest-loss selection picked a collapsed epoch (fusion B then equals "
         "spectral), so stage 2 now never selects one, and this model is the best epoch before the collapse. "
         "Measured v2 → v3: background-anomaly A 0.9966 → 0.9965 (within the 0.001 the recipe rule allows); paper set "
         "A 0.9475 → 0.9473, B 0.9552 → 0.9556; other held-out A 0.9754 → 0.9753, B 0.9693 → 0.9688. Tried, "
         "not shipped: stage 1 at the paper's budget too (238 s on the H100): background-anomaly A 0.9954; and (v4 "
         "of the 100-band model) a Spe-FEN ensemble of seeds 10-13 of the stage-1 recipe: background-anomaly "
         "spectral 0.9957 → 0.9938, refused by the rule fixed beforehand (at most 0.001 lower); seeds 10-16 alone "
         "spread by ±0.0016 there. Tried, not shipped: spectral jitter σ 0.1 in stage 1 (smooth random per-band "
         "gains): background-anomaly spectral mean of seeds 11-14 0.99254 ± 0.00064 vs 0.99205 ± 0.00122 without, "
         "a difference (0.00049) below its standard error (0.00069), the adoption bar fixed beforehand. "
         "Tried, not shipped (research/device_recipes.py, chosen on the implanted targets, rule fixed before the "
         "runs: a recipe's seed mean above the bundled recipe's seeds 10-16, 0.9119 ± 0.0143, by more than the "
         "standard error of the difference): stage 1 for 12 × 8 steps, 0.9155 ± 0.0207 over seeds 10-16 (+0.0036 "
         "against 0.0095: not adopted); without the band stretch (abu-urban-1/2 alone), 0.9078 ± 0.0170 (not "
         "adopted); stage 1 at the paper's budget, 0.9288 ± 0.0150 over three of its four seeds (+0.0169 against "
         "0.0102), undecided: the lent GPU's time ended before its fourth seed and its stage 2. Tried, not "
         "shipped: F_spe gain 0.5 or 2 (research/spe_gain.py, rule fixed beforehand; the 100-band model took 0.5): "
         "paired implanted-target spectral differences over seeds 10-16 −0.0005 ± 0.0003 and +0.0003 ± 0.0003, "
         "neither above twice its standard error; gains 0.1 and 0.01 (round 2): −0.0050 ± 0.0016 and −0.0378 ± "
         "0.0020.",
}


def facts_path(models, bands):
    """What the model card says of a bundled model's training that its checkpoint does not hold (sources, recipe,
    hardware, changes): resources/models/fers-aviris-<bands>.facts.json."""
    return os.path.join(models, f"fers-aviris-{bands}.facts.json")


def hardware(device):
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)} (CUDA), torch {torch.__version__}"
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def sources_for(bands, stretch):
    """The background scenes that can feed a first-N-bands model (directly or band-stretched)."""
    from fers.io import open_source
    from fers.train.data import stretch_target

    out = []
    for n in BACKGROUND:
        p = os.path.join(DATA, "raw", n + ".mat")
        count = open_source(p).band_count
        if count >= bands or stretch_target(count, bands, stretch):
            out.append(p)
    return out


def compact(src, dst, spe_gain=1.0):
    """The stage-2 file with the frozen (random, untrained) ResNet-34 conv weights in float16, and F_spe
    scaled by ``spe_gain``: the FPL ends in a ReLU, so scaling its last convolution (every member's) scales
    F_spe exactly (research/spe_gain.py)."""
    from fers.checkpoint import read_checkpoint, save_checkpoint

    from fers.spatial.frozen import STORAGE, pack

    obj = read_checkpoint(src)
    spa = {k: (v.half() if k.startswith("backbone.") and v.ndim == 4 else v) for k, v in obj["spa_fen"].items()}
    spe = {k: (v * spe_gain if k.startswith(("fpl.conv2.", "fpls.")) and ".conv2." in k else v)
           for k, v in obj["spe_fen"].items()}
    meta = dict(obj["meta"], frozen_backbone_storage="float16 (conv weights of the random, frozen ResNet-34)")
    frozen = None
    if meta.get("spa_backbone_weights") == "random":
        # random and untouched by training: kept as the seed that draws them (fers.spatial.frozen), 16 MB less
        spa, frozen = pack(spa, int(meta["bands"]), int(meta["training"]["seed"]))
        meta["frozen_backbone_storage"] = STORAGE
    if spe_gain != 1.0:
        meta["spe_gain"] = spe_gain
    return save_checkpoint(dst, obj["kind"], meta, frozen_backbone=frozen, spe_fen=spe, spa_fen=spa)


def printer(tag=""):
    """A Feedback that prints the trainers' messages (prefixed with ``tag`` and the time when given)."""
    from fers.feedback import Feedback

    def say(message):
        print(f"[{tag} {time.strftime('%H:%M:%S')}] {message}" if tag else message, flush=True)

    class Printer(Feedback):
        def info(self, message):
            say(message)

        def warn(self, message):
            say("warning: " + message)

    return Printer()


def train(bands, out_dir, device):
    from fers.train.stage2 import train_spatial

    stretch = RECIPE[bands].get("band_stretch", 0.0)
    sources = sources_for(bands, stretch)
    s1 = stage1_runs(bands, out_dir, device, sources, stretch)
    s2 = os.path.join(out_dir, f"fers-aviris-{bands}-full.pt")
    if not os.path.exists(s2) or os.path.exists(s2 + ".resume.pt"):
        train_spatial(sources, s2, teacher=s1, backbone_weights="random", device=device, band_stretch=stretch,
                      feedback=printer(), **RECIPE[bands]["stage2"])
    return sources, s1, s2


def stage1_run(bands, seed, out, device, sources, stretch, **override):
    """One stage-1 run of the recipe for ``bands`` with ``seed`` into ``out`` (resumes it when a resume file is
    there); ``override``: recipe values to change (tiny trial runs, spectral jitter). The one place that turns
    the recipe into a train_spectral call, for make train-default and research/device_seeds.py alike."""
    from fers.train.stage1 import train_spectral

    recipe = dict(RECIPE[bands]["stage1"], **override)
    recipe.pop("seeds", None)
    recipe["seed"] = seed
    train_spectral(sources, out, bands=bands, backbone_weights=f"partial:{LAYER1}", device=device,
                   band_stretch=stretch, feedback=printer(f"{bands}/s{seed}"), **recipe)
    return out


def trained_state(stage1_file):
    """The tensors a stage-1 run trains (CWL and FPL): its layer1 is the authors' frozen layer1 in every run, so
    these are all that tells two runs apart (research/ensemble_candidates.rebuild makes a Spe-FEN of them again)."""
    from fers.checkpoint import read_checkpoint

    return {k: v for k, v in read_checkpoint(stage1_file)["spe_fen"].items() if k.startswith(("cwl.", "fpl."))}


def stage1_runs(bands, out_dir, device, sources, stretch, seeds=None, reuse=None, **override):
    """Stage 1 once per seed of the recipe (``seeds``, else its ``seeds`` or its one ``seed``); several runs
    are joined into one Spe-FEN ensemble (fers.checkpoint.ensemble). ``reuse``: {seed: a model file whose
    Spe-FEN is that seed's run}, not trained again; ``override``: recipe values to change (tiny trial runs).
    Returns the teacher file for stage 2."""
    from fers.checkpoint import ensemble

    recipe = dict(RECIPE[bands]["stage1"], **override)
    seeds = seeds or recipe.get("seeds") or [recipe["seed"]]
    files = []
    for seed in seeds:
        # the first seed keeps the single-run name, so that earlier runs resume or are reused
        s1 = os.path.join(out_dir, f"stage1-{bands}.pt" if seed == seeds[0] else f"stage1-{bands}-s{seed}.pt")
        if reuse and seed in reuse:
            s1 = reuse[seed]
        elif not os.path.exists(s1) or os.path.exists(s1 + ".resume.pt"):
            stage1_run(bands, seed, s1, device, sources, stretch, **override)
        files.append(s1)
    if len(files) == 1:
        return files[0]
    return ensemble(files, os.path.join(out_dir, f"spe-fen-{bands}-ensemble.pt"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bands", nargs="*", type=int, default=[100, 200])
    ap.add_argument("--runs", default=os.path.join(REPO, "runs", "default"), help="training files and logs")
    ap.add_argument("--models", default=os.path.join(REPO, "resources", "models"), help="where the models go")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(REPO, "engine"))
    from fers.device import resolve_device

    device = resolve_device(args.device)
    os.makedirs(args.runs, exist_ok=True)
    os.makedirs(args.models, exist_ok=True)
    for bands in args.bands:
        sources, s1, s2 = train(bands, args.runs, device)
        dst = compact(s2, os.path.join(args.models, f"fers-aviris-{bands}.pt"), RECIPE[bands].get("spe_gain", 1.0))
        facts = {"bands": bands, "sources": [os.path.basename(s) for s in sources], "recipe": RECIPE[bands],
                 "hardware": hardware(device), "layer1": os.path.relpath(LAYER1, os.path.dirname(WEIGHTS)),
                 "changes": CHANGES.get(bands, "")}
        # beside the model, in the repository: the card (make cards) needs them, and runs/ is not kept
        with open(facts_path(args.models, bands), "w") as f:
            json.dump(facts, f, indent=1)
        print(f"wrote {dst} ({os.path.getsize(dst) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
