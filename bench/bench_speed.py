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

The counted compute limit (``--limit-size``, default 512; 0 skips it): every strategy's FLOPs, counted with
torch's own ``torch.utils.flop_counter.FlopCounterMode`` over ``fers.pipeline.score_scene`` on a 128² crop
of the mosaic and scaled to the size's pixels (every part is per pixel, the Spe-FEN tiles' halo included
at the crop's tiling), split into the networks' float32 FLOPs (what torch counted less RX's own share of it) and RX's float64
FLOPs (from its known costs, ``rx_flops_per_pixel``: the covariance is NumPy's syrk on the CPU, which torch's
counter does not see; B(B+1)/2 multiply-adds a pixel, scoring B², the trimmed pixels' removal and the second
scoring), each divided by the plain matmul rate of its precision measured in the same run: the
seconds the arithmetic needs at the machine's matmul speed. Each strategy's wall time (``detect``, GeoTIFF
in → GeoTIFF out, on GDAL's default layout: pixel-interleaved strips) is printed as a ratio to that limit
plus one ``Dataset.ReadAsArray()`` of the same file.
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
# ru_maxrss survives exec (it would be this process's parent's RSS at fork): the address space's own peak
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
print(json.dumps({"seconds": r.seconds, "process_seconds": time.perf_counter() - t0, "model_seconds": r.info.get("model_seconds", 0.0),
                  "detector_seconds": r.info.get("detector_seconds", 0.0),
                  "peak_rss_mb": float(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
"""


def matmul_gflops(n=2048, repeat=5, dtype=torch.float32):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
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


def write_tif(path, cube, options=("TILED=YES", "INTERLEAVE=BAND")):
    from osgeo import gdal

    gdal.UseExceptions()
    b, h, w = cube.shape
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, b, gdal.GDT_Float32, list(options))
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

ONE_CALL = r"""
import sys, time
from osgeo import gdal
gdal.UseExceptions()
t0 = time.perf_counter()
gdal.Open(sys.argv[1]).ReadAsArray(buf_type=gdal.GDT_Float32)
print(time.perf_counter() - t0)
"""


def _addmm_flops(self_shape, a_shape, b_shape, out_shape=None, **kwargs):
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


# torch's counter knows addmm but not its in-place form, which RX's covariance accumulates with
ADDMM_ = {torch.ops.aten.addmm_: _addmm_flops}


def counted_flops(model, strategy, crop=128, bands=200):
    """(network FLOPs, RX FLOPs) per pixel of ``score_scene(strategy)``, counted by torch's FlopCounterMode on
    a crop² mosaic (per pixel of the crop with the Spe-FEN's 4-pixel reflected halo: the caller scales by
    its own padded size); RX counted alone with the strategy's trim, once per map the strategy scores."""
    from torch.utils.flop_counter import FlopCounterMode

    from fers.detect.rx import rx
    from fers.pipeline import resolve_rx_trim, score_scene
    from fers.preprocess import scale_cube

    cube = real_mosaic(crop, bands)
    valid = np.ones(cube.shape[1:], bool)
    cube, _ = scale_cube(cube, valid)
    with FlopCounterMode(display=False, custom_mapping=ADDMM_) as total:
        score_scene(cube, valid, strategy, model=model if strategy != "none" else None, device="cpu")
    trim = resolve_rx_trim(None, strategy)
    with FlopCounterMode(display=False, custom_mapping=ADDMM_) as alone:
        rx(cube, valid, trim=trim)
    maps = 2 if strategy == "multiplicative" else 1
    # torch sees RX's scoring products but not its covariance (NumPy's syrk on the CPU): the networks are the
    # rest of what torch counted, RX is counted from its known costs (rx_flops_per_pixel)
    net = (total.get_total_flops() - alone.get_total_flops() * maps) / (crop + 8) ** 2
    return net, rx_flops_per_pixel(bands, trim) * maps


def rx_flops_per_pixel(bands, trim):
    """FLOPs per pixel of ``fers.detect.rx`` at full rank: the covariance's symmetric rank-k update (B(B+1)/2
    multiply-adds), the scoring product Wᵀ(x − μ) (B² multiply-adds) and its squares; trimmed: the left-out
    pixels' update (trim of the pixels) and a second scoring. The B×B eigendecomposition (~9B³ once) and the
    per-band passes are left out: at 512²×200 they are under 1 % of it."""
    cov, score = bands * (bands + 1), 2 * bands * bands + 2 * bands
    return cov + score + ((trim * cov + score) if trim > 0 else 0)


def counted_limit(size, model_name, folder, f32, f64):
    """Each strategy's seconds in all against the counted limit plus one GDAL read, on GDAL's default layout."""
    from fers.checkpoint import load_model

    model = load_model(model_name)
    tif = os.path.join(folder, f"default_{size}.tif")
    write_tif(tif, real_mosaic(size, 200), options=())  # GDAL's default: pixel-interleaved strips
    reads = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", ONE_CALL, tif], capture_output=True, text=True, check=True)
        reads.append(float(r.stdout.strip().splitlines()[-1]))
    read = min(reads)
    print(f"\ncounted compute limit, {size}²×200, GDAL's default layout (pixel-interleaved strips), {model_name}: "
          f"FLOPs by torch's FlopCounterMode (128² crop, scaled to the pixels) / matmul rate of the same run "
          f"(float32 {f32:.1f}, float64 {f64:.1f} GFLOP/s); one Dataset.ReadAsArray() {read:.2f} s")
    print("| strategy | networks GFLOP | RX GFLOP | limit s | limit + one-call read s | in all s | model s | "
          "detector s | in all / (limit + read) |")
    print("| --- |" + " --- |" * 8)
    for strategy in STRATEGIES:
        net, rxf = counted_flops(model, strategy)
        net, rxf = net * (size + 8) ** 2, rxf * size * size
        limit = net / (f32 * 1e9) + rxf / (f64 * 1e9)
        r = run_child(tif, strategy, model_name if strategy != "none" else None)
        print(f"| {strategy} | {net / 1e9:.1f} | {rxf / 1e9:.1f} | {limit:.2f} | {limit + read:.2f} | "
              f"{r['seconds']:.2f} | {r['model_seconds']:.2f} | {r['detector_seconds']:.2f} | "
              f"{r['seconds'] / (limit + read):.2f} |", flush=True)
    os.remove(tif)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", type=int, default=[256, 512, 1024, 2048])
    ap.add_argument("--model", default="fers-aviris-200")
    ap.add_argument("--keep")
    ap.add_argument("--no-tiling-check", action="store_true")
    ap.add_argument("--limit-size", type=int, default=512, help="size of the counted-limit table (0: none)")
    ap.add_argument("--no-batched", action="store_true")
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
    if args.limit_size:
        counted_limit(args.limit_size, args.model, folder, peak, matmul_gflops(dtype=torch.float64))
    if not args.keep:
        os.rmdir(folder)
    if not args.no_tiling_check:
        tiling_check()
    if not args.no_batched:
        batched_scenes()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
