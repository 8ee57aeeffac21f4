"""The authors' spectral pipeline against ours on the same cube, same run (`make bench-authors`; issue 23).

Theirs: the FERS authors' own code (github.com/xjpp2016/FERS, folder FERS_ABU), taken at run time out of a
git mirror of their repository (``AUTHORS_REPO``, default ``../.mirror/xjpp2016+FERS/repo`` beside this
checkout) into a temporary folder with ``git archive`` — never committed here. Their test path of
``FERS_ABU/test.py`` restricted to the spectral branch, on the CPU: ``ConvH`` → ``wide_resnet101_2``'s
``layer1`` → ``Pixel_Classifier`` with their ``saved_models/aviris/200bands/{convh,enc,pc}.pt``, then
their NumPy ``utils/RX.py:RX`` on H + F_spe (what their ``get_admap`` does with the spatial term left out).
Their input is what their ``HADTestDataset`` reads: a (rows, cols, bands) ``.npy``, scaled by its min/max to
[-0.1, 0.1] (its torchvision ``ToTensor`` is, for a float array, the transpose to (bands, rows, cols) done
here in torch, so torchvision is not needed); their map is saved with ``scipy.io.savemat`` as test.py does.
Their modules are loaded by file path: the packages' ``__init__`` files pull IPython and torchvision, which
the spectral path never uses.

Ours: ``fers.pipeline.detect(strategy="spectral", model=<their checkpoint folder>, rx_trim=0)`` — what
``fers detect CUBE MAP --strategy spectral --model ../shared/weights/fers-reference/aviris-200bands
--rx-trim 0 --device cpu`` runs (the paper's plain RX, as theirs; our default trims 1 %), GeoTIFF in
(band-interleaved, ``--layout``), GeoTIFF map out.

The cube: a 512² × 200 float32 mosaic of real ABU scenes (``common.real_mosaic``, the one bench_speed and
peers use). Each side runs ``--repeat`` times in a fresh process, alternating which goes first; imports are
not counted on either side, everything after them is (model construction and loading, reading, scaling,
features, RX, writing the map). Printed: each repetition and the medians — seconds in all, features, RX,
theirs/ours — and the two maps compared (correlation, max |Δ| over our map's range).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DATA, REPO, mirror_archive, mirror_has, real_mosaic  # noqa: E402
from peers import LAYOUTS, write_tif  # noqa: E402

DEFAULT_MIRROR = os.path.abspath(os.path.join(REPO, "..", ".mirror", "xjpp2016+FERS", "repo"))
MODEL = os.path.join(os.path.dirname(DATA), "weights", "fers-reference", "aviris-200bands")
CKPT = "FERS_ABU/saved_models/aviris/200bands"
# the mirror lacks its largest blobs (the test scenes, spa_fen.pt): only what the spectral test path needs
THEIR_FILES = ["FERS_ABU/test.py", "FERS_ABU/models/test/resnet.py", "FERS_ABU/utils/RX.py",
               f"{CKPT}/convh.pt", f"{CKPT}/enc.pt", f"{CKPT}/pc.pt"]

OURS = r"""
import json, sys
import numpy as np
# what `fers detect` has imported before it reads (GDAL, the detectors, the Spe-FEN's modules), as their side
# imports its modules before its clock starts: imports are not counted on either side
from osgeo import gdal  # noqa: F401
import fers.detect.rx, fers.detect.classic, fers.detect.ae, fers.detect.autoad, fers.tiling  # noqa: F401
import fers.checkpoint, fers.spectral.model  # noqa: F401
from fers.pipeline import detect
cube, out, model = sys.argv[1:4]
r = detect(cube, out + ".tif", bands=200, strategy="spectral", model=model, device="cpu", rx_trim=0)
np.save(out, r.scores)
print(json.dumps({"seconds": r.seconds, "features": r.info["model_seconds"], "rx": r.info["detector_seconds"]}))
"""

# FERS_ABU/test.py's main() and test() for one scene, '--detect RX', the spectral branch only, on the CPU
THEIRS = r"""
import importlib.util, json, os, sys, time
import numpy as np
import scipy.io as scio
import torch
root, npy, out = sys.argv[1:4]

def their(name, rel):
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod

resnet = their("fers_abu_resnet", "models/test/resnet.py")
RX = their("fers_abu_rx", "utils/RX.py").RX
t0 = time.perf_counter()
ckpt = os.path.join(root, "saved_models/aviris/200bands/")
convh = resnet.ConvH(input_channel=200)
encoder, _ = resnet.wide_resnet101_2(pretrained=False)
classifier = resnet.Pixel_Classifier(input_channel=200)
for net, f in ((convh, "convh.pt"), (encoder, "enc.pt"), (classifier, "pc.pt")):
    net.load_state_dict(torch.load(ckpt + f, map_location=torch.device("cpu"))["state_dict"])
    net.eval()
# HADTestDataset.__getitem__ (ToTensor of a float array = the transpose), then the DataLoader's batch of 1
x = np.load(npy)
x = x[:, :, 0:200]
x = (x - np.min(x)) / (np.max(x) - np.min(x)) * 2 - 1
x = x * 0.1
data = torch.from_numpy(x.transpose((2, 0, 1))).contiguous().type(torch.FloatTensor)[None]
t1 = time.perf_counter()
with torch.no_grad():
    _, spe_f = classifier(encoder(convh(data)), data)
t2 = time.perf_counter()
admap = RX(spe_f + data)  # get_admap(data, spa_f, spe_f) without the spatial term
t3 = time.perf_counter()
score = np.zeros([data.shape[0], data.shape[-1], data.shape[-1]])
score[0, :] = admap
scio.savemat(out + ".mat", {"result": score})
t4 = time.perf_counter()
np.save(out, admap.astype(np.float32))
print(json.dumps({"seconds": t4 - t0, "features": t2 - t1, "rx": t3 - t2}))
"""


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_child(code, args, env_extra):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "engine"), CPL_LOG="/dev/null", **env_extra)
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{args[-1]}: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def compare(ours, theirs):
    """(correlation, max |Δ| / range of ours) over the pixels both score."""
    ok = np.isfinite(ours) & np.isfinite(theirs)
    a, b = ours[ok].astype(np.float64), theirs[ok].astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1]), float(np.abs(a - b).max() / (a.max() - a.min()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layout", default="band", choices=sorted(LAYOUTS), help="our GeoTIFF's layout (peers.py)")
    ap.add_argument("--threads", type=int, default=0, help="OMP/BLAS threads of both sides (0: their default)")
    args = ap.parse_args(argv)
    mirror = os.path.abspath(os.environ.get("AUTHORS_REPO") or DEFAULT_MIRROR)
    if not mirror_has(mirror, THEIR_FILES[-1]):
        print(f"the authors' code is not at {mirror}: mirror it (fetch github:xjpp2016/FERS) and set "
              "AUTHORS_REPO to its git directory; nothing compared")
        return 0
    folder = tempfile.mkdtemp(prefix="fers-authors-")
    try:
        head = mirror_archive(mirror, THEIR_FILES, folder)
        root = os.path.join(folder, "FERS_ABU")
        same = all(sha256(os.path.join(root, "saved_models/aviris/200bands", f)) == sha256(os.path.join(MODEL, f))
                   for f in ("convh.pt", "enc.pt", "pc.pt"))
        cube = real_mosaic(args.size, 200)
        tif, npy = os.path.join(folder, "cube.tif"), os.path.join(folder, "cube.npy")
        write_tif(tif, cube, LAYOUTS[args.layout][1])
        np.save(npy, np.ascontiguousarray(np.moveaxis(cube, 0, 2)))  # their test scenes are (rows, cols, bands)
        del cube
        env = {}
        if args.threads:
            env = {k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        sides = {"ours": (OURS, [tif, os.path.join(folder, "ours"), MODEL]),
                 "theirs": (THEIRS, [root, npy, os.path.join(folder, "theirs")])}
        runs = {"ours": [], "theirs": []}
        print(f"\nthe authors' spectral pipeline (xjpp2016/FERS@{head} FERS_ABU, their test path: ConvH → layer1 → "
              f"Pixel_Classifier, NumPy RX) vs ours (fers detect --strategy spectral --rx-trim 0), same checkpoint "
              f"({'identical files' if same else 'FILES DIFFER'}), {args.size}²×200 float32 real ABU mosaic; theirs "
              f"from .npy, ours from a {LAYOUTS[args.layout][0]} GeoTIFF; CPU, "
              f"{args.threads or 'default'} threads; fresh processes, alternating, imports not counted")
        print("| rep | first | ours in all s | ours features s | ours RX s | theirs in all s | theirs features s | "
              "theirs RX s | theirs / ours |")
        print("| --- |" + " --- |" * 8)
        for k in range(args.repeat):
            order = ["ours", "theirs"] if k % 2 == 0 else ["theirs", "ours"]
            for side in order:
                runs[side].append(run_child(sides[side][0], sides[side][1], env))
            o, t = runs["ours"][-1], runs["theirs"][-1]
            print(f"| {k + 1} | {order[0]} | {o['seconds']:.2f} | {o['features']:.2f} | {o['rx']:.2f} | "
                  f"{t['seconds']:.2f} | {t['features']:.2f} | {t['rx']:.2f} | {t['seconds'] / o['seconds']:.2f} |",
                  flush=True)
        med = {s: {k: float(np.median([r[k] for r in runs[s]])) for k in ("seconds", "features", "rx")} for s in runs}
        ratio = float(np.median([t["seconds"] / o["seconds"] for o, t in zip(runs["ours"], runs["theirs"])]))
        o, t = med["ours"], med["theirs"]
        print(f"| median | | {o['seconds']:.2f} | {o['features']:.2f} | {o['rx']:.2f} | {t['seconds']:.2f} | "
              f"{t['features']:.2f} | {t['rx']:.2f} | {ratio:.2f} |")
        print(f"theirs / ours, medians: in all {ratio:.2f}×, features {t['features'] / o['features']:.2f}×, "
              f"RX {t['rx'] / o['rx']:.2f}×")
        corr, diff = compare(np.load(os.path.join(folder, "ours.npy")), np.load(os.path.join(folder, "theirs.npy")))
        print(f"maps (last repetition): correlation {corr:.10f}, max |ours - theirs| = {diff:.3g} of our map's range")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
