"""Benchmark harness: the paper's evaluation protocol (SPEC §4) over many scenes in one call.

For every scene × band count × strategy × detector: the first N bands, the SPEC §0
scaling, ``score_scene``, the ROC AUC over valid pixels and the seconds spent
(total = feature enhancement + detector + fusion; reading and scaling excluded, as
in the paper's per-scene times). Ground truth is read only to compute the AUC and
to draw it next to the maps; nothing is trained or tuned here.

Scenes come from:

* ABU-style ``.mat`` files (data and ground-truth variables auto-detected);
* ``DATA=TRUTH`` pairs (``RCRD__dataPavia.mat=RCRD__maskPavia.mat``, ``scene.tif=truth.tif``);
* files whose ground truth sits beside them: ``scene.tif`` + ``scene_gt.tif`` (also ``-gt``,
  ``_mask``, ``-mask``), ``PREFIXdataNAME.mat`` + ``PREFIXmaskNAME.mat`` (the RCRD naming);
* folders of any of those;
* a HAD100 root (``test/<sensor>/*.npy`` + ``ground_truth/<sensor>/<name>.png``).

Outputs in the results folder (every file written atomically): ``results.csv``,
``results.md``, ``results.json``, ``roc/<scene>_<bands>.png`` (every strategy's ROC on
one plot), ``gallery_<bands>.png`` (score maps beside the ground truth), and on request
a self-contained HTML report.
"""
from __future__ import annotations

import base64
import csv
import datetime
import glob
import html as _html
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import __version__
from .errors import Cancelled, FersError, InputError, ModelError, OutputError
from .feedback import Feedback
from .io import had100_scenes, load_ground_truth, open_source
from .io.atomic import atomic_path
from .io.paths import check_outputs
from .metrics import roc3d, roc_curve
from .pipeline import DETECTORS, STRATEGIES, resolve_strategy, score_scene
from .preprocess import scale_cube, select_bands

SCENE_EXTENSIONS = (".mat", ".npy", ".tif", ".tiff", ".img", ".dat", ".bsq", ".bil", ".bip", ".vrt", ".hdf", ".h5",
                    ".nc", ".jp2")
TRUTH_EXTENSIONS = (".tif", ".tiff", ".png", ".mat", ".npy", ".img", ".dat", ".vrt")
TRUTH_SUFFIXES = ("_gt", "-gt", "_mask", "-mask", "_groundtruth", "_truth")
CSV_COLUMNS = ("scene", "bands", "strategy", "resolved_strategy", "detector", "model", "auc", "seconds",
               "model_seconds", "detector_seconds", "status", "reason", "bands_requested", "scene_bands", "height",
               "width", "valid_pixels", "anomalies", "device", "source", "truth",
               "auc_dt", "auc_ft")  # 3D ROC (fers.metrics.roc3d): detectability, background suppression
NEEDS_SPE = ("spectral", "multiplicative", "additive")
NEEDS_SPA = ("spatial", "multiplicative", "additive")


@dataclass
class BenchScene:
    name: str
    path: str
    truth: Optional[str] = None  # separate ground-truth file; None = the one inside the data file
    origin: str = ""  # "file", "pair", "folder", "had100"


@dataclass
class BenchmarkResult:
    out_dir: str
    device: str
    rows: List[dict]
    summary: List[dict]
    scenes: List[BenchScene]
    skipped_scenes: List[dict]
    files: Dict[str, object]
    markdown: str
    seconds: float
    models: List[dict] = field(default_factory=list)

    def mean_auc(self, strategy: str, bands: int, detector: Optional[str] = None) -> Optional[float]:
        for s in self.summary:
            if s["strategy"] == strategy and s["bands_requested"] == bands and detector in (None, s["detector"]):
                return s["mean_auc"]
        return None


# ---------------------------------------------------------------- parsing helpers (shared by CLI and QGIS)

def parse_band_counts(values) -> List[int]:
    """'50,100,200', ['100', '200'] or [100] → [50, 100, 200] (0 = all bands of each scene)."""
    if isinstance(values, (int, np.integer)):
        values = [values]
    if isinstance(values, str):
        values = [values]
    out = []
    for v in values:
        for part in re.split(r"[,\s;]+", str(v).strip()):
            if not part:
                continue
            if not part.isdigit():
                raise InputError(f"'{part}' is not a band count (give numbers like 50,100,200; 0 = all bands; "
                                 "on the command line put the scenes before --bands)")
            n = int(part)
            if n not in out:
                out.append(n)
    if not out:
        raise InputError("no band count given (e.g. 100 or 50,100,200)")
    return out


def parse_names(values, allowed: Sequence[str], what: str) -> List[str]:
    """'none,spectral' or ['none', 'spectral'] → checked, de-duplicated list."""
    if isinstance(values, str):
        values = [values]
    out = []
    for v in values or []:
        for part in re.split(r"[,\s;]+", str(v).strip().lower()):
            if not part:
                continue
            if part not in allowed:
                raise InputError(f"unknown {what} '{part}' (choose from: {', '.join(allowed)})")
            if part not in out:
                out.append(part)
    if not out:
        raise InputError(f"no {what} given (choose from: {', '.join(allowed)})")
    return out


def parse_strategy_specs(values) -> List[str]:
    """Strategies, each optionally bound to a model: 'none,spectral@aviris_ng-100bands,additive@fers.pt'.

    A bare strategy uses the model given for its band count (--model); ``NAME@MODEL`` uses MODEL (a
    path, an authors' folder or a bundled name), so one run can compare models at the same band count.
    """
    if isinstance(values, str):
        values = [values]
    out = []
    for v in values or []:
        for part in re.split(r"[,\s;]+", str(v).strip()):
            if not part:
                continue
            name, at, model = part.partition("@")
            name = name.lower()
            if name not in STRATEGIES:
                raise InputError(f"unknown strategy '{name}' (choose from: {', '.join(STRATEGIES)}; "
                                 "optionally @MODEL)")
            if at and not model:
                raise InputError(f"'{part}': give a model after @")
            spec = f"{name}@{model}" if at else name
            if spec not in out:
                out.append(spec)
    if not out:
        raise InputError(f"no strategy given (choose from: {', '.join(STRATEGIES)})")
    return out


# ---------------------------------------------------------------- collecting scenes

def truth_beside(path: str) -> Optional[str]:
    """The ground-truth file that sits beside a scene by naming convention, or None."""
    folder, base = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(base)
    stems = [stem + s for s in TRUTH_SUFFIXES]
    m = re.match(r"^(.*?)(data|Data|DATA)(.+)$", stem)  # RCRD__dataPavia → RCRD__maskPavia
    if m:
        mask = {"data": "mask", "Data": "Mask", "DATA": "MASK"}[m.group(2)]
        stems += [m.group(1) + mask + m.group(3), m.group(1) + "gt" + m.group(3)]
    exts = [ext] + [e for e in TRUTH_EXTENSIONS if e != ext.lower()]
    for s in stems:
        for e in exts:
            p = os.path.join(folder, s + e)
            if os.path.isfile(p):
                return p
    split_dir, sensor = os.path.split(folder)  # one HAD100 cube: ROOT/test/<sensor>/NAME.npy
    if os.path.basename(split_dir) == "test":
        p = os.path.join(os.path.dirname(split_dir), "ground_truth", sensor, stem + ".png")
        if os.path.isfile(p):
            return p
    return None


def _looks_like_truth(path: str) -> bool:
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    return stem.endswith(TRUTH_SUFFIXES) or bool(re.match(r"^.*?mask[A-Z0-9]", os.path.basename(path)))


def _has_embedded_truth(path: str) -> bool:
    try:
        return open_source(path).ground_truth() is not None
    except FersError:
        return False


def _is_had100_root(folder: str) -> bool:
    return os.path.isdir(os.path.join(folder, "test")) and os.path.isdir(os.path.join(folder, "ground_truth"))


def collect_scenes(items: Sequence[str] = (), had100: Optional[str] = None, sensor: str = "aviris_ng",
                   feedback: Optional[Feedback] = None) -> tuple:
    """``(scenes, skipped)``: what to benchmark, and what a folder held that cannot be (with the reason).

    A file given explicitly without a ground truth is an error; inside a folder it is skipped.
    """
    feedback = feedback or Feedback()
    scenes: List[BenchScene] = []
    skipped: List[dict] = []

    def add_file(path: str, origin: str, truth: Optional[str] = None):
        path = os.path.abspath(path)
        if truth is None:
            truth = truth_beside(path)
        if truth is None and not (path.lower().endswith(".mat") and _has_embedded_truth(path)):
            reason = (f"no ground truth found for {os.path.basename(path)}: give it as SCENE=TRUTH, or put "
                      f"{os.path.splitext(os.path.basename(path))[0]}_gt.tif beside it")
            if origin == "file":
                raise InputError(reason)
            skipped.append({"scene": os.path.basename(path), "path": path, "reason": "no ground truth"})
            return
        scenes.append(BenchScene(os.path.splitext(os.path.basename(path))[0], path,
                                 os.path.abspath(truth) if truth else None, origin))

    def add_had100(root: str):
        for name, cube, gt in had100_scenes(root, sensor=sensor, split="test"):
            if gt is None:
                skipped.append({"scene": name, "path": cube, "reason": f"no ground_truth/{sensor}/{name}.png"})
            else:
                scenes.append(BenchScene(name, os.path.abspath(cube), os.path.abspath(gt), "had100"))

    items = [os.fspath(i) for i in items]
    # a ground-truth layer given next to its scene (QGIS layer lists) is not a scene
    given_truths = {os.path.abspath(t) for t in (truth_beside(i) for i in items if os.path.isfile(i)) if t}
    for item in items:
        if os.path.isfile(item) and os.path.abspath(item) in given_truths:
            feedback.info(f"{os.path.basename(item)} is the ground truth of another scene; not benchmarked itself")
            continue
        if "=" in item and not os.path.exists(item):
            data, truth = item.split("=", 1)
            for p, what in ((data, "scene"), (truth, "ground truth")):
                if not os.path.isfile(p):
                    raise InputError(f"{what} not found: {p} (in '{item}')")
            add_file(data, "pair", truth)
        elif os.path.isdir(item):
            if _is_had100_root(item):
                add_had100(item)
                continue
            files = sorted(p for p in glob.glob(os.path.join(item, "*"))
                           if os.path.isfile(p) and p.lower().endswith(SCENE_EXTENSIONS))
            truths = {os.path.abspath(t) for t in (truth_beside(p) for p in files) if t}
            data = [p for p in files if os.path.abspath(p) not in truths and not _looks_like_truth(p)]
            if not data:
                raise InputError(f"no scenes found in the folder {item} (.mat files with a ground-truth variable, "
                                 "rasters with a SCENE_gt raster beside them, or a HAD100 root)")
            for p in data:
                add_file(p, "folder")
        elif os.path.isfile(item):
            add_file(item, "file")
        else:
            raise InputError(f"scene not found: {item}")
    if had100:
        if not os.path.isdir(had100):
            raise InputError(f"HAD100 folder not found: {had100}")
        add_had100(had100)
    truths = {s.truth for s in scenes if s.truth}
    dropped = [s for s in scenes if s.path in truths]
    scenes = [s for s in scenes if s.path not in truths]
    for s in dropped:
        feedback.info(f"{os.path.basename(s.path)} is the ground truth of another scene; not benchmarked itself")
    # unique, file-name-safe scene names
    seen: Dict[str, int] = {}
    for s in scenes:
        base = re.sub(r"[^A-Za-z0-9._+-]+", "_", s.name) or "scene"
        k = seen.get(base, 0)
        seen[base] = k + 1
        s.name = base if k == 0 else f"{base}_{k + 1}"
    if not scenes:
        raise InputError("no scene with a ground truth to benchmark" +
                         (f" ({len(skipped)} skipped: {skipped[0]['reason']})" if skipped else ""))
    return scenes, skipped


def read_truth(scene: BenchScene, src) -> tuple:
    """(anomaly mask, valid) of a scene, checked against its size. Used for the AUC only."""
    if scene.truth:
        gt, gt_valid = load_ground_truth(scene.truth)
    else:
        raw = src.ground_truth()
        if raw is None:
            raise InputError(f"{scene.path} holds no ground-truth variable")
        raw = np.asarray(raw)
        gt = raw > 0
        gt_valid = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
    if gt.shape != (src.height, src.width):
        raise InputError(f"the ground truth of {scene.name} is {gt.shape[1]}×{gt.shape[0]} px but the scene is "
                         f"{src.width}×{src.height} px")
    return gt, gt_valid


# ---------------------------------------------------------------- models

def load_models(models: Sequence, device: str, feedback: Feedback) -> Dict[int, object]:
    """{band count: FersModel}; at most one model per band count."""
    from .pipeline import resolve_model

    by_bands: Dict[int, object] = {}
    for m in models or ():
        if m is None or m == "":
            continue
        mdl = resolve_model(m, device, feedback)
        if mdl.bands in by_bands:
            raise ModelError(f"two models for {mdl.bands} bands ({by_bands[mdl.bands].describe()} and "
                             f"{mdl.describe()}): give one model per band count")
        by_bands[mdl.bands] = mdl
    return by_bands


def _warm_up(model, bands: int, strategy: str, detector: str, device: str):
    """One small untimed run per path: first calls pay one-off costs (kernels, allocator, CUDA context)."""
    rng = np.random.default_rng(0)
    cube = rng.random((bands, 32, 32), dtype=np.float32) * 0.2 - 0.1
    try:
        score_scene(cube, np.ones((32, 32), bool), strategy, detector, model, device, Feedback())
    except FersError:
        pass


# ---------------------------------------------------------------- the run

class _Prefixed(Feedback):
    def __init__(self, parent: Feedback, prefix: str):
        self.parent, self.prefix = parent, prefix

    def progress(self, fraction, message=""):
        self.parent.progress(fraction, message)

    def info(self, message):
        self.parent.info(f"{self.prefix}: {message}")

    def warn(self, message):
        self.parent.warn(f"{self.prefix}: {message}")

    def cancelled(self):
        return self.parent.cancelled()


def _label(strategy: str, detector: str, detectors: Sequence[str]) -> str:
    return strategy if len(detectors) == 1 else f"{strategy} ({detector})"


def _bands_label(n: int) -> str:
    return "all" if n == 0 else str(n)


def run_benchmark(scenes: Sequence, out_dir: str, bands=(100,), strategies=("none",), detectors=("rx",),
                  models: Sequence = (), device: str = "auto", had100: Optional[str] = None,
                  sensor: str = "aviris_ng", plots: bool = True, gallery_max: int = 24, html: Optional[str] = None,
                  feedback: Optional[Feedback] = None, rx_trim: Optional[float] = 0.0) -> BenchmarkResult:
    """Benchmark every scene × band count × strategy × detector; write the results folder. See the module doc.

    ``rx_trim``: the RX trim of every run (fers.detect.rx); 0, the default, is the paper's plain RX, as its
    tables; None is what ``fers detect`` does (trimmed RX for the strategies with a model)."""
    from .detect.rx import check_trim

    from .device import resolve_device

    feedback = feedback or Feedback()
    t_start = time.perf_counter()
    if rx_trim is not None:
        check_trim(rx_trim)
    bands = parse_band_counts(bands)
    strategies = parse_strategy_specs(strategies)
    detectors = parse_names(detectors, DETECTORS, "detector")
    from .memory import limit_mb

    limit_mb()
    out_dir = os.path.abspath(os.path.expanduser(os.fspath(out_dir)))
    if html:
        html = os.path.abspath(os.path.expanduser(os.fspath(html)))
    if scenes and all(isinstance(s, BenchScene) for s in scenes):
        scene_list, skipped_scenes = list(scenes), []
    else:
        scene_list, skipped_scenes = collect_scenes(scenes, had100, sensor, feedback)
    check_benchmark_outputs(scene_list, models, strategies, bands, out_dir, html, plots, skipped_scenes)
    _prepare_folder(out_dir)
    if html:
        _prepare_folder(os.path.dirname(html), create=False)
    dev = resolve_device(device, feedback)
    feedback.info(f"{len(scene_list)} scene(s); bands {', '.join(map(_bands_label, bands))}; strategies "
                  f"{', '.join(strategies)}; detectors {', '.join(detectors)}; device {dev}; RX trim "
                  + ("auto" if rx_trim is None else f"{rx_trim:g}"))
    for s in skipped_scenes:
        feedback.warn(f"{s['scene']} skipped: {s['reason']}")
    by_bands = load_models(models, dev, feedback)
    for n, m in by_bands.items():
        if n not in bands and 0 not in bands:
            feedback.warn(f"model {m.describe()} fits none of the band counts asked for ({', '.join(map(str, bands))})")
    models_info = [{"path": m.source, "bands": n, "model": m.describe()} for n, m in sorted(by_bands.items())]
    from .pipeline import resolve_model

    bound = {}  # strategy spec NAME@MODEL → its model
    for st in strategies:
        if "@" in st:
            bound[st] = resolve_model(st.split("@", 1)[1], dev, feedback)
            models_info.append({"path": bound[st].source, "bands": bound[st].bands, "model": bound[st].describe(),
                                "strategy": st})
    warmed = set()

    total = max(1, len(scene_list) * len(bands) * len(strategies) * len(detectors))
    done = 0
    rows: List[dict] = []
    curves: Dict[tuple, list] = {}  # (scene, bands_requested) → [(label, fpr, tpr, auc)]
    gallery: Dict[int, list] = {}  # bands_requested → [(scene, gt, [(label, map, auc)])]

    for si, scene in enumerate(scene_list):
        sfb = _Prefixed(feedback, scene.name)
        base = {"scene": scene.name, "source": scene.path, "truth": scene.truth or "(in the data file)",
                "device": dev}
        try:
            feedback.check()
            src = open_source(scene.path)
            gt, gt_valid = read_truth(scene, src)
        except Cancelled:
            raise
        except FersError as e:
            sfb.warn(f"skipped: {e}")
            for n in bands:
                for st in strategies:
                    for det in detectors:
                        rows.append(_row(base, n, None, st, det, status="error", reason=str(e)))
            done += len(bands) * len(strategies) * len(detectors)
            continue
        base.update(scene_bands=src.band_count, height=src.height, width=src.width)
        for n in bands:
            units = len(strategies) * len(detectors)
            if n > src.band_count:
                reason = f"the scene has only {src.band_count} bands"
                rows += [_row(base, n, None, st, det, status="skipped", reason=reason)
                         for st in strategies for det in detectors]
                done += units
                continue
            idx = select_bands(src.band_count, n)
            count = len(idx)
            try:
                feedback.check()
                cube, valid = src.read(idx)
                cube, _ = scale_cube(cube, valid)
                aval = valid & gt_valid
                anomalies = int((gt & aval).sum())
                if anomalies == 0 or anomalies == int(aval.sum()):
                    raise InputError("the ground truth marks no anomalous pixel among the valid pixels"
                                     if anomalies == 0 else "the ground truth marks every valid pixel as anomalous")
            except Cancelled:
                raise
            except FersError as e:
                sfb.warn(f"{count} bands skipped: {e}")
                rows += [_row(base, n, count, st, det, status="error", reason=str(e))
                         for st in strategies for det in detectors]
                done += units
                continue
            maps = []
            for st in strategies:
                name = st.split("@", 1)[0]
                resolved = resolve_strategy(name, count)
                needs_model = resolved in NEEDS_SPE or resolved in NEEDS_SPA
                model = bound.get(st, by_bands.get(count))
                for det in detectors:
                    row = _row(base, n, count, st, det, resolved=resolved, valid_pixels=int(aval.sum()),
                               anomalies=anomalies)
                    run_fb = _Prefixed(feedback.sub(done / total, (done + 1) / total), scene.name)
                    feedback.progress(done / total, f"{scene.name}, {count} bands, {st}, {det}")
                    done += 1
                    if needs_model and model is None:
                        row.update(status="skipped", reason=f"no model for {count} bands (--model / MODEL)")
                    elif needs_model and model.bands != count:
                        row.update(status="skipped", reason=f"{model.describe()} is for {model.bands} bands")
                    elif needs_model and resolved in NEEDS_SPA and model.spa is None:
                        row.update(status="skipped", reason=f"{model.describe()} holds only the spectral branch "
                                                            f"(strategy {resolved} needs Spa-FEN)")
                    if row["status"] == "skipped":
                        rows.append(row)
                        continue
                    mdl = model if needs_model else None
                    key = (id(mdl), count, resolved, det)
                    if key not in warmed:
                        _warm_up(mdl, count, resolved, det, dev)
                        warmed.add(key)
                    try:
                        t0 = time.perf_counter()
                        scores, info = score_scene(cube, valid, name, det, mdl, dev, run_fb, rx_trim=rx_trim)
                        seconds = time.perf_counter() - t0
                        areas = roc3d(scores, gt, aval)
                        auc = areas["auc_df"]
                    except Cancelled:
                        raise
                    except FersError as e:
                        sfb.warn(f"{count} bands, {st}, {det}: {e}")
                        row.update(status="error", reason=str(e))
                        rows.append(row)
                        continue
                    row.update(status="ok", auc=auc, auc_dt=areas["auc_dt"], auc_ft=areas["auc_ft"],
                               seconds=seconds, model_seconds=info.get("model_seconds", 0.0),
                               detector_seconds=info.get("detector_seconds", 0.0),
                               model=os.path.basename(mdl.source.rstrip("/")) if mdl is not None else "")
                    rows.append(row)
                    label = _label(st, det, detectors)
                    if plots:
                        fpr, tpr, _ = roc_curve(scores, gt, aval)
                        curves.setdefault((scene.name, n), []).append((label, *_thin(fpr, tpr), auc))
                        if si < gallery_max:
                            maps.append((label, _small(scores), auc))
            if maps:
                truth_map = np.where(gt_valid, gt, np.nan).astype(np.float32)
                gallery.setdefault(n, []).append((scene.name, _small(truth_map), maps))
            ok = [r for r in rows if r["scene"] == scene.name and r["bands_requested"] == n and r["status"] == "ok"]
            if ok:
                feedback.info(f"{scene.name}, {count} bands: " + ", ".join(
                    f"{_label(r['strategy'], r['detector'], detectors)} AUC {r['auc']:.4f}" for r in ok))

    feedback.progress(1.0, "writing results")
    feedback.check()
    summary = _summary(rows, bands, strategies, detectors)
    meta = {"engine_version": __version__, "created": datetime.datetime.now().isoformat(timespec="seconds"),
            "device": dev, "bands": bands, "strategies": strategies, "detectors": detectors,
            "rx_trim": "auto" if rx_trim is None else rx_trim, "models": models_info,
            "scenes": len(scene_list), "seconds": time.perf_counter() - t_start}
    files: Dict[str, object] = {}
    if plots:
        os.makedirs(os.path.join(out_dir, "roc"), exist_ok=True)
        files["roc"] = []
        for (name, n), cs in curves.items():
            p = os.path.join(out_dir, "roc", f"{name}_{_bands_label(n)}.png")
            _save_fig(p, _roc_figure(cs, f"{name}, {_bands_label(n)} bands"))
            files["roc"].append(p)
        files["gallery"] = []
        for n, entries in gallery.items():
            p = os.path.join(out_dir, f"gallery_{_bands_label(n)}.png")
            note = f" (first {len(entries)} of {len(scene_list)} scenes)" if len(scene_list) > gallery_max else ""
            _save_fig(p, _gallery_figure(entries, f"{_bands_label(n)} bands{note}"))
            files["gallery"].append(p)
    markdown = _markdown(rows, summary, meta, skipped_scenes, detectors)
    files["csv"] = _write_text(os.path.join(out_dir, "results.csv"), _csv(rows))
    files["markdown"] = _write_text(os.path.join(out_dir, "results.md"), markdown)
    files["json"] = os.path.join(out_dir, "results.json")
    result = BenchmarkResult(out_dir, dev, rows, summary, scene_list, skipped_scenes, files, markdown,
                             time.perf_counter() - t_start, models_info)
    if html:
        files["html"] = write_html(html, result, meta)
    _write_text(files["json"], json.dumps({"meta": meta, "summary": summary, "rows": rows,
                                           "scenes": [s.__dict__ for s in scene_list],
                                           "skipped_scenes": skipped_scenes, "files": files},
                                          indent=1, default=_json_default))
    return result


def check_benchmark_outputs(scene_list, models, strategies, bands, out_dir: str, html: Optional[str],
                            plots: bool = True, skipped_scenes=()) -> None:
    """Before anything is read or written: no file the benchmark writes (results.*, roc/*.png, gallery_*.png in
    ``out_dir``, the HTML report) is a scene, a ground truth or a model, by any spelling, nor are two of them
    one file (``fers.io.paths.check_outputs``)."""
    inputs = [(f"the scene {s.name}", s.path) for s in scene_list]
    inputs += [(f"the ground truth of {s.name}", s.truth) for s in scene_list if s.truth]
    inputs += [(f"the scene {s['scene']}", s["path"]) for s in skipped_scenes or () if s.get("path")]
    inputs += [("the model", m) for m in models or () if isinstance(m, str) and m]
    inputs += [("the model", st.split("@", 1)[1]) for st in strategies if "@" in st]
    outputs = [(f"the results file {name}", os.path.join(out_dir, name))
               for name in ("results.csv", "results.md", "results.json")]
    if plots:
        outputs += [("a ROC plot", os.path.join(out_dir, "roc", f"{s.name}_{_bands_label(n)}.png"))
                    for s in scene_list for n in bands]
        outputs += [("a gallery", os.path.join(out_dir, f"gallery_{_bands_label(n)}.png")) for n in bands]
    if html:
        outputs.append(("the HTML report", html))
    check_outputs(inputs, list(dict.fromkeys(outputs)))


def _row(base: dict, n: int, count: Optional[int], strategy: str, detector: str, status: str = "",
         reason: str = "", resolved: str = "", **extra) -> dict:
    row = {c: "" for c in CSV_COLUMNS}
    row.update(base)
    row.update(bands=count if count is not None else (n or ""), bands_requested=n, strategy=strategy,
               resolved_strategy=resolved, detector=detector, status=status, reason=reason, auc=None, auc_dt=None,
               auc_ft=None, seconds=None,
               model_seconds=None, detector_seconds=None, model="", **extra)
    return row


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


def _summary(rows, bands, strategies, detectors) -> List[dict]:
    out = []
    for n in bands:
        for st in strategies:
            for det in detectors:
                ok = [r for r in rows if r["bands_requested"] == n and r["strategy"] == st and r["detector"] == det
                      and r["status"] == "ok"]
                skipped = sum(1 for r in rows if r["bands_requested"] == n and r["strategy"] == st
                              and r["detector"] == det and r["status"] != "ok")
                mean = lambda k: float(np.mean([r[k] for r in ok])) if ok else None  # noqa: E731
                resolved = sorted({r["resolved_strategy"] for r in ok}) or (
                    [resolve_strategy(st.split("@", 1)[0], n)] if n else [])
                out.append({"bands_requested": n, "strategy": st, "resolved_strategy": "/".join(resolved),
                            "detector": det, "scenes": len(ok),
                            "not_run": skipped, "mean_auc": mean("auc"), "mean_seconds": mean("seconds"),
                            "mean_model_seconds": mean("model_seconds"),
                            "mean_detector_seconds": mean("detector_seconds")})
    return out


# ---------------------------------------------------------------- writing

def _prepare_folder(folder: str, create: bool = True):
    if create:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create the results folder {folder} ({e.strerror})") from None
    if not os.path.isdir(folder):
        raise OutputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")


def _write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return path


def _fmt(v, digits=4):
    return "" if v is None or v == "" else f"{v:.{digits}f}"


def _csv(rows) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        r2 = dict(r)
        for k in ("auc", "auc_dt", "auc_ft"):
            r2[k] = "" if r[k] is None else f"{r[k]:.6f}"
        for k in ("seconds", "model_seconds", "detector_seconds"):
            r2[k] = "" if r[k] is None else f"{r[k]:.4f}"
        w.writerow(r2)
    return buf.getvalue()


def _per_scene_table(rows, detectors) -> tuple:
    """(header, body rows) of the per-scene AUC table, one line per scene × band count."""
    labels, keys = [], []
    for r in rows:
        lab = _label(r["strategy"], r["detector"], detectors)
        if lab not in labels:
            labels.append(lab)
    for r in rows:
        k = (r["scene"], r["bands_requested"])
        if k not in keys:
            keys.append(k)
    body = []
    for scene, n in keys:
        rs = [r for r in rows if r["scene"] == scene and r["bands_requested"] == n]
        if all(r["status"] != "ok" for r in rs):
            continue
        cells = []
        for lab in labels:
            hit = [r for r in rs if _label(r["strategy"], r["detector"], detectors) == lab]
            cells.append(_fmt(hit[0]["auc"]) if hit and hit[0]["status"] == "ok" else "—")
        body.append([scene, str(rs[0]["bands"] or _bands_label(n))] + cells)
    return ["scene", "bands"] + labels, body


def _md_table(header, body) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(map(str, b)) + " |" for b in body]
    return "\n".join(lines)


def _summary_table(summary, detectors) -> tuple:
    header = ["strategy", "bands", "scenes", "mean AUC", "mean s", "mean model s", "mean detector s"]
    body = [[_label(s["strategy"], s["detector"], detectors) + (
                f" → {s['resolved_strategy']}" if s["resolved_strategy"] not in ("", s["strategy"]) else ""),
             _bands_label(s["bands_requested"]),
             f"{s['scenes']}" + (f" ({s['not_run']} not run)" if s["not_run"] else ""),
             _fmt(s["mean_auc"]), _fmt(s["mean_seconds"], 3), _fmt(s["mean_model_seconds"], 3),
             _fmt(s["mean_detector_seconds"], 3)] for s in summary]
    return header, body


def _not_run(rows, skipped_scenes) -> List[str]:
    seen, out = set(), []
    for r in rows:
        if r["status"] in ("skipped", "error"):
            k = (r["scene"], r["bands_requested"], r["reason"])
            if k not in seen:
                seen.add(k)
                what = sorted({x["strategy"] for x in rows if (x["scene"], x["bands_requested"], x["reason"]) == k})
                out.append(f"{r['scene']}, {_bands_label(r['bands_requested'])} bands ({', '.join(what)}): {r['reason']}")
    out += [f"{s['scene']}: {s['reason']}" for s in skipped_scenes]
    return out


def _markdown(rows, summary, meta, skipped_scenes, detectors) -> str:
    models = "; ".join(f"{m['model']}" for m in meta["models"]) or "none"
    parts = [
        "# FERS benchmark",
        "",
        f"{meta['scenes']} scene(s); bands {', '.join(map(_bands_label, meta['bands']))}; device {meta['device']}; "
        f"models: {models}; RX trim {meta['rx_trim']} (0 = the paper's plain RX); engine {meta['engine_version']}; "
        f"{meta['created']}. AUC over valid pixels; seconds = "
        "feature enhancement + detector + fusion per scene (reading and scaling excluded).",
        "",
        "## Mean AUC",
        "",
        _md_table(*_summary_table(summary, detectors)),
        "",
        "## Per scene (ROC AUC)",
        "",
        _md_table(*_per_scene_table(rows, detectors)),
    ]
    nr = _not_run(rows, skipped_scenes)
    if nr:
        parts += ["", "## Not run", ""] + [f"- {x}" for x in nr]
    return "\n".join(parts) + "\n"


def _thin(fpr, tpr, n=2000):
    if fpr.size <= n:
        return fpr, tpr
    keep = np.unique(np.r_[np.linspace(0, fpr.size - 1, n).astype(int), fpr.size - 1])
    return fpr[keep], tpr[keep]


def _small(a: np.ndarray, side: int = 256) -> np.ndarray:
    step = max(1, int(np.ceil(max(a.shape) / side)))
    return np.array(a[::step, ::step], dtype=np.float32)


def _figure(w, h, dpi=100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=dpi)
    FigureCanvasAgg(fig)  # no pyplot: the global backend (QGIS's Qt) is left alone
    return fig


def _save_fig(path: str, fig) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _roc_figure(curves, title):
    from .report import plain_text

    with plain_text():
        fig = _figure(5.5, 5)
        ax = fig.add_subplot(111)
        for label, fpr, tpr, auc in curves:
            ax.plot(fpr, tpr, lw=1.8, label=f"{label}  AUC {auc:.4f}")
        ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
        ax.set(xlabel="false-alarm rate", ylabel="detection rate", xlim=(0, 1), ylim=(0, 1.01), title=title)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        return fig


def _gallery_figure(entries, title):
    from .report import plain_text

    with plain_text():
        import matplotlib

        labels = []
        for _, _, maps in entries:
            for lab, _, _ in maps:
                if lab not in labels:
                    labels.append(lab)
        cols, rws = 1 + len(labels), len(entries)
        fig = _figure(1.9 * cols, 1.9 * rws + 0.5, dpi=80)
        cmap = matplotlib.colormaps["inferno"].copy()
        cmap.set_bad("0.6")
        for i, (scene, gt, maps) in enumerate(entries):
            lookup = {lab: (m, auc) for lab, m, auc in maps}
            for j, lab in enumerate(["ground truth"] + labels):
                ax = fig.add_subplot(rws, cols, i * cols + j + 1)
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.imshow(np.ma.masked_invalid(gt), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                    ax.set_ylabel(scene, fontsize=7)
                    ax.set_title("ground truth", fontsize=7)
                    continue
                if lab not in lookup:
                    ax.set_axis_off()
                    continue
                m, auc = lookup[lab]
                fin = m[np.isfinite(m)]
                lo, hi = (np.percentile(fin, 1), np.percentile(fin, 99.5)) if fin.size else (0, 1)
                ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1,
                          interpolation="nearest")
                ax.set_title(f"{lab}\nAUC {auc:.4f}", fontsize=7)
        fig.suptitle(f"score maps, {title}", fontsize=9)
        fig.tight_layout()
        return fig


def _png_data_uri(path: str) -> str:
    with open(path, "rb") as fh:
        return "data:image/png;base64," + base64.b64encode(fh.read()).decode("ascii")


def _html_table(header, body) -> str:
    e = _html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in b) + "</tr>" for b in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def write_html(path: str, result: BenchmarkResult, meta: dict) -> str:
    """A self-contained report page: tables and every PNG embedded (data URIs)."""
    e = _html.escape
    dets = meta["detectors"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>FERS benchmark</title>",
             "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}th{background:#eee}"
             "td:first-child{text-align:left}img{max-width:100%}</style></head><body>",
             "<h2>FERS benchmark</h2>",
             f"<p>{meta['scenes']} scene(s); bands {e(', '.join(map(_bands_label, meta['bands'])))}; device "
             f"{e(meta['device'])}; models: {e('; '.join(m['model'] for m in meta['models']) or 'none')}; engine "
             f"{e(meta['engine_version'])}; {e(meta['created'])}.<br>Results folder: <code>{e(result.out_dir)}</code> "
             "(results.csv, results.md, results.json).</p>",
             "<h3>Mean AUC</h3>", _html_table(*_summary_table(result.summary, dets)),
             "<h3>Per scene (ROC AUC)</h3>", _html_table(*_per_scene_table(result.rows, dets))]
    nr = _not_run(result.rows, result.skipped_scenes)
    if nr:
        parts += ["<h3>Not run</h3><ul>"] + [f"<li>{e(x)}</li>" for x in nr] + ["</ul>"]
    for p in result.files.get("gallery", []):
        parts.append(f"<h3>{e(os.path.basename(p))}</h3><img src='{_png_data_uri(p)}' alt='{e(os.path.basename(p))}'>")
    if result.files.get("roc"):
        parts.append("<h3>ROC curves</h3><div>")
        parts += [f"<img style='width:420px' src='{_png_data_uri(p)}' alt='{e(os.path.basename(p))}'>"
                  for p in result.files["roc"]]
        parts.append("</div>")
    parts.append("</body></html>\n")
    return _write_text(path, "\n".join(parts))
