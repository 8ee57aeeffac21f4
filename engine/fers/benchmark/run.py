"""Benchmark run loop: the paper's evaluation protocol (SPEC §4) over many scenes in one call.

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

import datetime
import json
import os
import re
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import __version__
from ..errors import Cancelled, FersError, InputError, ModelError, OutputError
from ..feedback import Feedback
from ..io import open_source
from ..io.paths import check_outputs
from ..metrics import roc3d, roc_curve
from ..pipeline import DETECTORS, STRATEGIES, resolve_strategy, score_scene
from ..preprocess import scale_cube, select_bands
from .scenes import BenchScene, collect_scenes, read_truth
from .tables import CSV_COLUMNS, BenchmarkResult, _bands_label, _csv, _label, _markdown, _summary, _write_text
from .figures import _gallery_figure, _roc_figure, _save_fig, _small, _thin, write_html


NEEDS_SPE = ("spectral", "multiplicative", "additive")
NEEDS_SPA = ("spatial", "multiplicative", "additive")


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

def load_models(models: Sequence, device: str, feedback: Feedback) -> Dict[int, object]:
    """{band count: FersModel}; at most one model per band count."""
    from ..pipeline import resolve_model

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


def run_benchmark(scenes: Sequence, out_dir: str, bands=(100,), strategies=("none",), detectors=("rx",),
                  models: Sequence = (), device: str = "auto", had100: Optional[str] = None,
                  sensor: str = "aviris_ng", plots: bool = True, gallery_max: int = 24, html: Optional[str] = None,
                  feedback: Optional[Feedback] = None, rx_trim: Optional[float] = 0.0) -> BenchmarkResult:
    """Benchmark every scene × band count × strategy × detector; write the results folder. See the module doc.

    ``rx_trim``: the RX trim of every run (fers.detect.rx); 0, the default, is the paper's plain RX, as its
    tables; None is what ``fers detect`` does (trimmed RX for the strategies with a model)."""
    from ..detect.rx import check_trim

    from ..device import resolve_device

    feedback = feedback or Feedback()
    t_start = time.perf_counter()
    if rx_trim is not None:
        check_trim(rx_trim)
    bands = parse_band_counts(bands)
    strategies = parse_strategy_specs(strategies)
    detectors = parse_names(detectors, DETECTORS, "detector")
    from ..memory import limit_mb

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
    from ..pipeline import resolve_model

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
