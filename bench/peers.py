"""Plain RX against Spectral Python's, side by side on the same cube (part of `make bench-speed`).

A 512² × 200 float32 mosaic of real ABU scenes (``common.real_mosaic``) is written in the three GeoTIFF layouts
of issue 23: band-interleaved, pixel-interleaved 512×1 strips (GDAL's default for a multi-band GeoTIFF) and
pixel-interleaved tiled + DEFLATE. Per layout, ``--repeat`` times, alternating, each in a fresh process (imports
not counted on either side):

- ours: ``fers.pipeline.detect(strategy="none")`` (what ``fers detect --strategy none`` runs), GeoTIFF in,
  GeoTIFF map out; its own wall time, and the RX share of it (``detector_seconds``);
- reference read: one ``Dataset.ReadAsArray()`` of the file (the dataset-level read of the same pixels);
- Spectral Python, as an analyst would use it: one GDAL read, the cube moved to SPy's (rows, cols, bands), and
  ``spectral.rx`` (global background).

Printed per layout: medians of each, ours / (one read + our RX) and ours / SPy (each repetition's ratio, then
the median), the correlation of our map with SPy's, and whether our maps are bit-identical across layouts.
SPy is a benchmark dependency only (spectral==0.24, in the venv). ``--size`` and ``--repeat`` to change.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, real_mosaic  # noqa: E402

LAYOUTS = {
    "band": ("band-interleaved (INTERLEAVE=BAND)", ["INTERLEAVE=BAND"]),
    "pixel": ("pixel-interleaved strips (GDAL default)", []),
    "tiled": ("pixel-interleaved tiled + DEFLATE", ["TILED=YES", "COMPRESS=DEFLATE"]),
}

CHILD = r"""
import json, sys, time
import numpy as np
what, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
if what == "ours":
    # what `fers detect` has imported before it reads (GDAL, the detectors), as SPy's side imports GDAL and
    # spectral before its clock starts: imports are not counted on either side
    from osgeo import gdal  # noqa: F401
    import fers.detect.rx, fers.detect.classic, fers.detect.ae, fers.detect.autoad, fers.tiling  # noqa: F401
    from fers.pipeline import detect
    r = detect(path, out + ".tif", bands=0, strategy="none", device="cpu")
    np.save(out, r.scores)
    print(json.dumps({"seconds": r.seconds, "rx": r.info.get("detector_seconds", 0.0)}))
else:
    from osgeo import gdal
    import spectral
    gdal.UseExceptions()
    t0 = time.perf_counter()
    cube = gdal.Open(path).ReadAsArray(buf_type=gdal.GDT_Float32)
    t1 = time.perf_counter()
    if what == "spy":
        scores = spectral.rx(np.ascontiguousarray(np.moveaxis(cube, 0, 2)))
        t2 = time.perf_counter()
        np.save(out, scores.astype(np.float32))
    else:
        t2 = t1
    print(json.dumps({"read": t1 - t0, "seconds": t2 - t0}))
"""


def run_child(what, path, out):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "engine"), CPL_LOG="/dev/null")
    r = subprocess.run([sys.executable, "-c", CHILD, what, path, out], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{what} {path}: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def write_tif(path, cube, options):
    from osgeo import gdal, gdal_array

    gdal.UseExceptions()
    mem = gdal_array.OpenArray(cube)
    mem.SetGeoTransform((380000.0, 7.1, 0.0, 3760000.0, 0.0, -7.1))
    gdal.Translate(path, mem, format="GTiff", creationOptions=options)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--bands", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    args = ap.parse_args(argv)
    cube = real_mosaic(args.size, args.bands)
    folder = tempfile.mkdtemp(prefix="fers-peers-")
    med = lambda xs: float(np.median(xs))  # noqa: E731
    print(f"\nplain RX, ours (fers detect --strategy none, GeoTIFF in and out) vs Spectral Python (one GDAL read + "
          f"spectral.rx), {args.size}²×{args.bands} float32, median of {args.repeat} alternating runs, "
          "fresh processes, imports not counted")
    print("| layout | ours in all s | our RX s | one read s | SPy in all s | ours / (read + our RX) | "
          "ours / SPy | corr(ours, SPy) | our map = band layout's |")
    print("| --- |" + " --- |" * 8)
    first = None
    try:
        for layout in [x.strip() for x in args.layouts.split(",") if x.strip()]:
            desc, opts = LAYOUTS[layout]
            tif = os.path.join(folder, f"{layout}.tif")
            write_tif(tif, cube, opts)
            ours, one, spy = [], [], []
            runs = [("ours", ours), ("read", one), ("spy", spy)]
            for k in range(args.repeat):  # each in turn first (the first allocation after the page cache
                for what, into in runs[k % 3:] + runs[:k % 3]:  # filled pays the kernel's reclaim)
                    into.append(run_child(what, tif, os.path.join(folder, f"{what}.npy")))
            a, b = np.load(os.path.join(folder, "ours.npy")), np.load(os.path.join(folder, "spy.npy"))
            ok = np.isfinite(a) & np.isfinite(b)
            corr = float(np.corrcoef(a[ok].astype(np.float64), b[ok].astype(np.float64))[0, 1])
            first = a if first is None else first
            same = np.array_equal(a, first, equal_nan=True)
            vs_read = med([o["seconds"] / (r["seconds"] + o["rx"]) for o, r in zip(ours, one)])
            vs_spy = med([o["seconds"] / s["seconds"] for o, s in zip(ours, spy)])
            print(f"| {desc} | {med([o['seconds'] for o in ours]):.2f} | {med([o['rx'] for o in ours]):.2f} | "
                  f"{med([r['seconds'] for r in one]):.2f} | {med([s['seconds'] for s in spy]):.2f} | {vs_read:.2f} | "
                  f"{vs_spy:.2f} | {corr:.10f} | {'yes' if same else 'NO'} |", flush=True)
            os.remove(tif)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
