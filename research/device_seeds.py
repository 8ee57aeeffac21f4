"""Seed-ensemble candidates for the bundled Spe-FENs, trained once on a lent GPU.

With seven small background scenes, one stage-1 run is one draw: its seed fixes the
initial weights, the random frozen layer2/3 of the training trunk and the order of the
patches. Averaging the F_spe of several independently seeded Spe-FENs is the textbook
way to cut that variance without any new data or any choice made on ground truth.

This script trains, per band count, stage 1 again with the bundled recipe
(train_default.RECIPE[bands]["stage1"]) for each seed of --seeds and keeps what differs
between the runs: the trained CWL and FPL (layer1 is the authors' ImageNet layer1 in
every run, frozen). Everything goes into one file, ``seeds-<bands>.pt``
({seed: {state key: tensor}}, cwl.* and fpl.* only), small enough to come back from the
device machine; ``research/ensemble_candidates.py`` rebuilds the Spe-FENs and scores them.
The pruned Spe-FEN files (with their training records) go into ``spe-fens.tar``.
``--jitter σ`` trains with the spectral-gain augmentation (fers.train.data.spectral_gain);
its files are tagged ``-j<σ>``. Rule, fixed before any jittered figure was seen: σ = 0.1 is
adopted for a band count when the mean background-anomaly spectral AUC of its seeds 11-14
exceeds that of the plain recipe's seeds 11-14 (trained by this script too) by more than the
standard error of that difference, sqrt(s_j²/4 + s_p²/4) with the seeds' sample variances.
Evaluation scenes are never read here.
"""
import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "engine"))
sys.path.insert(0, os.path.join(REPO, "scripts"))


def tag(jitter):
    return f"-j{jitter:g}" if jitter else ""


def job(args):
    bands, seed, work, device, threads, tiny, jitter = args
    import torch

    torch.set_num_threads(threads)
    import train_default as td
    from fers.checkpoint import prune

    try:
        stretch = td.RECIPE[bands].get("band_stretch", 0.0)
        override = {"spectral_jitter": jitter} if jitter else {}
        if tiny:
            override.update(td.TINY_STAGE1)
        out = os.path.join(work, f"stage1-{bands}-s{seed}{tag(jitter)}.pt")
        t0 = time.time()
        td.stage1_run(bands, seed, out, device, td.sources_for(bands, stretch), stretch, **override)
        state = td.trained_state(out)
        pruned = prune(out, os.path.join(work, f"spe-fen-{bands}-s{seed}{tag(jitter)}.pt"))
        return {"bands": bands, "seed": seed, "seconds": round(time.time() - t0, 1), "state": state,
                "pruned": pruned}
    except Exception as e:
        traceback.print_exc()
        return {"bands": bands, "seed": seed, "error": f"{type(e).__name__}: {e}"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default=os.path.join(REPO, "runs", "seeds"))
    ap.add_argument("--bands", nargs="*", type=int, default=[100, 200])
    ap.add_argument("--seeds", nargs="*", type=int, default=[11, 12, 13, 14])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jitter", type=float, default=0.0, help="spectral jitter σ of the runs (0: the recipe's own)")
    ap.add_argument("--tiny", action="store_true", help="one step only (to try this script on a CPU)")
    args = ap.parse_args()
    import torch
    from fers.device import resolve_device

    device = resolve_device(args.device)
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    jobs = [(b, s, args.work, device, args.threads, args.tiny, args.jitter) for b in args.bands for s in args.seeds]
    t0 = time.time()
    with mp.get_context("spawn").Pool(len(jobs)) as pool:
        results = pool.map(job, jobs)
    report = {"device": device, "wall_s": round(time.time() - t0, 1), "runs": []}
    for b in args.bands:
        states = {r["seed"]: r["state"] for r in results if r["bands"] == b and "state" in r}
        torch.save(states, os.path.join(args.out, f"seeds-{b}{tag(args.jitter)}.pt"))
    for r in results:
        report["runs"].append({k: v for k, v in r.items() if k != "state"})
    # the pruned Spe-FENs themselves (with their training records), for a stage-2 teacher made of them
    import tarfile

    with tarfile.open(os.path.join(args.out, f"spe-fens{tag(args.jitter)}.tar"), "w") as tar:
        for r in results:
            if "pruned" in r:
                tar.add(r["pruned"], arcname=os.path.basename(r["pruned"]))
    if device.startswith("cuda"):
        report["hardware"] = f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    with open(os.path.join(args.out, "seeds.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1), flush=True)


if __name__ == "__main__":
    main()
