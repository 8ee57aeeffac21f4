"""detect / evaluate: the functions the CLI and every Processing algorithm call.

``score_scene`` is the in-memory core (cube in, score map out) used by the
benchmarks too; ``detect`` wraps it with reading, band selection and writing.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from . import __version__
from .device import full_fp32, resolve_device
from .errors import InputError, ModelError
from .feedback import Feedback
from .io import Georef, check_output_path, load_ground_truth, open_source, write_raster
from .io.raster import extent_window, window_georef
from .io.source import require_valid
from .memory import check_fits
from .preprocess import BandList, band_ranges, scale_cube, select_bands
from .wavelengths import BandPlan, plan_bands

STRATEGIES = ("none", "spectral", "spatial", "multiplicative", "additive", "auto")
DETECTORS = ("rx", "ae")
DEFAULT_NODATA = -9999.0  # scores are ≥ 0, so a negative nodata never collides with one


@dataclass
class DetectResult:
    output: Optional[str]
    scores: np.ndarray  # (H, W) float32, NaN where invalid
    valid: np.ndarray
    bands: list  # 0-based indices used
    strategy: str
    detector: str
    device: str
    seconds: float
    info: dict = field(default_factory=dict)
    georef: Optional[Georef] = None  # of the map: the input's, or its window's when an extent was given


def output_nodata(input_nodata: Optional[float]) -> float:
    if input_nodata is not None and (np.isnan(input_nodata) or input_nodata < 0):
        return float(input_nodata)
    return DEFAULT_NODATA


def resolve_strategy(strategy: str, bands: int) -> str:
    """'auto' follows the paper: fusion A for ≤ 50 bands, else B (SPEC §3)."""
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy '{strategy}' (choose one of: {', '.join(STRATEGIES)})")
    if strategy == "auto":
        return "multiplicative" if bands <= 50 else "additive"
    return strategy


def resolve_rx_trim(rx_trim: Optional[float], strategy: str) -> float:
    """None ('auto'): the trimmed RX of fers.detect.rx (DEFAULT_TRIM) for the strategies that enhance the
    cube, the SPEC's plain RX for 'none', the baseline they are compared with."""
    from .detect.rx import DEFAULT_TRIM, check_trim

    if rx_trim is None:
        return 0.0 if strategy == "none" else DEFAULT_TRIM
    return check_trim(rx_trim)


def _minmax(s: np.ndarray) -> np.ndarray:
    lo, hi = np.nanmin(s), np.nanmax(s)
    return (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)


@full_fp32
def enhance_features(cube: np.ndarray, model, need_spe: bool, need_spa: bool, device: str,
                     tile: Optional[int] = None) -> tuple:
    """(F_spe, F_spa) as (B, H, W) float32 arrays (None where not needed). For fers:enhance and tests;
    detection builds its enhanced cubes in place (``enhanced_cube``)."""
    import torch

    with torch.inference_mode():
        h = torch.from_numpy(cube).to(device)
        f_spe = _spe_into(model, h, torch.zeros_like(h), tile).cpu().numpy() if need_spe else None
        f_spa = model.spa(h[None])[0].cpu().numpy() if need_spa else None
    return f_spe, f_spa


def _spe_into(model, h, buf, tile: Optional[int], feedback: Optional[Feedback] = None):
    """buf += F_spe(h), by tiles (seamless: ``fers.tiling``)."""
    from .tiling import spe_tile_size, spefen_tiled

    tile = tile or spe_tile_size(h.shape[0], device=str(h.device))
    return spefen_tiled(model.spe, h, tile, add_to=buf, feedback=feedback)


@full_fp32
def enhanced_cube(h, model, with_spe: bool, with_spa: bool, tile: Optional[int] = None, buf=None,
                  feedback: Optional[Feedback] = None):
    """H (+ F_spe) (+ F_spa) as a new (B, H, W) tensor (or written into ``buf``), ``h`` left untouched.

    At most one cube-sized tensor besides ``h`` is alive: F_spa is computed whole (the Spa-FEN is global)
    and H is added into it; F_spe is added tile by tile.
    """
    if with_spa:
        f = model.spa(h[None])[0]
        if buf is None:
            buf = f
        else:
            buf.copy_(f)
            del f
        buf += h
    elif buf is None:
        buf = h.clone()
    else:
        buf.copy_(h)
    if with_spe:
        _spe_into(model, h, buf, tile, feedback)
    return buf


@full_fp32
def score_scene(cube: np.ndarray, valid: np.ndarray, strategy: str = "none", detector: str = "rx",
                model=None, device: str = "cpu", feedback: Optional[Feedback] = None, seed: int = 0,
                tile: Optional[int] = None, rx_trim: Optional[float] = None) -> tuple:
    """Score a preprocessed (B, H, W) cube (left unchanged). Returns (scores (H, W) float32 with NaN at
    invalid pixels, info).

    ``detector`` 'rx' is the global RX of SPEC §3; 'ae' the per-scene autoencoder, which replaces RX
    wherever the strategy calls for it (fusion A scores both enhanced cubes with it). ``tile``: side of
    the Spe-FEN tiles (default: from a 1 GB working-memory budget; the map does not depend on it).
    ``rx_trim``: share of the highest first-pass scores left out of RX's background statistics
    (fers.detect.rx; 0 = the SPEC's plain RX; None = ``resolve_rx_trim``: 0.01 when the strategy
    enhances the cube, 0 for 'none').
    Memory: the cube plus one enhanced cube of the same size, plus a tile's activations.
    """
    import torch

    from .detect.ae import ae_scores
    from .detect.rx import rx

    feedback = feedback or Feedback()
    strategy = resolve_strategy(strategy, cube.shape[0])
    rx_trim = resolve_rx_trim(rx_trim, strategy)
    if detector not in DETECTORS:
        raise InputError(f"unknown detector '{detector}' (choose one of: {', '.join(DETECTORS)})")
    need_spe = strategy in ("spectral", "multiplicative", "additive")
    need_spa = strategy in ("spatial", "multiplicative", "additive")
    info = {"strategy": strategy, "model_seconds": 0.0}
    if detector == "rx":
        info["rx_trim"] = rx_trim
    if need_spe or need_spa:
        if model is None:
            raise ModelError(f"strategy '{strategy}' needs a model (MODEL / --model): a FERS checkpoint "
                             "or the authors' checkpoint folder")
        if need_spa and model.spa is None:
            raise ModelError(f"strategy '{strategy}' needs the spatial branch (Spa-FEN), but {model.describe()} "
                             "holds only the spectral branch: use strategy 'spectral', or a stage-2 model")
        if model.bands != cube.shape[0]:
            raise ModelError(f"the model {model.describe()} was trained on {model.bands} bands, but "
                             f"{cube.shape[0]} are selected: use BANDS={model.bands} (or 0 to let the model decide)")
    # (with F_spe, with F_spa) of each cube the detector scores; fusion A scores two and multiplies
    parts = {"none": [(False, False)], "spectral": [(True, False)], "spatial": [(False, True)],
             "additive": [(True, True)], "multiplicative": [(False, True), (True, False)]}[strategy]
    enhancing = need_spe or need_spa
    maps, buf, seconds = [], None, {"model": 0.0, "detector": 0.0}
    h = torch.from_numpy(cube).to(device) if enhancing else None
    for i, (with_spe, with_spa) in enumerate(parts):
        lo, hi = i / len(parts), (i + 1) / len(parts)
        feedback.check()
        if enhancing:
            t0 = time.perf_counter()
            with torch.inference_mode():  # not around the detector: the AE trains
                buf = enhanced_cube(h, model, with_spe, with_spa, tile, buf, feedback.sub(lo, lo + (hi - lo) * 0.5))
                x = buf.cpu().numpy() if buf.device.type != "cpu" else buf.numpy()
            seconds["model"] += time.perf_counter() - t0
        else:
            x = cube
        t0 = time.perf_counter()
        sub = feedback.sub(lo + (hi - lo) * (0.5 if enhancing else 0.0), hi)
        if detector == "ae":
            maps.append(ae_scores(x, valid, seed=seed, device=device, feedback=sub))
        else:
            s, rxm = rx(x, valid, device=device, feedback=sub, trim=rx_trim)
            info.update(rx_rank=rxm.rank, rx_condition=rxm.condition)
            maps.append(s)
        seconds["detector"] += time.perf_counter() - t0
    del buf
    scores = maps[0] if len(maps) == 1 else (_minmax(maps[0]) * _minmax(maps[1])).astype(np.float32)
    info.update(valid_pixels=int(valid.sum()), model_seconds=seconds["model"], detector_seconds=seconds["detector"])
    return scores, info


def resolve_model(model, device: str, feedback: Feedback):
    """A FersModel from a path (or pass one through), moved to the device."""
    if model is None or model == "":
        return None
    if isinstance(model, str):
        from .checkpoint import load_model

        model = load_model(model)
        feedback.info(f"model: {model.describe()}")
    return model.to(device)


def read_scene(src, plan: BandPlan, extent, job: str, feedback: Feedback) -> tuple:
    """(cube, valid, georef) as ``plan`` reads ``src``, the way detect and enhance read: only the window an
    ``extent`` (xmin, ymin, xmax, ymax in the raster's CRS) touches, said in the log; refused beforehand if
    the cube would not fit in memory as ``job`` (``fers.memory``); a read with no valid pixel diagnosed
    (``require_valid``)."""
    window = None
    if extent is not None:
        window = extent_window(src.georef, (src.width, src.height), extent, os.path.basename(src.path))
        x0, y0, w, h = window
        feedback.info(f"extent: columns {x0 + 1}–{x0 + w}, rows {y0 + 1}–{y0 + h} ({w}×{h} of the raster's "
                      f"{src.width}×{src.height} px)")
    width, height = window[2:] if window else (src.width, src.height)
    check_fits(max(len(plan.indices), plan.band_count), height, width, job, feedback)
    cube, valid = plan.read(src, window)
    require_valid(src, plan.indices, valid, window)
    return cube, valid, window_georef(src.georef, window)


def resolve_band_list(bands, src, feedback: Feedback):
    """A band list's wavelength items as bands of ``src`` (``preprocess.BandList``), said in the log."""
    if not isinstance(bands, BandList):
        return bands
    idx = bands.resolve(src.wavelengths, src.band_count)
    feedback.info(f"band list '{bands.text}': bands {band_ranges(idx)} of the raster ({len(idx)})")
    return idx


def default_model(bands, raster_bands: int, feedback: Feedback) -> str:
    """The bundled model for a strategy that needs one when none is given: the one whose band count is
    the number of bands asked for (BANDS=N or a band list); with BANDS=0, the largest the raster can feed."""
    from .bundled import list_models, model_bands

    found = {}
    for m in list_models():
        found.setdefault(model_bands(m.path), m)
    counts = sorted(b for b in found if b)
    if isinstance(bands, (int, np.integer)) and int(bands) == 0:
        fits = [b for b in counts if b <= raster_bands]
        want = fits[-1] if fits else None
    else:
        want = int(bands) if isinstance(bands, (int, np.integer)) else len(list(bands))
    if want not in found:
        have = ", ".join(f"{b} bands ({found[b].name})" for b in counts) or "none installed"
        raise ModelError(f"no bundled model for {want if want else 'this raster'}"
                         f"{' bands' if want else ''} (bundled: {have}); set BANDS / --bands to one of those, "
                         "or give MODEL / --model")
    feedback.info(f"no model given: using the bundled model {found[want].name} ({want} bands)")
    return found[want].path


def detect(input: str, output: Optional[str], bands: Union[int, Sequence[int], None] = 0, strategy: str = "none",
           detector: str = "rx", model: Optional[str] = None, device: str = "auto", variable: Optional[str] = None,
           feedback: Optional[Feedback] = None, band_match: str = "auto", tile_size: int = 0,
           memory_mb: float = 0, rx_trim: Optional[float] = None, nodata=None,
           file_nodata: bool = True, extent=None) -> DetectResult:
    """Anomaly map of a raster. ``bands``: N = first N bands (0 = all) or a list of 0-based indices.

    ``nodata``: values or (lo, hi) ranges that are no data too, beyond the file's own (a zero-filled border
    with no nodata tag; QGIS's "additional no data values"): such pixels leave every statistic, as the file's.
    ``file_nodata`` False: the file's own nodata value is data (a wrong tag; QGIS's unticked "No data value").
    ``extent``: (xmin, ymin, xmax, ymax) in the raster's CRS: only the pixels it touches are read, scored and
    written (the background statistics are then the extent's), on the same grid.

    ``tile_size``: side of the spectral-branch tiles in pixels (0 = chosen from ``memory_mb``, the working
    memory allowed for one tile, default 1024 MB, and on a CPU at most 128 px, its fastest); the map does
    not depend on it.

    ``rx_trim``: see ``score_scene`` (None: trimmed RX for the enhanced strategies, plain for 'none').

    With ``output`` None nothing is written (the map is returned).
    """
    from .tiling import DEFAULT_MEMORY_MB, MIN_TILE, spe_tile_size

    feedback = feedback or Feedback()
    t0 = time.perf_counter()
    if tile_size and tile_size < MIN_TILE:
        raise InputError(f"TILE_SIZE must be 0 (automatic) or at least {MIN_TILE} px, got {tile_size}")
    if rx_trim is not None:
        from .detect.rx import check_trim

        check_trim(rx_trim)  # before any reading
    if memory_mb and memory_mb < 16:
        raise InputError(f"the memory budget must be at least 16 MB, got {memory_mb:g}")
    if output is not None:
        output = check_output_path(output, [input])
    dev = resolve_device(device, feedback)
    src = open_source(input, variable, nodata, file_nodata)
    bands = resolve_band_list(bands, src, feedback)
    if not model and strategy != "none":
        model = default_model(bands, src.band_count, feedback)
    mdl = resolve_model(model, dev, feedback)
    # a model fixes its bands: BANDS=0 means "what the model needs", matched by wavelength when both sides
    # know theirs (fers.wavelengths: nearest centre, or resampling when the sensor differs), else by position
    plan = plan_bands(src, mdl, bands, band_match, feedback)
    idx = plan.indices
    feedback.info(f"input {src.describe()}; using {len(idx)} band(s); strategy {strategy}, detector {detector}, device {dev}")
    feedback.check()
    heavy = (mdl is not None and strategy != "none") or detector == "ae"
    cube, valid, georef = read_scene(src, plan, extent, "networks" if heavy else "rx", feedback)
    feedback.progress(0.1, "read")
    n_invalid = int((~valid).sum())
    if n_invalid:
        feedback.info(f"{n_invalid} nodata/NaN/Inf pixel(s) excluded from every statistic and left as nodata")
    cube, minmax = scale_cube(cube, valid)
    tile = int(tile_size) or spe_tile_size(cube.shape[0], memory_mb or DEFAULT_MEMORY_MB, dev)
    scores, info = score_scene(cube, valid, strategy, detector, mdl, dev, feedback.sub(0.1, 0.95), tile=tile,
                               rx_trim=rx_trim)
    if mdl is not None:
        info["tile_size"] = tile
    strategy = info["strategy"]
    info.update(scale_min=minmax[0], scale_max=minmax[1], band_match=plan.mode)
    if output is not None:
        feedback.check()
        nodata = output_nodata(src.nodata)
        if not georef.known:
            feedback.warn(f"{os.path.basename(input)} carries no georeferencing; the map is a plain pixel grid")
        band_name = f"anomaly score ({strategy}, {detector_label(detector, info)})"
        meta = {"FERS_VERSION": __version__, "FERS_STRATEGY": strategy, "FERS_DETECTOR": detector,
                "FERS_BANDS": band_ranges(idx), "FERS_SOURCE": os.path.basename(input),
                "FERS_MODEL": mdl.source if mdl is not None else ""}
        if "rx_trim" in info:
            meta["FERS_RX_TRIM"] = f"{info['rx_trim']:g}"
        write_raster(output, [np.where(valid, scores, nodata)], georef, nodata, [band_name], meta,
                     feedback=feedback)
    feedback.progress(1.0, "done")
    return DetectResult(output, scores, valid, idx, strategy, detector, dev, time.perf_counter() - t0, info,
                        georef)


def detector_label(detector: str, info: dict) -> str:
    """'rx', 'rx trimmed 0.01' or 'ae': what scored the map, for band names and messages."""
    trim = info.get("rx_trim", 0.0) if detector == "rx" else 0.0
    return f"{detector} trimmed {trim:g}" if trim else detector


@dataclass
class EvalResult:
    auc: float
    valid_pixels: int
    anomalies: int
    roc: Optional[str] = None
    roc3d: dict = field(default_factory=dict)  # fers.metrics.roc3d: AUC(D,τ), AUC(F,τ) and their combinations


def read_score_map(path: str) -> tuple:
    if path.lower().endswith(".npy"):
        s = np.load(path, allow_pickle=False).astype(np.float32)
        if s.ndim != 2:
            raise InputError(f"{path}: a score map must be 2-D, got shape {s.shape}")
        return s, np.isfinite(s)
    src = open_source(path)
    if src.band_count != 1:
        raise InputError(f"{path} has {src.band_count} bands; a score map has one")
    cube, valid = src.read([0])
    return cube[0], valid


def evaluate(score: str, ground_truth: str, roc: Optional[str] = None, gt_variable: Optional[str] = None,
             feedback: Optional[Feedback] = None) -> EvalResult:
    """ROC AUC of a score map against a binary ground truth, over valid pixels (SPEC §4)."""
    from .metrics import roc3d, roc_curve
    from .report import write_roc

    feedback = feedback or Feedback()
    s, s_valid = read_score_map(score)
    gt, gt_valid = load_ground_truth(ground_truth, gt_variable)
    if gt.shape != s.shape:
        raise InputError(f"the score map is {s.shape[1]}×{s.shape[0]} px but the ground truth is "
                         f"{gt.shape[1]}×{gt.shape[0]} px")
    valid = s_valid & gt_valid
    areas = roc3d(s, gt, valid)
    auc = areas["auc_df"]
    res = EvalResult(auc, int(valid.sum()), int((gt & valid).sum()), roc3d=areas)
    feedback.info(f"ROC AUC {auc:.4f} over {res.valid_pixels} valid pixels ({res.anomalies} anomalous); 3D ROC: "
                  f"AUC(D,τ) {areas['auc_dt']:.4f}, AUC(F,τ) {areas['auc_ft']:.4f}, "
                  f"AUC_OD {areas['auc_od']:.4f}, AUC_SNPR {areas['auc_snpr']:.2f}")
    if roc:
        fpr, tpr, _ = roc_curve(s, gt, valid)
        res.roc = write_roc(roc, fpr, tpr, auc, title=os.path.basename(score))
    return res
