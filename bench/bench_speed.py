"""Seconds and peak memory of detection on large rasters (`make bench-speed`).

For each size (default 256², 512², 1024², 2048², 200 bands; a mosaic of real ABU scenes
written as a float32 GeoTIFF): the full pipeline (fusion B with the bundled 200-band model,
GeoTIFF in → GeoTIFF out: `fers.pipeline.detect`'s own wall time, which includes loading the
model, reading, scaling, both branches, RX and writing; and the same with Python's start-up and
imports) and RX alone, each in a fresh process so that its peak RSS is its own. Also printed: the input size, the model's share of the time, and the achieved GFLOP/s
of the Spe-FEN (its convolutions counted exactly) against a plain float32 matmul measured in
the same run; then tiled against whole-image maps on the paper set, and seconds per 64×64×200
scene scored 100 a batch (``fers.batched``) on the CPU and, when there is one, the GPU.
``--sizes 512`` for one size; ``--keep DIR`` keeps the rasters.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, real_mosaic  # noqa: E402

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from fers.pipeline import detect
r = detect(sys.argv[1], sys.argv[2], bands=200, strategy=sys.argv[3], model=sys.argv[4] or None, device="cpu")
print(json.dumps({"seconds": r.seconds, "process_seconds": time.perf_counter() - t0, "model_seconds": r.info.get("model_seconds", 0.0),
                  "detector_seconds": r.info.get("detector_seconds", 0.0),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
"""


def matmul_gflops(n=2048, repeat=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def spefen_macs_per_pixel(model):
    """Multiply-adds per output pixel of the Spe-FEN (every conv keeps full resolution)."""
    total = 0
    for m in model.spe.modules():
        if isinstance(m, torch.nn.Conv2d):
            total += m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
    return total


def write_tif(path, cube):
    from osgeo import gdal

    gdal.UseExceptions()
    b, h, w = cube.shape
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, b, gdal.GDT_Float32, ["TILED=YES", "INTERLEAVE=BAND"])
    ds.SetGeoTransform((380000.0, 7.1, 0.0, 3760000.0, 0.0, -7.1))
    for i in range(b):
        ds.GetRasterBand(i + 1).WriteArray(cube[i])
    ds = None


def run_child(tif, strategy, model):
    out = tif[:-4] + f"_{strategy}.tif"
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "engine"))
    r = subprocess.run([sys.executable, "-c", CHILD, tif, out, strategy, model or ""], capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    os.remove(out)
    return json.loads(r.stdout.strip().splitlines()[-1])


def tiling_check(model_name="fers-aviris-100", bands=100):
    """Tiled (32-px tiles) against whole-image (one tile) fusion-B maps on the paper set."""
    from bench_accuracy import GROUPS, scene_data

    from fers.checkpoint import load_model
    from fers.metrics import roc_auc
    from fers.pipeline import score_scene
    from fers.preprocess import scale_cube

    model = load_model(model_name)
    print(f"\ntiled (32 px) vs whole-image maps, fusion B, {model_name}, first {bands} bands:")
    print("| scene | max abs score difference | max score | AUC tiled | AUC whole |")
    print("| --- | --- | --- | --- | --- |")
    for name in GROUPS["paper set"]:
        src, gt, gt_valid, _ = scene_data(name)
        cube, valid = src.read(range(bands))
        valid &= gt_valid
        cube, _ = scale_cube(cube, valid)
        tiled, _ = score_scene(cube, valid, "additive", model=model, tile=32)
        whole, _ = score_scene(cube, valid, "additive", model=model, tile=4096)
        diff = float(np.nanmax(np.abs(tiled - whole)))
        print(f"| {name} | {diff:.3g} | {float(np.nanmax(whole)):.4g} | {roc_auc(tiled, gt, valid):.4f} | "
              f"{roc_auc(whole, gt, valid):.4f} |", flush=True)


def batched_scenes(model_name="fers-aviris-200"):
    """Seconds per 64×64×200 scene, 100 scenes a batch (HAD100's test size), per strategy and device."""
    from fers.batched import seconds_per_scene
    from fers.checkpoint import load_model

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"\nbatched 64×64×200 scenes (100 a batch, {model_name}): seconds per scene"
          + ("" if len(devices) > 1 else " (no CUDA GPU here: CPU only)"))
    print("| device | " + " | ".join(STRATEGIES) + " |")
    print("| --- |" + " --- |" * len(STRATEGIES))
    for dev in devices:
        model = load_model(model_name).to(dev)
        name = torch.cuda.get_device_name(0) if dev == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
        row = [f"{seconds_per_scene(model, s, dev):.4f}" for s in STRATEGIES]
        print(f"| {name} | " + " | ".join(row) + " |", flush=True)


STRATEGIES = ("none", "spectral", "spatial", "additive", "multiplicative")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", type=int, default=[256, 512, 1024, 2048])
    ap.add_argument("--model", default="fers-aviris-200")
    ap.add_argument("--keep")
    ap.add_argument("--no-tiling-check", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(REPO, "engine"))
    from fers.checkpoint import load_model

    macs = spefen_macs_per_pixel(load_model(args.model))
    peak = matmul_gflops()
    print(f"plain float32 matmul (2048²): {peak:.1f} GFLOP/s on {torch.get_num_threads()} threads; "
          f"Spe-FEN: {macs / 1e3:.0f} k multiply-adds per pixel")
    print("| size | input MB | pipeline (fusion B) s | with start-up s | model s | detector s | Spe-FEN FLOP / model s (GFLOP/s) | "
          "of matmul | peak RSS MB | RSS / input | RX alone s | RX peak RSS MB |")
    print("| --- |" * 1 + " --- |" * 11)
    folder = args.keep or tempfile.mkdtemp(prefix="fers-speed-")
    for size in args.sizes:
        tif = os.path.join(folder, f"mosaic_{size}.tif")
        if not os.path.exists(tif):
            write_tif(tif, real_mosaic(size, 200))
        mb = size * size * 200 * 4 / 2 ** 20
        b = run_child(tif, "additive", args.model)
        rx = run_child(tif, "none", None)
        # the Spe-FEN's share of the model time is most of it; count its FLOPs over the padded tiles' pixels
        gflops = 2 * macs * size * size / max(b["model_seconds"], 1e-9) / 1e9
        print(f"| {size}² | {mb:.0f} | {b['seconds']:.2f} | {b['process_seconds']:.2f} | {b['model_seconds']:.2f} | {b['detector_seconds']:.2f} | "
              f"{gflops:.1f} | {gflops / peak:.0%} | {b['peak_rss_mb']:.0f} | {b['peak_rss_mb'] / mb:.2f} | "
              f"{rx['seconds']:.2f} | {rx['peak_rss_mb']:.0f} |", flush=True)
        if not args.keep:
            os.remove(tif)
    if not args.keep:
        os.rmdir(folder)
    if not args.no_tiling_check:
        tiling_check()
    batched_scenes()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
