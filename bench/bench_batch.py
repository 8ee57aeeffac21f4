"""`make bench-batch`: `fers batch` on Dask over every evaluation scene of ../shared/data, against `fers detect` in a
loop (issue 22).

Every evaluation scene (../shared/data/README.md: the paper set and the other held-out scenes) becomes a GeoTIFF
(all its bands, nominal UTM 11N georeferencing) in bench/out/batch/scenes. The same parameters run four ways:

    loop       `fers detect` once per scene, one process after another (all cores to torch)
    1 worker   `fers batch --workers 1` (one worker process, torch threads = cores)
    2 workers  `fers batch --workers 2` (two worker processes, torch threads = cores // 2)
    scheduler  `dask scheduler` + two `dask worker --nthreads 1` on 127.0.0.1, `fers batch --scheduler FILE`

For each: wall seconds of the whole command (cluster start included), scenes per minute, peak RSS (per worker
from results.csv; the loop's largest process), and against the loop's maps the largest absolute difference and
the number of scenes whose AUC differs at 4 decimals. Maps are bit-equal where the torch thread count is the
loop's (1 worker); with fewer threads per process float sums run in another order and round differently.

Parameters: ``--strategy auto`` with the bundled model of each scene's band count (fers-aviris-200 for scenes of
200 bands or more, fers-aviris-100 otherwise; each worker loads each model once). TAEF__MUUFL has 64 bands, for
which there is no bundled model: it fails in every run with the same line, as it should.
Writes bench/out/batch.md and prints it.
"""
import argparse
import csv
import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_accuracy import EVALUATION, GROUPS, scene_data  # noqa: E402
from common import REPO  # noqa: E402

from fers.metrics import roc_auc  # noqa: E402

BIN = os.path.join(REPO, ".venv", "bin")
PARAMS = ["--strategy", "auto", "--device", "cpu"]


def to_geotiff(src, path):
    from osgeo import gdal, osr

    gdal.UseExceptions()
    cube, valid = src.read(range(src.band_count))
    b, h, w = cube.shape
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, b, gdal.GDT_Float32, ["TILED=YES"])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32611)
    ds.SetProjection(srs.ExportToWkt())
    ds.SetGeoTransform((380000.0, 7.1, 0.0, 3760000.0, 0.0, -7.1))
    for i in range(b):
        ds.GetRasterBand(i + 1).WriteArray(cube[i])
    ds = None


def scenes(folder):
    """{name: (tif, gt, counted)} of every evaluation scene."""
    os.makedirs(folder, exist_ok=True)
    out = {}
    for group in EVALUATION:
        for name in GROUPS[group]:
            src, gt, gt_valid, counted = scene_data(name, group)
            tif = os.path.join(folder, name + ".tif")
            if not os.path.exists(tif):
                to_geotiff(src, tif)
            out[name] = (tif, gt, counted)
    return out


def timed(cmd, **kw):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return r, time.perf_counter() - t0


def read_map(path):
    from osgeo import gdal

    if not os.path.exists(path):
        return None
    ds = gdal.Open(path)
    a = ds.GetRasterBand(1).ReadAsArray().astype(np.float64)
    nd = ds.GetRasterBand(1).GetNoDataValue()
    return np.where(a == nd, np.nan, a) if nd is not None else a


def memory_refusals(failed):
    """Scenes refused by fers's memory check: on this shared machine other jobs' memory comes and goes."""
    return sorted(k for k, v in failed.items() if "GB of memory" in v)


def loop(sc, out, only=None):
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    failed = {}
    for name, (tif, _, _) in sc.items():
        if only is not None and name not in only:
            continue
        r = subprocess.run([os.path.join(BIN, "fers"), "-q", "detect", tif, os.path.join(out, name + "_anomaly.tif"),
                            *PARAMS], capture_output=True, text=True)
        if r.returncode:
            failed[name] = r.stderr.strip().splitlines()[-1]
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, {"loop": rss}, failed


def batch(sc, out, extra):
    r, seconds = timed([os.path.join(BIN, "fers"), "batch", *[t for t, _, _ in sc.values()], "--out", out, *PARAMS,
                        *extra])
    if r.returncode not in (0, 1):
        raise SystemExit(f"fers batch failed: {r.stderr}")
    with open(os.path.join(out, "results.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    rss = {}
    for row in rows:
        if row["peak_rss_mb"] and row["status"] == "done":
            rss[row["worker"]] = max(rss.get(row["worker"], 0.0), float(row["peak_rss_mb"]))
    return seconds, rss, {row["scene"]: row["error"] for row in rows if row["status"] == "failed"}


def measured(sc, out, first, again):
    """The timed pass, then (when fers's memory check refused scenes because other jobs held the memory) one
    more pass for those only, so that every map can be compared: a re-run of `fers batch` redoes only them."""
    if os.path.isdir(out):
        shutil.rmtree(out)
    seconds, rss, failed = first()
    refused = memory_refusals(failed)
    redone = []
    if refused:
        _, _, still = again(refused)
        redone = [k for k in refused if k not in still]
    summary = {"seconds": seconds, "rss": rss, "failed": failed, "redone": redone}
    with open(os.path.join(out, "bench.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def external(sc, out, tmp):
    sched = os.path.join(tmp, "scheduler.json")
    if os.path.exists(sched):
        os.remove(sched)
    log = open(os.path.join(tmp, "cluster.log"), "w")
    procs = [subprocess.Popen([os.path.join(BIN, "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", sched], stdout=log, stderr=log)]
    try:
        while not (os.path.exists(sched) and os.path.getsize(sched)):
            time.sleep(0.1)
        for _ in range(2):
            procs.append(subprocess.Popen([os.path.join(BIN, "dask"), "worker", "--scheduler-file", sched,
                                           "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                                          stdout=log, stderr=log))
        from distributed import Client

        with Client(scheduler_file=sched, timeout="60s") as c:
            c.wait_for_workers(2, timeout=300)
        run = functools.partial(batch, sc, out, ["--scheduler", sched])
        return measured(sc, out, run, lambda refused: run())
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
        log.close()


def compare(sc, ref_dir, out):
    """(max abs difference over the scenes, the same as a share of each map's range, scenes whose AUC differs at
    4 decimals, {scene: (auc loop, auc run)})."""
    diff, rel, differ, aucs = 0.0, 0.0, [], {}
    for name, (_, gt, counted) in sc.items():
        a = read_map(os.path.join(ref_dir, name + "_anomaly.tif"))
        b = read_map(os.path.join(out, name + "_anomaly.tif"))
        if a is None or b is None:
            continue
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        d = float(np.nanmax(np.abs(a - b)))
        diff, rel = max(diff, d), max(rel, d / float(np.nanmax(a) - np.nanmin(a)))
        ok = counted & np.isfinite(a)
        aucs[name] = (roc_auc(a, gt, ok), roc_auc(b, gt, ok))
        if round(aucs[name][0], 4) != round(aucs[name][1], 4):
            differ.append(name)
    return diff, rel, differ, aucs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "out", "batch"))
    ap.add_argument("--scenes", type=int, default=0, help="only the first N scenes (a quick check of the script)")
    args = ap.parse_args()
    sc = scenes(os.path.join(args.out, "scenes"))
    if args.scenes:
        sc = dict(list(sc.items())[:args.scenes])
    cores = len(os.sched_getaffinity(0))
    runs = {}
    ref = os.path.join(args.out, "loop")
    runs["loop (fers detect × N)"] = (measured(sc, ref, lambda: loop(sc, ref), lambda only: loop(sc, ref, only)),
                                      ref, cores)
    for label, extra, threads in (("fers batch, 1 worker", ["--workers", "1"], cores),
                                  ("fers batch, 2 workers", ["--workers", "2"], max(1, cores // 2))):
        out = os.path.join(args.out, label.split(", ")[1].replace(" ", "_"))
        run = functools.partial(batch, sc, out, extra)
        runs[label] = (measured(sc, out, run, lambda refused, run=run: run()), out, threads)
    out = os.path.join(args.out, "scheduler")
    runs["dask scheduler + 2 dask worker"] = (external(sc, out, args.out), out, max(1, cores // 2))
    n = len(sc)
    load = os.getloadavg()[0]
    lines = [f"`make bench-batch`: {n} evaluation scenes of ../shared/data as GeoTIFFs, `{' '.join(PARAMS)}`, "
             f"{cores} cores (load average {load:.1f} at the end: a shared machine; figures are relative).", "",
             "| run | torch threads per process | seconds | scenes/min | peak RSS per process (MB) | failed | "
             "max abs diff vs loop (share of the map's range) | scenes with AUC ≠ loop (4 dp) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    base = None
    notes = []
    for label, (m, out, threads) in runs.items():
        seconds, failed = m["seconds"], m["failed"]
        done = n - len(failed)
        diff, rel, differ, aucs = compare(sc, ref, out)
        base = base or seconds
        lines.append(f"| {label} | {threads} | {seconds:.1f} ({seconds / base:.2f}× loop) | "
                     f"{60 * done / seconds:.1f} | {', '.join(f'{v:.0f}' for v in m['rss'].values())} | "
                     f"{', '.join(failed) or '-'} | {diff:.3g} ({rel:.2g}) | {len(differ)} of {len(aucs)} |")
        if m["redone"]:
            notes.append(f"{label}: {', '.join(m['redone'])} refused by the memory check in the timed pass (other "
                         "jobs held the memory), done by the same command run again (resume)")
    lines += [""] + [f"- {x}" for x in notes]
    lines += ["", "Failures in the loop: " + "; ".join(f"{k}: {v}" for k, v in runs[
        "loop (fers detect × N)"][0]["failed"].items() if k not in runs["loop (fers detect × N)"][0]["redone"]), "",
        "| scene | AUC loop | AUC 2 workers |", "| --- | --- | --- |"]
    aucs = compare(sc, ref, runs["fers batch, 2 workers"][1])[3]
    lines += [f"| {k} | {a:.4f} | {b:.4f} |" for k, (a, b) in aucs.items()]
    text = "\n".join(lines)
    with open(os.path.join(os.path.dirname(args.out), "batch.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
