"""`fers batch` on Dask: the maps of `fers detect`, one results table, one merged objects layer, resume, a corrupt
raster failing alone, and a worker killed with SIGKILL mid-batch (Dask reschedules its scene).

Real processes as a cluster runs them: `fers batch --workers 2` starts a local cluster of two worker processes;
the kill test starts `dask scheduler` and two `dask worker` on 127.0.0.1. The scenes are 48×48 crops (first 100
bands used) of evaluation scenes of ../shared/data, as GeoTIFFs; `make bench-batch` runs every evaluation
scene at full size.
"""
import csv
import glob
import importlib.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import VENV_BIN, fers, mat_scene, pairwise_auc, read_geotiff, write_geotiff

pytest.importorskip("distributed")

SCENES = ["abu-airport-1", "abu-urban-3", "abu-airport-4"]
PARAMS = ["--strategy", "auto", "--bands", "100", "--model", "fers-aviris-100", "--device", "cpu"]
UTM12 = (500000.0, 7.1, 0.0, 3760000.0, 0.0, -7.1)  # one scene in another CRS: the merged layer reprojects it


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """{name: (tif, gt crop)}: 48×48 crops around each scene's anomalies with their ground truth; abu-airport-4 in
    UTM 12N, the rest in 11N."""
    folder = tmp_path_factory.mktemp("batch_scenes")
    out = {}
    for name in SCENES:
        cube, gt = mat_scene(name)
        r, c = (int(np.clip(np.mean(ix) - 24, 0, n - 48)) for ix, n in zip(np.nonzero(gt), gt.shape))
        kw = dict(epsg=32612, geotransform=UTM12) if name == "abu-airport-4" else {}
        out[name] = (write_geotiff(folder / f"{name}.tif", cube[r:r + 48, c:c + 48], **kw),
                     gt[r:r + 48, c:c + 48] > 0)
    return out


@pytest.fixture(scope="module")
def reference(crops, tmp_path_factory):
    """`fers detect` run one by one with the batch's parameters, in a process set up as a Dask worker is: the
    nanny's environment (OMP/MKL/OpenBLAS at 1 thread: NumPy's BLAS, which RX's covariance, eigh and scoring use
    on the CPU) and the torch threads each of the batch's two workers gets on this machine (cores // 2). Float
    sums in another order round differently (1 against 2 threads: 2.7e-5 of the map's range on abu-urban-3;
    NumPy's BLAS at 2 threads against 1: 7.6e-6 on abu-airport-1)."""
    folder = tmp_path_factory.mktemp("batch_reference")
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    code = ("import sys, torch; torch.set_num_threads(int(sys.argv[1])); from fers.cli import main; "
            "sys.exit(main(sys.argv[2:]))")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    maps = {}
    for name, (tif, _) in crops.items():
        out = folder / f"{name}.tif"
        r = subprocess.run([sys.executable, "-c", code, str(threads), "-q", "detect", tif, str(out), *PARAMS],
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        maps[name] = read_geotiff(out)[0][0]
    return maps


def results(out):
    with open(os.path.join(out, "results.csv"), newline="") as f:
        return {r["scene"]: r for r in csv.DictReader(f)}


def assert_maps_equal(out, crops, reference):
    for name, (_, gt) in crops.items():
        got = read_geotiff(os.path.join(out, f"{name}_anomaly.tif"))[0][0]
        ref = reference[name]
        assert np.array_equal(got, ref), (name, np.max(np.abs(got - ref)))  # the same pipeline.detect, bit for bit
        assert round(pairwise_auc(got, gt), 4) == round(pairwise_auc(ref, gt), 4)


def no_partials(folder):
    return [p for p in glob.glob(os.path.join(folder, ".*")) if ".partial" in p]


def test_local_cluster_equals_detect_merges_objects_and_isolates_a_corrupt_raster(crops, reference, tmp_path):
    from osgeo import ogr, osr

    scenes = tmp_path / "list.txt"
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(open(crops["abu-airport-1"][0], "rb").read()[:5000])  # a truncated copy
    scenes.write_text("".join(f"{crops[n][0]}\n" for n in SCENES) + f"{corrupt}\n")
    out = tmp_path / "out"
    r = fers("batch", scenes, "--out", out, "--workers", 2, *PARAMS, "--objects", "--mask")
    assert r.returncode == 1, r.stderr  # the batch ran to its end, one scene failed
    assert "2 worker process(es)" in r.stderr and "[4/4]" in r.stderr
    if importlib.util.find_spec("bokeh") is None:  # no dashboard without bokeh: no address printed either
        assert "dashboard" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("fers: 1 of 4 scene(s) failed, e.g. corrupt: could not read")
    rows = results(out)
    assert rows["corrupt"]["status"] == "failed" and "truncated or corrupt" in rows["corrupt"]["error"]
    assert not os.path.exists(out / "corrupt_anomaly.tif")
    for name in SCENES:
        row = rows[name]
        assert row["status"] == "done" and row["pixels"] == str(48 * 48) and row["model"] == "fers-aviris-100.pt"
        assert row["strategy"] == "additive" and row["detector"] == "rx trimmed 0.01"
        assert row["worker"].startswith("tcp://")
        assert os.path.exists(out / f"{name}_mask.tif")
    assert len({rows[n]["worker"] for n in SCENES}) >= 1 and no_partials(out) == []
    assert_maps_equal(out, crops, reference)

    # one layer: every scene's objects, its name in `scene`, in the first scene's CRS (UTM 11N)
    merged = ogr.Open(str(out / "anomaly_objects.gpkg"))
    lyr = merged.GetLayer(0)
    assert lyr.GetSpatialRef().GetAuthorityCode(None) == "32611"
    feats = [(f.GetField("scene"), f.GetField("id"), f.GetField("centroid_x"), f.GetField("centroid_y"),
              f.GetGeometryRef().Centroid().GetX()) for f in lyr]
    for name in SCENES:
        own_ds = ogr.Open(str(out / f"{name}_objects.gpkg"))  # kept: a layer dies with its dataset
        own = own_ds.GetLayer(0)
        mine = sorted(x for x in feats if x[0] == name)
        assert len(mine) == own.GetFeatureCount() > 0, name
        if name == "abu-airport-4":  # reprojected from UTM 12N: check a centroid with osr directly
            src, dst = osr.SpatialReference(), osr.SpatialReference()
            src.ImportFromEPSG(32612), dst.ImportFromEPSG(32611)
            for s in (src, dst):
                s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            f = own.GetFeature(1)
            x, y, _ = osr.CoordinateTransformation(src, dst).TransformPoint(f.GetField("centroid_x"),
                                                                             f.GetField("centroid_y"))
            hit = next(m for m in mine if m[1] == f.GetField("id"))
            assert abs(hit[2] - x) < 1e-6 and abs(hit[3] - y) < 1e-6 and abs(x - f.GetField("centroid_x")) > 1e5

    # the same command again: the done scenes are skipped without a cluster, only the corrupt one runs again
    scenes.write_text("".join(f"{crops[n][0]}\n" for n in SCENES))
    r = fers("batch", scenes, "--out", out, "--workers", 2, *PARAMS, "--objects", "--mask")
    assert r.returncode == 0, r.stderr
    assert "3 of 3 scene(s) done already" in r.stderr and "nothing to run" in r.stderr
    assert {row["status"] for row in results(out).values()} == {"skipped"}


@pytest.fixture
def inproc_cluster():
    """A scheduler and one worker thread in this process: resume decisions without starting processes."""
    import torch
    from distributed import LocalCluster

    threads = torch.get_num_threads()
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, memory_limit=0,
                           dashboard_address=None)
    yield cluster.scheduler_address
    cluster.close()
    torch.set_num_threads(threads)


def test_resume_skips_and_a_changed_parameter_input_or_force_redoes(crops, tmp_path, inproc_cluster):
    from fers.batch import run_batch
    from fers.feedback import RecordingFeedback

    scenes = [crops[n][0] for n in SCENES]
    out = str(tmp_path / "out")
    kw = dict(bands=100, strategy="none", detector="rx", device="cpu")

    def run(**extra):
        fb = RecordingFeedback()
        args = dict(dict(detect_kw=kw, objects=True, scheduler=inproc_cluster, feedback=fb), **extra)
        res = run_batch(scenes, out, **args)
        stamps = {n: os.stat(os.path.join(out, f"{n}_anomaly.tif")).st_mtime_ns for n in SCENES}
        return {r["scene"]: r["status"] for r in res.rows}, stamps, fb

    first, t1, _ = run()
    assert set(first.values()) == {"done"}
    again, t2, fb = run()
    assert set(again.values()) == {"skipped"} and t2 == t1 and "nothing to run" in fb.infos
    changed, t3, _ = run(products={"threshold_percentile": 99.0})  # what the objects are made with
    assert set(changed.values()) == {"done"} and all(t3[n] != t2[n] for n in SCENES)
    assert set(run(products={"threshold_percentile": 99.0})[0].values()) == {"skipped"}
    os.utime(scenes[1])  # the scene itself changed (same name): only it is redone
    touched, _, _ = run(products={"threshold_percentile": 99.0})
    assert touched == {SCENES[0]: "skipped", SCENES[1]: "done", SCENES[2]: "skipped"}
    assert set(run(products={"threshold_percentile": 99.0}, force=True)[0].values()) == {"done"}
    # a record from other parameters never passes for these: the strategy is part of the key
    from fers.batch_tasks import _load

    kw = dict(kw, strategy="spectral")
    before = _load.cache_info()
    assert set(run(products={"threshold_percentile": 99.0})[0].values()) == {"done"}
    after = _load.cache_info()  # the worker (here: this process) loaded the bundled model once for 3 scenes
    assert after.misses - before.misses <= 1 and after.hits - before.hits >= 2


def _start(cmd, log):
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def test_worker_killed_mid_batch_on_a_scheduler_and_two_workers(crops, reference, tmp_path):
    """`dask scheduler` and two `dask worker` processes; a worker process running a scene is killed with SIGKILL:
    Dask reschedules the scene, the batch ends with every map equal to `fers detect`'s and no partial file."""
    from distributed import Client

    dask = os.path.join(VENV_BIN, "dask")
    sched_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "w")
    procs = [_start([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(sched_file)], log)]
    out = tmp_path / "out"
    out.mkdir()
    # what a worker killed while writing leaves (io.atomic's hidden temporary file): gone by the end
    stale = out / ".abu-urban-3_anomaly.tif.k1ll3d.partial.tif"
    stale.write_bytes(b"half a GeoTIFF")
    try:
        for _ in range(600):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            time.sleep(0.1)
        for _ in range(2):
            procs.append(_start([dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                                 "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "0"], log))
        client = Client(scheduler_file=str(sched_file), timeout="60s")
        client.wait_for_workers(2, timeout=120)
        pids = client.run(os.getpid)  # fetched beforehand: the kill follows the sight of a running scene at once
        batch = subprocess.Popen([os.path.join(VENV_BIN, "fers"), "batch", *[crops[n][0] for n in SCENES],
                                  "--out", str(out), "--scheduler", str(sched_file), *PARAMS],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed = None
        deadline = time.monotonic() + 240
        while killed is None and batch.poll() is None and time.monotonic() < deadline:
            # a lambda travels by value (a function of this module would need the module on the worker)
            executing = client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing])
            running = {a: keys for a, keys in executing.items() if keys}
            if running:
                addr, keys = next(iter(running.items()))
                os.kill(pids[addr], signal.SIGKILL)
                killed = (addr, keys[0])
            time.sleep(0.05)
        stdout, stderr = batch.communicate(timeout=300)
        client.close()
        assert killed is not None, "no scene was seen running: the batch ended first"
        assert batch.returncode == 0, stderr
        rows = results(out)
        assert {r["status"] for r in rows.values()} == {"done"}
        scene = next(n for n in SCENES if killed[1].startswith(f"fers-{n}-"))
        assert rows[scene]["worker"] != killed[0]  # finished by another worker process than the killed one
        assert no_partials(out) == []
        assert_maps_equal(out, crops, reference)

        # right after: nothing to do, and it says so
        r = fers("batch", *[crops[n][0] for n in SCENES], "--out", out, "--scheduler", sched_file, *PARAMS)
        assert r.returncode == 0, r.stderr
        assert "3 of 3 scene(s) done already" in r.stderr and "nothing to run" in r.stderr
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        log.close()


def test_without_dask_one_line_says_how_to_install(crops, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "distributed.py").write_text("raise ImportError('No module named distributed')\n")
    r = fers("batch", crops["abu-airport-1"][0], "--out", tmp_path / "out",
             env={"PYTHONPATH": f"{shadow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert r.returncode == 2
    assert r.stderr.strip() == ("fers: error: fers batch runs on Dask, which is not installed: pip install "
                                "'fers[distributed]' (or: pip install 'dask[distributed]')")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--objects", "--objects-crs", "EPSG:none"], "is not a CRS GDAL knows"),
    (["--objects", "--threshold-percentile", "120"], "must be in [0, 100), got 120"),
    (["--rx-trim", "0.9"], "trim"),
    (["MISSING"], "no such file or folder: MISSING"),
    (["--scheduler", "nofile.json"], "neither a scheduler file nor an address like tcp://HOST:8786"),
])
def test_bad_parameters_one_line_exit_2_before_anything_runs(crops, tmp_path, capsys, args, message):
    from fers.cli import main

    scenes = [] if args == ["MISSING"] else [crops["abu-airport-1"][0]]
    assert main(["batch", *scenes, "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()
