"""Our Auto-AD against the Auto-AD authors' own code on the same scenes (`make bench-autoad-ref`; issue 21).

Theirs: ``AD_main_loop.py`` of github.com/RSIDEA-WHU2020/Auto-AD (Wang et al., TGRS 2021), with their
``models/`` (DIP's ``skip`` network) and ``utils/``, taken at run time out of a git mirror of their repository
(``AUTOAD_REPO``, default ``../.mirror/RSIDEA-WHU2020+Auto-AD/repo`` beside this checkout) into a temporary
folder with ``git archive`` — never committed here. Their ``main(1)`` runs as written, in a fresh process,
on the CPU; only what a CPU-only machine needs is changed, at run time, in memory:
- ``dtype = torch.cuda.FloatTensor`` becomes ``torch.FloatTensor`` (their tensors and network on the CPU);
- their three ``.cuda()`` calls (the image, the initial mask, the initial residual) are removed;
- ``torchvision``, which ``utils/common_utils.py`` imports and the loop never uses, is an empty module when it
  is not installed (it is not in our venv); matplotlib runs with the Agg backend;
- ``torch.manual_seed(seed)`` before ``main``: their code seeds nothing (weights, fixed input and the
  per-iteration input noise all draw from torch's global generator), so we seed it to make a run repeatable;
- ``num_iter = 1001`` is lowered only with ``--max-iterations`` (smoke runs; the figures use 1001).
Everything else is theirs, unchanged: the network, their weighting block, their loss and their stop (mean
|Δloss| of the last 50 iterations below 1.5e-5, checked every 50), their h5py read of ``.\\data\\HYDICE1.mat``
(key "image", transposed (0, 2, 1)) and their ``scipy.io.savemat`` of the detection map — on Linux those
Windows-style names are plain file names in the run's folder, so the input is written under that very name
and the map is read back from ``.\\data\\HYDICE_detection1.mat``. The iterations they ran are counted from
their own "iteration: N; loss: L" lines; fewer than 1001 means their loss stop fired.

Their input scaling: their loop scales nothing; the one scene they publish (``data/HYDICE1.mat``) is min-max
scaled band by band to [0, 1] (every band's min is 0 and max 1), so theirs gets the cube scaled that way.
Ours, ``fers.detect.autoad.autoad_scores(seed)``, gets the cube as the product gives it and scales it itself
(one min/max over all bands and valid pixels). ``--variants ours-band`` adds ours on the per-band cube (the
very input theirs gets), ``theirs-global`` theirs on the globally scaled one, to tell scaling from the rest.

Scenes: Table II's original cubes as bench/ae_harness.py defines them (the first min(200, B) bands, SPEC §0
scaling; Beach is the Pavia crop LREN__abu-beach-4, ROSIS, 102 bands). Default abu-airport-1, abu-airport-2
and the Pavia crop; ``--scenes`` to change, ``--seeds N`` runs seeds 0..N-1 on each side (default 1;
``--first-seed`` shifts them).

Printed per scene and seed: ROC AUC of each map (the ground truth only scores, it selects nothing),
iterations run and why each stopped, seconds of each run (their ``main`` / our ``autoad_scores``, imports
and data writing not counted), and the Pearson and Spearman correlation of our map with theirs. Written to
bench/out/autoad_reference.md and .csv.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, mirror_archive, mirror_has  # noqa: E402

DEFAULT_MIRROR = os.path.abspath(os.path.join(REPO, "..", ".mirror", "RSIDEA-WHU2020+Auto-AD", "repo"))
THEIR_FILES = ["AD_main_loop.py", "models", "utils"]
SCENES = ["abu-airport-1", "abu-airport-2", "LREN__abu-beach-4"]
VARIANTS = ["ours", "theirs", "ours-band", "theirs-global"]

# (what, old, new, how many times old must occur): a changed upstream file fails here rather than run unpatched
PATCHES = [
    ("their tensors on the CPU", "dtype = torch.cuda.FloatTensor", "dtype = torch.FloatTensor", 1),
    ("the image, the initial mask and residual on the CPU", ".cuda()", "", 3),
]
ITERATIONS_LINE = "num_iter = 1001"


def patched_source(source: str, max_iterations: int = 0) -> str:
    """Their AD_main_loop.py with the CPU patches (and, for smoke runs, fewer iterations)."""
    for what, old, new, n in PATCHES:
        if source.count(old) != n:
            raise SystemExit(f"their AD_main_loop.py changed: expected {n}× {old!r} ({what})")
        source = source.replace(old, new)
    if max_iterations:
        if source.count(ITERATIONS_LINE) != 1:
            raise SystemExit(f"their AD_main_loop.py changed: no {ITERATIONS_LINE!r}")
        source = source.replace(ITERATIONS_LINE, f"num_iter = {int(max_iterations)}")
    return source


THEIRS = r"""
import json, os, re, sys, time, types
root, run_dir, seed, max_it = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.environ.setdefault("MPLBACKEND", "Agg")
try:
    import torchvision  # noqa: F401
except ImportError:  # utils/common_utils.py imports it; the loop never uses it
    sys.modules["torchvision"] = types.ModuleType("torchvision")
import numpy as np, scipy.io, torch
from autoad_reference import patched_source
sys.path.insert(0, root)
with open(os.path.join(root, "AD_main_loop.py")) as f:
    source = patched_source(f.read(), max_it)
os.chdir(run_dir)
mod = types.ModuleType("AD_main_loop")
mod.__file__ = os.path.join(root, "AD_main_loop.py")
exec(compile(source, mod.__file__, "exec"), mod.__dict__)
torch.manual_seed(seed)  # their code seeds nothing
log = open("their_log.txt", "w")
out, sys.stdout = sys.stdout, log
t0 = time.perf_counter()
mod.main(1)
seconds = time.perf_counter() - t0
sys.stdout = out
log.close()
lines = re.findall(r"iteration: (\d+); loss: ([0-9.eE+-]+)", open("their_log.txt").read())
detection = scipy.io.loadmat(".\\data\\HYDICE_detection1.mat")["detection"]
np.save("scores.npy", np.asarray(detection, np.float32))
print(json.dumps({"seconds": seconds, "iterations": int(lines[-1][0]), "last_loss": float(lines[-1][1])}))
"""

OURS = r"""
import json, sys, time
import numpy as np
from fers.detect.autoad import MAX_ITERATIONS, autoad_scores
npy, out, seed, max_it = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cube = np.load(npy)
t0 = time.perf_counter()
scores, info = autoad_scores(cube, np.ones(cube.shape[1:], bool), seed=seed, device="cpu",
                             max_iterations=max_it or MAX_ITERATIONS)
seconds = time.perf_counter() - t0
np.save(out, scores)
print(json.dumps({"seconds": seconds, "iterations": info["autoad_iterations"], "stop": info["autoad_stop"]}))
"""


def per_band(cube):
    """Min-max to [0, 1] band by band, as their published scene is (a constant band becomes 0)."""
    x = cube.astype(np.float64)
    lo = x.min(axis=(1, 2), keepdims=True)
    span = x.max(axis=(1, 2), keepdims=True) - lo
    return np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), 0.0)


def global_unit(cube):
    x = cube.astype(np.float64)
    return (x - x.min()) / (x.max() - x.min())


def write_their_input(run_dir, cube01):
    """``.\\data\\HYDICE1.mat`` as their loop reads it: HDF5 (MATLAB v7.3), key "image", stored (B, W, H) so
    that their transpose(0, 2, 1) gives (B, H, W)."""
    import h5py

    with h5py.File(os.path.join(run_dir, ".\\data\\HYDICE1.mat"), "w") as f:
        f["image"] = np.ascontiguousarray(cube01.transpose(0, 2, 1))


def run_child(code, args, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(REPO, "engine"), os.path.join(REPO, "bench")]),
               CPL_LOG="/dev/null")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])}: {r.stderr.strip()[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def correlations(a, b):
    from scipy.stats import pearsonr, spearmanr

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(pearsonr(a, b)[0]), float(spearmanr(a, b)[0])


def original_cube(name, crop=0):
    """(cube (B, H, W) float32, gt, counted) of Table II's original cube (ae_harness / bench_table2)."""
    from bench_accuracy import scaled_bands, scene_data

    scene = scene_data(name)
    cube, valid, gt, counted = scaled_bands(scene, min(200, scene[0].band_count))
    if crop:
        cube, valid, gt, counted = cube[:, :crop, :crop], valid[:crop, :crop], gt[:crop, :crop], counted[:crop, :crop]
    if not valid.all():  # their loop has no nodata: a fair comparison needs a scene without any
        raise SystemExit(f"{name} has nodata pixels: their loop cannot take it")
    return np.ascontiguousarray(cube), np.asarray(gt, bool), np.asarray(counted, bool)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="*", default=SCENES)
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 on each side (from --first-seed)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--variants", nargs="*", default=["ours", "theirs"], choices=VARIANTS)
    ap.add_argument("--max-iterations", type=int, default=0, help="smoke runs only (0: 1001, theirs and ours)")
    ap.add_argument("--crop", type=int, default=0, help="smoke runs only: the top-left N×N pixels (N > 32)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "out"))
    args = ap.parse_args(argv)
    mirror = os.path.abspath(os.environ.get("AUTOAD_REPO") or DEFAULT_MIRROR)
    if not mirror_has(mirror, "AD_main_loop.py"):
        print(f"the Auto-AD authors' code is not at {mirror}: mirror github:RSIDEA-WHU2020/Auto-AD and set "
              "AUTOAD_REPO to its git directory", file=sys.stderr)
        return 2
    from fers.metrics import roc_auc

    folder = tempfile.mkdtemp(prefix="fers-autoad-ref-")
    rows, pairs = [], []
    try:
        root = os.path.join(folder, "autoad")
        os.makedirs(root)
        head = mirror_archive(mirror, THEIR_FILES, root)
        print(f"Auto-AD: the authors' AD_main_loop.py (RSIDEA-WHU2020/Auto-AD@{head}, CPU, patches in "
              f"bench/autoad_reference.py) vs fers.detect.autoad; {args.seeds} seed(s); "
              f"{'max ' + str(args.max_iterations) + ' iterations (smoke)' if args.max_iterations else '≤ 1001 iterations'}",
              flush=True)
        data = {}
        for name in args.scenes:
            cube, gt, counted = original_cube(name, args.crop)
            data[name] = {"gt": gt, "counted": counted, "bands": cube.shape[0],
                          "ours": cube, "ours-band": per_band(cube).astype(np.float32),
                          "theirs": per_band(cube), "theirs-global": global_unit(cube)}
        maps = {}
        # variant by variant (ours, theirs over every scene first): a run cut short still has the main pairs
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for variant in args.variants:
                for name in args.scenes:
                    d = data[name]
                    run_dir = os.path.join(folder, f"{name}-{variant}-{seed}")
                    os.makedirs(run_dir)
                    if variant.startswith("ours"):
                        npy = os.path.join(run_dir, "cube.npy")
                        np.save(npy, d[variant])
                        r = run_child(OURS, [npy, os.path.join(run_dir, "scores.npy"), str(seed),
                                             str(args.max_iterations)])
                    else:
                        write_their_input(run_dir, d[variant])
                        r = run_child(THEIRS, [root, run_dir, str(seed), str(args.max_iterations)], cwd=run_dir)
                        limit = args.max_iterations or 1001
                        r["stop"] = "the loss stopped falling" if r["iterations"] < limit else "the iteration limit"
                    m = maps[name, variant, seed] = np.load(os.path.join(run_dir, "scores.npy"))
                    shutil.rmtree(run_dir, ignore_errors=True)
                    if m.shape != d["gt"].shape:
                        raise SystemExit(f"{name} {variant}: map {m.shape}, scene {d['gt'].shape}")
                    auc = float(roc_auc(m, d["gt"], d["counted"] & np.isfinite(m)))
                    rows.append({"scene": name, "bands": d["bands"], "variant": variant, "seed": seed,
                                 "auc": round(auc, 4), "iterations": r["iterations"], "stop": r["stop"],
                                 "seconds": round(r["seconds"], 1)})
                    print(f"{name:18s} {d['bands']:3d} bands  {variant:13s} seed {seed}: AUC {auc:.4f}, "
                          f"{r['iterations']} iterations ({r['stop']}), {r['seconds']:.0f} s", flush=True)
                    for a, b in (("ours", "theirs"), ("ours-band", "theirs"), ("ours", "ours-band"),
                                 ("theirs-global", "ours"), ("theirs-global", "theirs")):
                        if variant in (a, b) and (name, a, seed) in maps and (name, b, seed) in maps:
                            p, sp = correlations(maps[name, a, seed], maps[name, b, seed])
                            pairs.append({"scene": name, "seed": seed, "maps": f"{a} / {b}", "pearson": round(p, 4),
                                          "spearman": round(sp, 4)})
                            print(f"{'':18s} maps {a} / {b}: Pearson {p:.4f}, Spearman {sp:.4f}", flush=True)
                    write(args.out, rows, pairs, head, quiet=True)  # after every run: a cut-short run keeps its figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write(args.out, rows, pairs, head)
    return 0


def write(out, rows, pairs, head, quiet=False):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "autoad_reference.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = [f"# Auto-AD: ours vs the authors' AD_main_loop.py (RSIDEA-WHU2020/Auto-AD@{head}, CPU)", "",
          "| scene | bands | run | seed | AUC | iterations | stop | seconds |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['scene']} | {r['bands']} | {r['variant']} | {r['seed']} | {r['auc']:.4f} | {r['iterations']} | "
           f"{r['stop']} | {r['seconds']:.0f} |" for r in rows]
    groups = {}
    for r in rows:
        groups.setdefault((r["scene"], r["variant"]), []).append(r["auc"])
    if any(len(v) > 1 for v in groups.values()):
        md += ["", "| scene | run | AUC mean ± SD over seeds | seeds |", "| --- | --- | --- | --- |"]
        md += [f"| {k[0]} | {k[1]} | {np.mean(v):.4f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.4f} | {len(v)} |"
               for k, v in groups.items()]
    if pairs:
        md += ["", "| scene | seed | maps | Pearson | Spearman |", "| --- | --- | --- | --- | --- |"]
        md += [f"| {p['scene']} | {p['seed']} | {p['maps']} | {p['pearson']:.4f} | {p['spearman']:.4f} |" for p in pairs]
    with open(os.path.join(out, "autoad_reference.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    if not quiet:
        print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
