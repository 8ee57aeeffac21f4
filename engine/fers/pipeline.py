"""detect / evaluate: the functions the CLI and every Processing algorithm call.

``score_scene`` is the in-memory core (cube in, score map out) used by the
benchmarks too; ``detect`` wraps it with reading, band selection and writing.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from . import __version__
from .detect import working_bytes
from .device import full_fp32, resolve_device
from .errors import InputError, ModelError
from .feedback import Feedback
from .io import Georef, check_output_path, load_ground_truth, open_source, write_raster
from .io.paths import check_outputs
from .io.raster import extent_window, window_georef
from .io.source import nodata_ranges, require_valid
from .memory import check_fits
from .params import extent as check_extent, number, thresholds
from .preprocess import BandList, band_ranges, scale_cube, select_bands
from .wavelengths import BandPlan, plan_bands

STRATEGIES = ("none", "spectral", "spatial", "multiplicative", "additive", "auto")
# rx: the SPEC's global RX (RXD); ae: the per-scene autoencoder; autoad: Auto-AD (fers.detect.autoad);
# utd, rxd-utd: ENVI's other two anomaly detectors; rx-dual: the local dual-window RX (fers.detect.classic)
DETECTORS = ("rx", "ae", "autoad", "utd", "rxd-utd", "rx-dual")
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
    products: object = None  # fers.objects.ObjectsResult when a mask or objects were asked for


def output_nodata(input_nodata: Optional[float]) -> float:
    if input_nodata is not None and (np.isnan(input_nodata) or input_nodata < 0):
        return float(input_nodata)
    return DEFAULT_NODATA


# the README's words for each strategy: log lines, layer names
STRATEGY_LABELS = {"none": "RX", "spectral": "spectral", "spatial": "spatial", "multiplicative": "fusion A",
                   "additive": "fusion B", "auto": "auto"}


def strategy_label(strategy: str) -> str:
    """'fusion B' for 'additive', 'RX' for 'none': the strategy as the README and the paper name it."""
    return STRATEGY_LABELS.get(strategy, strategy)


def resolve_strategy(strategy: str, bands: int, spatial: bool = True) -> str:
    """'auto' follows the paper: fusion A for ≤ 50 bands, else B (SPEC §3); with a model that holds no
    Spa-FEN (``spatial`` False: a stage-1 model) both fusions are out of reach, so 'auto' is spectral (FERD)."""
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy '{strategy}' (choose one of: {', '.join(STRATEGIES)})")
    if strategy == "auto":
        if not spatial:
            return "spectral"
        return "multiplicative" if bands <= 50 else "additive"
    return strategy


def explain_auto(resolved: str, bands: int, model=None) -> str:
    """One log line: what 'auto' resolved to and why."""
    name = f"the model {model.describe()}" if model is not None else "the model"
    if resolved == "spectral":
        why = f"{name} holds no spatial branch, so neither fusion can run"
    else:
        a = resolved == "multiplicative"
        why = (f"{name} has both branches, and with {bands} bands ({'≤' if a else '>'} 50) the paper's rule picks "
               f"{'A' if a else 'B'} (A up to 50 bands, else B)")
    return f"strategy auto → {strategy_label(resolved)} ({resolved}): {why}"


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


# Detectors that learn the scene, said once when they are given an enhanced cube: each line quotes the
# selection groups' figures of the research rule that decided it (research/ae_rule.py, research/autoad_enhanced.py;
# tests/test_autoad_enhanced_rule.py keeps Auto-AD's equal to its recorded decision), so an analyst who combines
# the two hears it before trusting the map.
ENHANCED_CUBE_WARNINGS = {
    "ae": "the AE on an enhanced cube scored below chance on the selection groups with the bundled models (mean AUC "
          "0.53 background anomalies, 0.31 implanted targets; docs/REPRODUCING.md §3): RX is the detector the "
          "enhancement is made for",
    "autoad": "Auto-AD on an enhanced cube scored well below Auto-AD on the original cube on the selection groups "
              "with the bundled models (mean AUC 0.71 vs 0.99 background anomalies, 0.49 vs 0.92 implanted "
              "targets; docs/REPRODUCING.md §3): use it with STRATEGY=none, or RX on the enhanced cube",
}


@full_fp32
def score_scene(cube: np.ndarray, valid: np.ndarray, strategy: str = "none", detector: str = "rx",
                model=None, device: str = "cpu", feedback: Optional[Feedback] = None, seed: int = 0,
                tile: Optional[int] = None, rx_trim: Optional[float] = None, local_mean: int = 0,
                window=None) -> tuple:
    """Score a preprocessed (B, H, W) cube (left unchanged). Returns (scores (H, W) float32 with NaN at
    invalid pixels, info).

    ``detector`` 'rx' is the global RX of SPEC §3; 'ae' the per-scene autoencoder, which replaces RX
    wherever the strategy calls for it (fusion A scores both enhanced cubes with it). ``tile``: side of
    the Spe-FEN tiles (default: from a 1 GB working-memory budget; the map does not depend on it).
    ``rx_trim``: share of the highest first-pass scores left out of RX's background statistics
    (fers.detect.rx; 0 = the SPEC's plain RX; None = ``resolve_rx_trim``: 0.01 when the strategy
    enhances the cube, 0 for 'none').
    ``local_mean``: rx / utd / rxd-utd take the background mean from a local window of that many pixels
    (ENVI's "local" mean; 0 = the scene's); ``window``: (inner, outer) of 'rx-dual'. Both untrimmed.
    Memory: the cube plus one enhanced cube of the same size, plus a tile's activations.
    """
    import torch

    from .detect.ae import ae_scores
    from .detect.autoad import autoad_scores
    from .detect.classic import DEFAULT_WINDOW, check_local_mean, check_window, dual_window_scores, global_scores
    from .detect.rx import rx

    feedback = feedback or Feedback()
    asked = strategy
    strategy = resolve_strategy(strategy, cube.shape[0], model is None or model.spa is not None)
    if asked == "auto":
        feedback.info(explain_auto(strategy, cube.shape[0], model))
    rx_trim = resolve_rx_trim(rx_trim, strategy)
    if detector not in DETECTORS:
        raise InputError(f"unknown detector '{detector}' (choose one of: {', '.join(DETECTORS)})")
    local_mean = check_local_mean(local_mean or 0)
    window = check_window(window or DEFAULT_WINDOW)
    if local_mean and detector not in ("rx", "utd", "rxd-utd"):
        raise InputError(f"a local mean (LOCAL_MEAN / --local-mean) is for rx, utd and rxd-utd, not {detector}")
    if local_mean or detector != "rx":
        rx_trim = 0.0  # the trim re-estimates one global background; these detectors have no such pass
    need_spe = strategy in ("spectral", "multiplicative", "additive")
    need_spa = strategy in ("spatial", "multiplicative", "additive")
    if detector in ENHANCED_CUBE_WARNINGS and (need_spe or need_spa):
        feedback.warn(ENHANCED_CUBE_WARNINGS[detector])
    info = {"strategy": strategy, "model_seconds": 0.0}
    if detector == "rx":
        info["rx_trim"] = rx_trim
    if local_mean:
        info["local_mean"] = local_mean
    if detector == "rx-dual":
        info["window"] = list(window)
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
        elif detector == "autoad":
            s, aad = autoad_scores(x, valid, seed=seed, device=device, feedback=sub)
            info.update(aad)
            maps.append(s)
        elif detector == "rx-dual":
            maps.append(dual_window_scores(x, valid, window, device=device, feedback=sub))
        elif detector != "rx" or local_mean:
            s, rxm = global_scores(x, valid, detector, local_mean, device=device, feedback=sub)
            info.update(rx_rank=rxm.rank, rx_condition=rxm.condition)
            maps.append(s)
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


def read_scene(src, plan: BandPlan, extent, job: str, feedback: Feedback, detector: str = "rx") -> tuple:
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
    bands = max(len(plan.indices), plan.band_count)
    check_fits(bands, height, width, job, feedback, working_bytes(detector, bands, height, width))
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


def _model_fit(model, raster_bands: int, wavelengths) -> Optional[str]:
    """How a model matches a raster it would read with BANDS=0, or None when it cannot: by wavelength where the
    model card and the raster both give them (at most half the model's wavelengths outside the raster's range,
    the limit ``wavelengths.plan_bands`` resamples to), else by position (the model's bands are bands of the
    raster)."""
    m_wl = model.meta.get("wavelengths")
    if m_wl and wavelengths and len(m_wl) == model.bands:
        lo, hi = min(wavelengths), max(wavelengths)
        outside = sum(1 for w in m_wl if not lo <= float(w) <= hi)
        if 2 * outside > len(m_wl):
            return None
        return (f"by wavelength: the raster's {lo:.0f}–{hi:.0f} nm cover the model's "
                f"{min(m_wl):.0f}–{max(m_wl):.0f} nm")
    idx = model.meta.get("band_indices") or range(model.bands)
    if max(int(i) for i in idx) >= raster_bands:
        return None
    return "by position" + ("" if wavelengths else ", as the raster carries no wavelengths")


def default_model(bands, raster_bands: int, feedback: Feedback, wavelengths=None) -> str:
    """The bundled model for a strategy that needs one when none is given.

    BANDS=N or a band list: the model of that many bands. BANDS=0 (the default): the models that match the
    raster (``_model_fit``: by wavelength where both sides give them, else by position) and, of those, the one
    with the most bands — the most spectral information; on the selection groups the bundled 200-band model is
    level with or ahead of the 100-band one on the scenes both can read (the model cards' figures)."""
    from .bundled import list_models
    from .checkpoint import load_model
    from .errors import FersError

    found, fits = {}, {}
    for m in list_models():
        try:
            mdl = load_model(m.path)
        except FersError:
            continue
        found.setdefault(mdl.bands, m)
        how = _model_fit(mdl, raster_bands, wavelengths)
        if how and found[mdl.bands] is m:
            fits[mdl.bands] = how
    counts = sorted(found)
    have = ", ".join(f"{b} bands ({found[b].name})" for b in counts) or "none installed"
    if isinstance(bands, (int, np.integer)) and int(bands) == 0:
        if not fits:
            raise ModelError(f"no bundled model for this raster (bundled: {have}): it has {raster_bands} bands"
                             f"{'' if wavelengths else ' and no wavelengths'}; choose strategy 'none' (plain RX, "
                             "no model), or give MODEL / --model trained for this sensor")
        want = max(fits)
        feedback.info(f"no model given: using the bundled model {found[want].name} ({want} bands): the bundled model "
                      f"with the most bands that matches this raster of {raster_bands} bands ({fits[want]})")
        return found[want].path
    want = int(bands) if isinstance(bands, (int, np.integer)) else len(list(bands))
    if want not in found:
        raise ModelError(f"no bundled model for {want} bands (bundled: {have}); set BANDS / --bands to one of "
                         "those, or give MODEL / --model")
    feedback.info(f"no model given: using the bundled model {found[want].name} ({want} bands)")
    return found[want].path


def detect(input: str, output: Optional[str], bands: Union[int, Sequence[int], None] = 0, strategy: str = "none",
           detector: str = "rx", model: Optional[str] = None, device: str = "auto", variable: Optional[str] = None,
           feedback: Optional[Feedback] = None, band_match: str = "auto", tile_size: int = 0,
           memory_mb: float = 0, rx_trim: Optional[float] = None, nodata=None,
           file_nodata: bool = True, extent=None, local_mean: int = 0, window=None, mask: Optional[str] = None,
           objects: Optional[str] = None, threshold_percentile: Optional[float] = None,
           false_alarm_rate: Optional[float] = None, min_pixels: int = 1) -> DetectResult:
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
    ``local_mean``, ``window``: see ``score_scene`` (the classic detectors' windows).

    ``mask`` / ``objects``: also write the anomaly mask and objects (``fers.objects``) with that threshold
    (``threshold_percentile`` or ``false_alarm_rate``) and smallest object (``min_pixels``); returned in
    ``products``. If writing them fails, the map of this run is removed too: all or nothing.

    With ``output`` None nothing is written (the map is returned).

    Every parameter and every output path is checked before anything is read or written: outputs that are
    an input (or one another) by any spelling are refused (``fers.io.paths.check_outputs``).
    """
    from .tiling import DEFAULT_MEMORY_MB, spe_tile_size

    feedback = feedback or Feedback()
    t0 = time.perf_counter()
    tile_size, memory_mb, extent = check_run_numbers(tile_size, memory_mb, extent, rx_trim)
    from .detect.classic import DEFAULT_WINDOW, check_local_mean, check_window

    check_local_mean(local_mean or 0)
    check_window(window or DEFAULT_WINDOW)
    nodata = nodata_ranges(nodata)
    products = bool(mask or objects)
    if products:
        threshold_percentile, false_alarm_rate, min_pixels = thresholds(threshold_percentile, false_alarm_rate,
                                                                        min_pixels)
    output, mask, objects = check_outputs(
        [("the input raster", input), ("the model", model if isinstance(model, str) else None)],
        [("the score map", output), ("the anomaly mask", mask), ("the anomaly objects", objects)])
    if output is not None:
        output = check_output_path(output)
    if mask:
        from .objects import check_mask_path

        check_mask_path(mask)
    if objects:
        from .objects import check_objects_path

        check_objects_path(objects)
    dev = resolve_device(device, feedback)
    src = open_source(input, variable, nodata, file_nodata)
    bands = resolve_band_list(bands, src, feedback)
    if not (isinstance(bands, (int, np.integer)) and int(bands) == 0):
        select_bands(src.band_count, bands)  # bands the raster lacks: said before any model is looked for
    if not model and strategy != "none":
        model = default_model(bands, src.band_count, feedback, getattr(src, "wavelengths", None))
    mdl = resolve_model(model, dev, feedback)
    # a model fixes its bands: BANDS=0 means "what the model needs", matched by wavelength when both sides
    # know theirs (fers.wavelengths: nearest centre, or resampling when the sensor differs), else by position
    plan = plan_bands(src, mdl, bands, band_match, feedback)
    idx = plan.indices
    feedback.info(f"input {src.describe()}; using {len(idx)} band(s); strategy {strategy}, detector {detector}, device {dev}")
    feedback.check()
    heavy = (mdl is not None and strategy != "none") or detector in ("ae", "autoad")
    cube, valid, georef = read_scene(src, plan, extent, "networks" if heavy else "rx", feedback, detector)
    feedback.progress(0.1, "read")
    n_invalid = int((~valid).sum())
    if n_invalid:
        feedback.info(f"{n_invalid} nodata/NaN/Inf pixel(s) excluded from every statistic and left as nodata")
    cube, minmax = scale_cube(cube, valid)
    tile = int(tile_size) or spe_tile_size(cube.shape[0], memory_mb or DEFAULT_MEMORY_MB, dev)
    scores, info = score_scene(cube, valid, strategy, detector, mdl, dev, feedback.sub(0.1, 0.95), tile=tile,
                               rx_trim=rx_trim, local_mean=local_mean, window=window)
    if mdl is not None:
        info["tile_size"] = tile
        if info["strategy"] != "none":
            info["model"] = mdl.describe()
    strategy = info["strategy"]
    info.update(scale_min=minmax[0], scale_max=minmax[1], band_match=plan.mode)
    if output is not None:
        feedback.check()
        nodata = output_nodata(src.nodata)
        if detector in ("utd", "rxd-utd") and not np.isnan(nodata):
            nodata = float("nan")  # their scores take any sign: only NaN cannot collide with one
        if not georef.known:
            feedback.warn(f"{os.path.basename(input)} carries no georeferencing; the map is a plain pixel grid")
        band_name = f"anomaly score ({strategy}, {detector_label(detector, info)})"
        meta = {"FERS_VERSION": __version__, "FERS_STRATEGY": strategy, "FERS_DETECTOR": detector,
                "FERS_BANDS": band_ranges(idx), "FERS_SOURCE": os.path.basename(input),
                "FERS_MODEL": mdl.source if mdl is not None else ""}
        if "rx_trim" in info:
            meta["FERS_RX_TRIM"] = f"{info['rx_trim']:g}"
        if "local_mean" in info:
            meta["FERS_LOCAL_MEAN"] = str(info["local_mean"])
        if "window" in info:
            meta["FERS_WINDOW"] = "{} {}".format(*info["window"])
        write_raster(output, [np.where(valid, scores, nodata)], georef, nodata, [band_name], meta,
                     feedback=feedback, overview="max")
    res = DetectResult(output, scores, valid, idx, strategy, detector, dev, time.perf_counter() - t0, info, georef)
    if products:
        from .objects import products_for_detection

        try:
            res.products = products_for_detection(res, input, mask, objects, threshold_percentile,
                                                  false_alarm_rate, variable, feedback, min_pixels)
        except BaseException:
            if output is not None:  # all or nothing: no map without the mask and objects asked for with it
                with contextlib.suppress(OSError):
                    os.remove(output)
            raise
    feedback.progress(1.0, "done")
    res.seconds = time.perf_counter() - t0
    return res


def check_run_numbers(tile_size=0, memory_mb=0, extent=None, rx_trim=None) -> tuple:
    """Detection's and enhancement's numbers, and FERS_MEMORY_LIMIT_MB, checked before anything is read or
    written (``fers.params``): (tile_size, memory_mb, extent)."""
    from .detect.rx import check_trim
    from .memory import limit_mb
    from .tiling import MIN_TILE

    tile_size = number(tile_size or 0, "the tile size (TILE_SIZE / --tile-size)", 0, integer=True)
    if tile_size and tile_size < MIN_TILE:
        raise InputError(f"TILE_SIZE must be 0 (automatic) or at least {MIN_TILE} px, got {tile_size}")
    memory_mb = number(memory_mb or 0, "the memory budget (MEMORY_MB / --memory-mb)", 0)
    if memory_mb and memory_mb < 16:
        raise InputError(f"the memory budget must be at least 16 MB, got {memory_mb:g}")
    if rx_trim is not None:
        number(rx_trim, "the RX trim (RX_TRIM / --rx-trim)")
        check_trim(rx_trim)
    limit_mb()
    return tile_size, memory_mb, check_extent(extent)


def detector_label(detector: str, info: dict) -> str:
    """'rx', 'rx trimmed 0.01', 'utd local mean 9', 'rx-dual 3/15' or 'ae': what scored the map, for band
    names and messages."""
    trim = info.get("rx_trim", 0.0) if detector == "rx" else 0.0
    if trim:
        return f"{detector} trimmed {trim:g}"
    if info.get("local_mean"):
        return f"{detector} local mean {info['local_mean']}"
    if detector == "rx-dual" and info.get("window"):
        return "rx-dual {}/{}".format(*info["window"])
    return detector


@dataclass
class EvalResult:
    auc: float
    valid_pixels: int
    anomalies: int
    roc: Optional[str] = None
    roc3d: dict = field(default_factory=dict)  # fers.metrics.roc3d: AUC(D,τ), AUC(F,τ) and their combinations


# bytes per pixel that evaluate holds at its peak (scores, ranks, the sort's order, masks): fers evaluate of a
# 2048×2048 .npy peaked 88 bytes/px above a tiny map's 0.26 GB (/usr/bin/time -f %M); rounded up for --roc
EVALUATE_BYTES_PER_PIXEL = 128


def open_score_map(path: str):
    """A score map's source, opened (its size known, nothing read): a one-band raster or a 2-D .npy."""
    from .io.research import load_npy

    if path.lower().endswith(".npy"):
        s = load_npy(path, "score map")
        if s.ndim != 2:
            raise InputError(f"{path}: a score map must be 2-D, got shape {s.shape}")
        return s
    src = open_source(path)
    if src.band_count != 1:
        raise InputError(f"{path} has {src.band_count} bands; a score map has one")
    return src


def read_score_map(path: str, src=None) -> tuple:
    src = open_score_map(path) if src is None else src
    if isinstance(src, np.ndarray):
        s = np.asarray(src, dtype=np.float32)
        return s, np.isfinite(s)
    cube, valid = src.read([0])
    return cube[0], valid


def evaluate(score: str, ground_truth: str, roc: Optional[str] = None, gt_variable: Optional[str] = None,
             feedback: Optional[Feedback] = None) -> EvalResult:
    """ROC AUC of a score map against a binary ground truth, over valid pixels (SPEC §4)."""
    from .metrics import roc3d, roc_curve
    from .report import write_roc

    from .memory import check_bytes

    feedback = feedback or Feedback()
    if roc:
        roc, = check_outputs([("the score map", score), ("the ground truth", ground_truth)], [("the ROC curve", roc)])
        from .report import check_roc_path

        check_roc_path(roc)
    src = open_score_map(score)
    height, width = src.shape if isinstance(src, np.ndarray) else (src.height, src.width)
    # the ground truth has the map's size or is refused; its own file is bounded by its reader
    check_bytes(EVALUATE_BYTES_PER_PIXEL * float(height) * width + 0.3 * 1024 ** 3,
                f"evaluating a {width}×{height} px score map", "evaluate a smaller map (an extent of it), or free "
                "memory; nothing was read")
    s, s_valid = read_score_map(score, src)
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
