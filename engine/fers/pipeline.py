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
from .device import resolve_device
from .errors import InputError, ModelError
from .feedback import Feedback
from .io import check_output_path, load_ground_truth, open_source, write_raster
from .preprocess import scale_cube, select_bands

STRATEGIES = ("none", "spectral", "spatial", "multiplicative", "additive", "auto")
DETECTORS = ("rx",)
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


def output_nodata(input_nodata: Optional[float]) -> float:
    if input_nodata is not None and (np.isnan(input_nodata) or input_nodata < 0):
        return float(input_nodata)
    return DEFAULT_NODATA


def score_scene(cube: np.ndarray, valid: np.ndarray, strategy: str = "none", detector: str = "rx",
                model=None, device: str = "cpu", feedback: Optional[Feedback] = None) -> tuple:
    """Score a preprocessed (B, H, W) cube. Returns (scores (H, W) float32 with NaN at invalid, info)."""
    from .detect.rx import rx

    feedback = feedback or Feedback()
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy '{strategy}' (choose one of: {', '.join(STRATEGIES)})")
    if detector not in DETECTORS:
        raise InputError(f"unknown detector '{detector}' (choose one of: {', '.join(DETECTORS)})")
    if strategy != "none":
        raise ModelError(f"strategy '{strategy}' needs the learned branches, which this engine version "
                         f"({__version__}) does not provide yet; use --strategy none (plain RX)")
    scores, rxm = rx(cube, valid, device=device, feedback=feedback)
    return scores, {"rx_rank": rxm.rank, "rx_condition": rxm.condition, "valid_pixels": rxm.n}


def detect(input: str, output: Optional[str], bands: Union[int, Sequence[int], None] = 0, strategy: str = "none",
           detector: str = "rx", model: Optional[str] = None, device: str = "auto", variable: Optional[str] = None,
           feedback: Optional[Feedback] = None) -> DetectResult:
    """Anomaly map of a raster. ``bands``: N = first N bands (0 = all) or a list of 0-based indices.

    With ``output`` None nothing is written (the map is returned).
    """
    feedback = feedback or Feedback()
    t0 = time.perf_counter()
    if output is not None:
        output = check_output_path(output, [input])
    dev = resolve_device(device)
    src = open_source(input, variable)
    idx = select_bands(src.band_count, bands)
    feedback.info(f"input {src.describe()}; using {len(idx)} band(s); strategy {strategy}, detector {detector}, device {dev}")
    feedback.check()
    cube, valid = src.read(idx)
    feedback.progress(0.1, "read")
    n_invalid = int((~valid).sum())
    if n_invalid:
        feedback.info(f"{n_invalid} nodata/NaN/Inf pixel(s) excluded from every statistic and left as nodata")
    cube, minmax = scale_cube(cube, valid)
    scores, info = score_scene(cube, valid, strategy, detector, model, dev, feedback.sub(0.1, 0.95))
    info.update(scale_min=minmax[0], scale_max=minmax[1])
    if output is not None:
        feedback.check()
        nodata = output_nodata(src.nodata)
        if not src.georef.known:
            feedback.warn(f"{os.path.basename(input)} carries no georeferencing; the map is a plain pixel grid")
        band_name = f"anomaly score ({strategy}, {detector})"
        meta = {"FERS_VERSION": __version__, "FERS_STRATEGY": strategy, "FERS_DETECTOR": detector,
                "FERS_BANDS": _band_ranges(idx), "FERS_SOURCE": os.path.basename(input),
                "FERS_MODEL": model or ""}
        write_raster(output, [np.where(valid, scores, nodata)], src.georef, nodata, [band_name], meta,
                     feedback=feedback)
    feedback.progress(1.0, "done")
    return DetectResult(output, scores, valid, idx, strategy, detector, dev, time.perf_counter() - t0, info)


def _band_ranges(idx: Sequence[int]) -> str:
    """0-based indices → '1-100,120' (1-based, compact) for metadata."""
    parts, start = [], None
    for i, b in enumerate(idx):
        if start is None:
            start = b
        if i + 1 == len(idx) or idx[i + 1] != b + 1:
            parts.append(f"{start + 1}" if start == b else f"{start + 1}-{b + 1}")
            start = None
    return ",".join(parts)


@dataclass
class EvalResult:
    auc: float
    valid_pixels: int
    anomalies: int
    roc: Optional[str] = None


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
    from .metrics import roc_auc, roc_curve
    from .report import write_roc

    feedback = feedback or Feedback()
    s, s_valid = read_score_map(score)
    gt, gt_valid = load_ground_truth(ground_truth, gt_variable)
    if gt.shape != s.shape:
        raise InputError(f"the score map is {s.shape[1]}×{s.shape[0]} px but the ground truth is "
                         f"{gt.shape[1]}×{gt.shape[0]} px")
    valid = s_valid & gt_valid
    auc = roc_auc(s, gt, valid)
    res = EvalResult(auc, int(valid.sum()), int((gt & valid).sum()))
    feedback.info(f"ROC AUC {auc:.4f} over {res.valid_pixels} valid pixels ({res.anomalies} anomalous)")
    if roc:
        fpr, tpr, _ = roc_curve(s, gt, valid)
        res.roc = write_roc(roc, fpr, tpr, auc, title=os.path.basename(score))
    return res
