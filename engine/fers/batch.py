"""`fers batch`: `fers detect` over many scenes on a Dask cluster (``dask.distributed``).

Why Dask rather than a scheduler of our own: it is the distributed engine geospatial Python already runs
(xarray, odc, pangeo), the same code runs on a laptop's local cluster, on two machines (``dask scheduler``
and ``dask worker``), on SLURM/PBS (dask-jobqueue) or Kubernetes, and it already does what a campaign needs
from a scheduler: a task whose worker dies is rescheduled on another (``distributed.scheduler.allowed-
failures``), a task that raised is retried (``retries``), work goes to whichever worker is free, and a
dashboard shows it all.

Each scene is one task (``batch_tasks.run_scene``: the same ``pipeline.detect`` as `fers detect`, the model
loaded once per worker process). The client decides what to run: a scene whose record matches the
parameters, the model's sha256 and the input is skipped (resume); ``force`` redoes everything. Errors the
analyst can act on are a scene's row in the results table, never the end of the batch; the objects of
every scene are merged into one GeoPackage in one CRS.

``dask`` is an optional extra (``pip install 'fers[distributed]'``): nothing else in the engine needs it.
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import hashlib
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .batch_tasks import RESULT_FIELDS, SUFFIXES, SceneJob, cpu_cores, read_record, remove_partials, run_scene
from .errors import FersError, InputError, OutputError
from .feedback import Feedback

INSTALL_HINT = "pip install 'fers[distributed]' (or: pip install 'dask[distributed]')"
RASTER_EXTENSIONS = (".tif", ".tiff", ".img", ".dat", ".bsq", ".bil", ".bip", ".vrt", ".jp2", ".nc", ".h5",
                     ".he5", ".hdf", ".mat", ".npy")
LIST_EXTENSIONS = (".csv", ".txt", ".lst")
RESULTS = "results.csv"
MERGED_OBJECTS = "anomaly_objects.gpkg"
# what makes a scene's outputs: anything else (device, tiles, memory) changes speed, never the map
KEY_DETECT = ("bands", "strategy", "detector", "rx_trim", "variable", "band_match", "nodata", "file_nodata",
              "extent", "local_mean", "window")


class MissingDask(FersError):
    pass


def require_dask():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise MissingDask(f"fers batch runs on Dask, which is not installed: {INSTALL_HINT}") from None


# ------------------------------------------------------------------ scenes

def _is_scene_file(path: str) -> bool:
    base = os.path.basename(path).lower()
    stem, ext = os.path.splitext(base)
    return (ext in RASTER_EXTENSIONS and not stem.endswith("_gt") and not base.startswith(".")
            and not any(base.endswith(s) for s in SUFFIXES.values()))


def _read_list(path: str) -> list:
    """A text list (one path a line, '#' comments) or a CSV (column path/scene/input, else the first);
    relative paths are relative to the list."""
    here = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as f:
        if path.lower().endswith(".csv"):
            rows = [r for r in csv.reader(f) if r and r[0].strip() and not r[0].lstrip().startswith("#")]
            col = 0
            if rows:
                head = [c.strip().lower() for c in rows[0]]
                hit = next((head.index(k) for k in ("path", "scene", "input") if k in head), None)
                if hit is not None:
                    col, rows = hit, rows[1:]
            items = [r[col].strip() for r in rows if len(r) > col]
        else:
            items = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    return [i if os.path.isabs(i) else os.path.join(here, i) for i in items]


def expand_scenes(items: Sequence[str]) -> list:
    """Scene paths (absolute, in the order given, once each) from files, folders (their raster files; ground
    truths ``*_gt.*`` and fers's own outputs left out), glob patterns, and lists (.csv, .txt, .lst)."""
    out = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(p for p in glob.glob(os.path.join(glob.escape(item), "*")) if os.path.isfile(p)
                           and _is_scene_file(p))
            if not found:
                raise InputError(f"the folder {item} holds no raster ({', '.join(RASTER_EXTENSIONS)})")
        elif os.path.isfile(item) and item.lower().endswith(LIST_EXTENSIONS):
            found = _read_list(item)
            missing = [p for p in found if not os.path.exists(p)]
            if missing:
                raise InputError(f"{len(missing)} scene(s) of the list {item} do not exist, e.g. {missing[0]}")
        elif os.path.exists(item):
            found = [item]
        elif glob.has_magic(item):
            found = sorted(p for p in glob.glob(item) if os.path.isfile(p) and _is_scene_file(p))
            if not found:
                raise InputError(f"no raster matches {item}")
        else:
            raise InputError(f"no such file or folder: {item}")
        out.extend(os.path.abspath(p) for p in found)
    out = list(dict.fromkeys(out))
    if not out:
        raise InputError("no scene given")
    return out


def scene_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _check_names(paths: Sequence[str]) -> None:
    seen = {}
    for p in paths:
        other = seen.setdefault(scene_name(p), p)
        if other != p:
            raise InputError(f"{other} and {p} would write the same outputs ({scene_name(p)}{SUFFIXES['map']}): "
                             "give scenes with distinct file names, or run them into separate --out folders")


# ------------------------------------------------------------------ parameters and models

def _jsonable(v):
    if hasattr(v, "text"):  # a BandList by wavelength: its text says what it selects
        return {"band_list": v.text}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


class _Models:
    """The model each scene runs with, as the worker loads it (a path, or a bundled model's name, which
    each worker resolves in its own install), and its sha256, computed once per file."""

    def __init__(self, model: Optional[str], strategy: str, bands, feedback: Feedback):
        self.model, self.strategy, self.bands, self.fb = model, strategy, bands, feedback
        self._default = {}
        if model:
            from .bundled import resolve_model_path

            self.path = resolve_model_path(model)  # a missing model is an error before anything runs
            # a path as an absolute path; a bare bundled name stays a name
            self.spec = os.path.abspath(model) if os.path.exists(model) else model

    def for_scene(self, path: str, detect_kw: dict) -> tuple:
        """(spec for the worker or None, path on this machine or None)."""
        if self.model:
            return self.spec, self.path
        if self.strategy == "none":
            return None, None
        from .io import open_source
        from .pipeline import resolve_band_list

        src = open_source(path, detect_kw.get("variable"))
        bands = resolve_band_list(self.bands, src, Feedback())
        key = ("all", src.band_count) if isinstance(bands, int) and bands == 0 else (
            "n", bands if isinstance(bands, int) else len(list(bands)))
        if key not in self._default:
            from .bundled import list_models
            from .pipeline import default_model

            chosen = default_model(bands, src.band_count, self.fb)
            name = next((m.name for m in list_models() if os.path.abspath(m.path) == os.path.abspath(chosen)),
                        chosen)
            self._default[key] = (name, chosen)
        return self._default[key]


def _scene_key(detect_kw: dict, products: dict, mask: bool, objects: bool, model_path: Optional[str]) -> str:
    from .batch_tasks import model_sha256

    d = {k: _jsonable(detect_kw.get(k)) for k in KEY_DETECT}
    d.update(products=products, mask=mask, objects=objects,
             model_sha256=model_sha256(model_path) if model_path else None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def check_products(products: dict) -> None:
    """The thresholds of --mask/--objects, refused before any cluster starts with objects.threshold's own lines
    (checked on a one-pixel map: only the rules matter here)."""
    import numpy as np

    from .objects import threshold

    threshold(np.zeros(1), np.ones(1, bool), products.get("threshold_percentile"), products.get("false_alarm_rate"))
    n = products.get("min_pixels", 1)
    if int(n) < 1:
        raise InputError(f"the minimum object size is a pixel count of at least 1, got {n}")


def _target_srs(text: Optional[str]):
    if not text:
        return None
    from osgeo import osr

    srs = osr.SpatialReference()
    if srs.SetFromUserInput(text) != 0:
        raise InputError(f"--objects-crs '{text}' is not a CRS GDAL knows (e.g. EPSG:4326, EPSG:32611 or WKT)")
    return srs


# ------------------------------------------------------------------ the cluster

class _Cluster:
    """A Client on a local cluster (``workers`` processes of one thread, torch threads = cores // workers,
    memory = what fers's memory check finds left, split evenly) or on an existing scheduler."""

    def __init__(self, workers: Optional[int], scheduler: Optional[str], todo: int, feedback: Feedback):
        from distributed import Client

        self.cluster = None
        self.fb = feedback
        if scheduler:
            try:
                if os.path.isfile(scheduler):
                    self.client = Client(scheduler_file=scheduler, timeout="20s")
                else:
                    self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as e:
                raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
            self.threads = self._threads_per_host()
            info = self.client.scheduler_info()
            self.description = f"the Dask cluster at {info.get('address', scheduler)} ({len(info['workers'])} workers)"
        else:
            from distributed import LocalCluster

            from .memory import available_bytes

            cores = cpu_cores()
            n = max(1, int(workers) if workers else min(cores, todo))
            avail, _ = available_bytes()
            self.threads = max(1, cores // n)
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                        memory_limit=int(avail / n) if avail else "auto",
                                        # without bokeh there is no dashboard to serve, nor a port to take
                                        dashboard_address=":8787" if importlib.util.find_spec("bokeh") else None,
                                        silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
            mem = f", {avail / n / 1024 ** 3:.1f} GB each" if avail else ""
            self.description = (f"a local Dask cluster of {n} worker process(es) × 1 thread, torch threads "
                                f"{self.threads} each{mem}")

    def _threads_per_host(self) -> dict:
        """{host: torch threads}: that host's cores over the Dask threads of all its workers."""
        info = self.client.scheduler_info()["workers"]
        cores = self.client.run(cpu_cores)
        per_host, host_cores = {}, {}
        for addr, w in info.items():
            host = addr.split("://")[-1].rsplit(":", 1)[0]
            per_host[host] = per_host.get(host, 0) + int(w.get("nthreads", 1))
            host_cores[host] = cores.get(addr, 1)
        return {h: max(1, host_cores[h] // per_host[h]) for h in per_host}

    def dashboard(self) -> Optional[str]:
        """The dashboard's address, when one is up: distributed serves it only where bokeh is installed (its
        HTTP server answers without it, with a page that asks for bokeh)."""
        try:
            if "dashboard" not in self.client.scheduler_info().get("services", {}):
                return None
            # a lambda travels by value: the scheduler needs no fers installed to answer
            if not self.client.run_on_scheduler(lambda: __import__("importlib.util").util.find_spec("bokeh")
                                                is not None):
                return None
            return self.client.dashboard_link
        except Exception:  # a link is a courtesy: never the reason a batch fails
            return None

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


# ------------------------------------------------------------------ the batch

@dataclass
class BatchResult:
    rows: list
    results: str
    objects: Optional[str] = None
    counts: dict = field(default_factory=dict)
    seconds: float = 0.0
    cluster: str = ""


def run_batch(scenes: Sequence[str], out_dir: str, detect_kw: dict, model: Optional[str] = None,
              mask: bool = False, objects: bool = False, products: Optional[dict] = None,
              objects_crs: Optional[str] = None, workers: Optional[int] = None, scheduler: Optional[str] = None,
              retries: int = 2, force: bool = False, feedback: Optional[Feedback] = None) -> BatchResult:
    """Detect every scene into ``out_dir``; the results table (``results.csv``) and, with ``objects``, one
    merged GeoPackage. ``detect_kw``: ``pipeline.detect``'s keyword arguments (bands, strategy, detector,
    rx_trim, device, variable, band_match, tile_size, memory_mb, nodata, file_nodata, extent)."""
    fb = feedback or Feedback()
    t0 = time.perf_counter()
    products = {k: v for k, v in (products or {}).items() if v is not None}
    require_dask()
    if workers is not None and scheduler:
        raise InputError("--workers sizes a local cluster; with --scheduler the cluster's own workers run")
    if workers is not None and int(workers) < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if int(retries) < 0:
        raise InputError(f"--retries must be 0 or more, got {retries}")
    check_products(products)
    target = _target_srs(objects_crs) if objects else None
    _check_detect_kw(detect_kw)
    paths = expand_scenes(scenes)
    _check_names(paths)
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputError(f"--out {out_dir} is a file, not a folder")
    existing = out_dir
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK):
        raise OutputError(f"output folder is not writable: {existing}")
    if scheduler and not os.path.isfile(scheduler) and ":" not in scheduler:
        raise InputError(f"--scheduler {scheduler}: neither a scheduler file nor an address like tcp://HOST:8786")

    models = _Models(model, detect_kw.get("strategy", "none"), detect_kw.get("bands", 0), fb)
    rows, jobs = {}, []
    for p in paths:
        name = scene_name(p)
        try:
            spec, mpath = models.for_scene(p, detect_kw)
        except FersError as e:  # this scene's model cannot be chosen (too few bands, unreadable header)
            rows[p] = dict(dict.fromkeys(RESULT_FIELDS, ""), scene=name, input=p, status="failed", error=str(e))
            continue
        job = SceneJob(p, name, out_dir, _scene_key(detect_kw, products, mask, objects, mpath), dict(detect_kw),
                       spec, mask, objects, products)
        rec = None if force else read_record(job)
        if rec is not None:
            rows[p] = dict(dict.fromkeys(RESULT_FIELDS, ""))
            rows[p].update(rec.get("row", {}), status="skipped")
        else:
            jobs.append(job)
    skipped = sum(r["status"] == "skipped" for r in rows.values())
    if skipped:
        fb.info(f"{skipped} of {len(paths)} scene(s) done already with these parameters and model: skipped "
                "(--force redoes them)")
    cluster_text = ""
    if jobs:
        cluster_text = _run_jobs(jobs, rows, workers, scheduler, retries, fb)
    else:
        fb.info("nothing to run")
        os.makedirs(out_dir, exist_ok=True)
    for job in jobs:  # a task that never finished (its worker lost for good) leaves no hidden file either
        remove_partials(job)
    ordered = [rows[p] for p in paths]
    results = write_results(os.path.join(out_dir, RESULTS), ordered)
    merged = None
    if objects:
        merged = merge_objects(os.path.join(out_dir, MERGED_OBJECTS),
                               [(r["scene"], os.path.join(out_dir, r["scene"] + SUFFIXES["objects"]))
                                for r in ordered if r["status"] in ("done", "skipped")], target, fb)
    counts = {s: sum(r["status"] == s for r in ordered) for s in ("done", "skipped", "failed")}
    return BatchResult(ordered, results, merged, counts, time.perf_counter() - t0, cluster_text)


def _check_detect_kw(kw: dict) -> None:
    """What pipeline.detect would refuse about the parameters themselves, refused once before any cluster."""
    from .tiling import MIN_TILE

    if kw.get("rx_trim") is not None:
        from .detect.rx import check_trim

        check_trim(kw["rx_trim"])
    if kw.get("tile_size") and kw["tile_size"] < MIN_TILE:
        raise InputError(f"TILE_SIZE must be 0 (automatic) or at least {MIN_TILE} px, got {kw['tile_size']}")
    if kw.get("memory_mb") and kw["memory_mb"] < 16:
        raise InputError(f"the memory budget must be at least 16 MB, got {kw['memory_mb']:g}")
    from .device import resolve_device

    resolve_device(kw.get("device", "auto"))


def _run_jobs(jobs: list, rows: dict, workers, scheduler, retries: int, fb: Feedback) -> str:
    from distributed import as_completed

    cluster = _Cluster(workers, scheduler, len(jobs), fb)
    os.makedirs(jobs[0].out_dir, exist_ok=True)  # once a cluster is there: a batch that cannot start leaves nothing
    try:
        fb.info(f"{len(jobs)} scene(s) on {cluster.description}")
        link = cluster.dashboard()
        if link:
            fb.info(f"Dask dashboard: {link}")
        futures = {}
        for job in jobs:
            job = dataclasses.replace(job, torch_threads=cluster.threads)
            # pure=False: a re-run after a change on disk is a new task, never a cached result
            fut = cluster.client.submit(run_scene, job, key=f"fers-{job.name}-{job.key[:12]}", retries=int(retries),
                                        pure=False)
            futures[fut] = job
        done = 0
        for fut in as_completed(list(futures)):
            job = futures[fut]
            if fut.status == "finished":
                row = fut.result()
            else:  # raised past its retries, or its workers kept dying (KilledWorker)
                exc = fut.exception()
                row = dict(dict.fromkeys(RESULT_FIELDS, ""), scene=job.name, input=job.input, status="failed",
                           error=f"{type(exc).__name__}: {exc}".replace("\n", " "))
            rows[job.input] = row
            done += 1
            what = (f"{row['seconds']} s on {row['worker']}" if row["status"] == "done" else row["error"])
            fb.info(f"[{done}/{len(jobs)}] {job.name}: {row['status']} ({what})")
        return cluster.description
    finally:
        cluster.close()


def write_results(path: str, rows: list) -> str:
    from .io.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, RESULT_FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    return path


# ------------------------------------------------------------------ one objects layer

def merge_objects(path: str, scenes: list, target=None, feedback: Optional[Feedback] = None) -> str:
    """One GeoPackage layer of every scene's anomaly objects with a ``scene`` field, reprojected (OGR) to
    ``target`` (an osr.SpatialReference) or to the first scene's CRS. Centroids follow their geometry;
    ``area`` stays in the scene's own map units. A scene without a CRS cannot be placed among georeferenced
    ones and is left out of the layer, with a warning."""
    from osgeo import ogr, osr

    from .io.atomic import atomic_path
    from .io.raster import gdal_exceptions
    from .objects import OBJECT_FIELDS

    fb = feedback or Feedback()
    layers = []
    with gdal_exceptions():
        for name, p in scenes:
            ds = ogr.Open(p)
            lyr = ds.GetLayer(0)
            layers.append((name, ds, lyr, lyr.GetSpatialRef()))
        if target is None:
            target = next((srs for *_, srs in layers if srs is not None), None)
        if target is not None:
            target = target.Clone()
            target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        with atomic_path(path, ".partial.gpkg") as tmp:
            os.remove(tmp)  # the driver creates its file itself
            out = ogr.GetDriverByName("GPKG").CreateDataSource(tmp)
            dst = out.CreateLayer("anomaly_objects", srs=target, geom_type=ogr.wkbMultiPolygon)
            dst.CreateField(ogr.FieldDefn("scene", ogr.OFTString))
            for k in OBJECT_FIELDS:
                dst.CreateField(ogr.FieldDefn(k, ogr.OFTInteger if k in ("id", "pixels") else ogr.OFTReal))
            defn = dst.GetLayerDefn()
            dst.StartTransaction()
            for name, ds, lyr, srs in layers:
                transform = None
                if srs is not None and target is not None and not srs.IsSame(target):
                    srs = srs.Clone()
                    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
                    transform = osr.CoordinateTransformation(srs, target)
                elif (srs is None) != (target is None):
                    fb.warn(f"{name}: its objects are left out of {os.path.basename(path)}: "
                            f"{'it has no CRS' if srs is None else 'the layer has no CRS'}")
                    continue
                for f in lyr:
                    g = f.GetGeometryRef().Clone()
                    cx, cy = f.GetField("centroid_x"), f.GetField("centroid_y")
                    if transform is not None:
                        g.Transform(transform)
                        cx, cy = transform.TransformPoint(cx, cy)[:2]
                    o = ogr.Feature(defn)
                    o.SetField("scene", name)
                    for k in OBJECT_FIELDS:
                        o.SetField(k, f.GetField(k))
                    o.SetField("centroid_x", cx)
                    o.SetField("centroid_y", cy)
                    o.SetGeometry(g)
                    dst.CreateFeature(o)
            dst.CommitTransaction()
            out = None
    return path
