"""What a Dask worker does for `fers batch`: one scene, start to finish (``run_scene``), and what tells a
scene done (its record). No Dask import here: the scheduler calls ``run_scene`` like any function, and the
client (``fers.batch``) reads the same records to decide what a re-run skips.

Per scene, in the output folder, under names made from the input's (the same every run):

    <scene>_anomaly.tif   the map, exactly as `fers detect` writes it (the same ``pipeline.detect``)
    <scene>_mask.tif      with --mask;    <scene>_objects.gpkg   with --objects (``objects.anomaly_products``)
    <scene>.fers.json     the record: parameter key, model sha256, input size and mtime, the result row

Every file is written through ``io.atomic`` (hidden temporary file, then rename) and the record last, so
a scene is done exactly when its record says so and every output it lists exists. A worker killed with
SIGKILL runs no clean-up: its hidden ``.partial`` file stays until the scene runs again (rescheduled by
Dask, or in the next batch), which removes it first (``remove_partials``); the client sweeps them too.
"""
from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import os
import resource
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from .errors import FersError

SUFFIXES = {"map": "_anomaly.tif", "mask": "_mask.tif", "objects": "_objects.gpkg"}
RECORD_SUFFIX = ".fers.json"
RESULT_FIELDS = ("scene", "status", "pixels", "valid_pixels", "seconds", "model", "strategy", "detector",
                 "objects", "worker", "peak_rss_mb", "input", "map", "error")


@dataclass(frozen=True)
class SceneJob:
    """One scene of a batch, everything a worker needs (pickled to it)."""

    input: str  # absolute path
    name: str  # the outputs' stem
    out_dir: str
    key: str  # sha256 of the parameters that make the outputs, the model's sha256 among them
    detect: dict  # keyword arguments of pipeline.detect (bands, strategy, detector, ...), model excluded
    model: Optional[str] = None  # path or bundled name, loaded once per worker (``cached_model``)
    mask: bool = False
    objects: bool = False
    products: dict = field(default_factory=dict)  # threshold_percentile, false_alarm_rate, min_pixels
    torch_threads: object = 1  # an int, or {host: int} for the workers of an existing cluster

    def outputs(self) -> dict:
        kinds = ["map"] + (["mask"] if self.mask else []) + (["objects"] if self.objects else [])
        return {k: os.path.join(self.out_dir, self.name + SUFFIXES[k]) for k in kinds}

    @property
    def record(self) -> str:
        return os.path.join(self.out_dir, self.name + RECORD_SUFFIX)


def file_identity(path: str) -> list:
    """[size, mtime_ns]: a changed scene is redone even under the same name."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


@functools.lru_cache(maxsize=32)
def _digest(path: str, identity: tuple) -> str:
    h = hashlib.sha256()
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, f) for root, _, names in os.walk(path) for f in names)
    for f in files:
        if f != path:
            h.update(os.path.relpath(f, path).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def model_sha256(path: str) -> str:
    """sha256 of a checkpoint file (or of an authors' folder's files), once per file version."""
    return _digest(os.path.abspath(path), tuple(file_identity(path)))


def read_record(job: SceneJob) -> Optional[dict]:
    """The scene's record if it proves the scene done with these parameters and this model on this input, else
    None: the key and the input's size and mtime match, and every output the record lists exists."""
    try:
        with open(job.record, encoding="utf-8") as f:
            rec = json.load(f)
        if rec.get("key") != job.key or rec.get("input_identity") != file_identity(job.input):
            return None
    except (OSError, ValueError):
        return None
    if not all(os.path.isfile(p) for p in job.outputs().values()):
        return None
    return rec


def remove_partials(job: SceneJob) -> None:
    """The hidden temporary files a killed run of this scene left (``io.atomic``'s ``.<name>.*.partial*``)."""
    for path in list(job.outputs().values()) + [job.record]:
        folder, name = os.path.split(path)
        for tmp in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.partial*")):
            with contextlib.suppress(OSError):
                os.remove(tmp)


# ------------------------------------------------------------------ the worker's side

def cpu_cores() -> int:
    """The cores this process may run on (a container's or a job's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


_model_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def _load(path: str, identity: tuple):
    from .checkpoint import load_model

    return load_model(path)


def cached_model(spec: str):
    """The model, loaded once per worker process and kept (two models at most: a batch uses one, or one per
    band count). Keyed by the file's size and mtime, so a checkpoint replaced between batches is reloaded."""
    from .bundled import resolve_model_path

    path = os.path.abspath(resolve_model_path(spec))
    with _model_lock:  # several threads of one worker: one load
        return _load(path, tuple(file_identity(path)))


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _set_torch_threads(threads) -> None:
    """Dask's nanny starts each worker with OMP_NUM_THREADS=1; the client says how many cores a task may use
    (cores per worker process on its host), so that workers × threads never exceed the cores."""
    import torch

    if isinstance(threads, dict):
        host = _worker_address().split("://")[-1].rsplit(":", 1)[0]
        threads = threads.get(host, 1)
    if int(threads) != torch.get_num_threads():
        torch.set_num_threads(max(1, int(threads)))


@contextlib.contextmanager
def _worker_memory_cap():
    """Inside a Dask worker with a memory limit, fers's memory check (``fers.memory``) counts that limit as the
    most a scene may use, so a scene too large for one worker is refused with one line instead of the nanny
    killing the worker. The limit itself, not what is left of it: the check's estimate already includes torch
    and the networks, which a worker that has run a scene holds."""
    limit = None
    try:
        from distributed import get_worker

        limit = get_worker().memory_manager.memory_limit
    except (ImportError, ValueError, AttributeError):
        pass
    if not limit or os.environ.get("FERS_MEMORY_LIMIT_MB"):
        yield
        return
    os.environ["FERS_MEMORY_LIMIT_MB"] = f"{limit / 1024 ** 2:.0f}"
    try:
        yield
    finally:
        os.environ.pop("FERS_MEMORY_LIMIT_MB", None)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # Linux: kB


def run_scene(job: SceneJob) -> dict:
    """Detect one scene into its outputs and record it; the row of the results table. An error the analyst
    can act on (``FersError``: a corrupt raster, too few bands, ...) is the row's error line, outputs
    removed; anything else propagates, so that Dask retries the task (``retries``)."""
    from .feedback import RecordingFeedback
    from .io.atomic import atomic_path
    from .pipeline import detect, detector_label

    t0 = time.perf_counter()
    outputs = job.outputs()
    row = dict.fromkeys(RESULT_FIELDS, "")
    row.update(scene=job.name, input=job.input, map=outputs["map"], worker=_worker_address())
    remove_partials(job)
    with contextlib.suppress(FileNotFoundError):
        os.remove(job.record)  # the scene is being redone: until its record is back it is not done
    fb = RecordingFeedback()
    try:
        _set_torch_threads(job.torch_threads)
        with _worker_memory_cap():
            model = cached_model(job.model) if job.model else None
            res = detect(job.input, outputs["map"], model=model, feedback=fb, **job.detect)
            n_objects = ""
            if job.mask or job.objects:
                from .objects import products_for_detection

                obj = products_for_detection(res, job.input, outputs.get("mask"), outputs.get("objects"),
                                             job.products.get("threshold_percentile"),
                                             job.products.get("false_alarm_rate"), job.detect.get("variable"),
                                             fb, job.products.get("min_pixels", 1))
                n_objects = len(obj.table)
    except FersError as e:
        for p in outputs.values():
            with contextlib.suppress(FileNotFoundError):
                os.remove(p)
        row.update(status="failed", error=str(e), seconds=round(time.perf_counter() - t0, 3),
                   peak_rss_mb=_peak_rss_mb())
        return row
    row.update(status="done", pixels=int(res.scores.size), valid_pixels=int(res.valid.sum()),
               seconds=round(time.perf_counter() - t0, 3), strategy=res.strategy,
               model=os.path.basename(model.source.rstrip("/")) if model is not None else "",
               detector=detector_label(res.detector, res.info), objects=n_objects, peak_rss_mb=_peak_rss_mb())
    record = {"key": job.key, "input_identity": file_identity(job.input), "outputs": outputs, "row": row,
              "warnings": fb.warnings}
    with atomic_path(job.record) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
    return row
