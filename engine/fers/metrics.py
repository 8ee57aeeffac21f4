"""ROC and AUC over valid pixels (SPEC §4), and the 3D-ROC areas other anomaly-detection papers report.

3D ROC (Chang, "An effective evaluation tool for hyperspectral target detection: 3D receiver operating
characteristic curve analysis", IEEE TGRS 2021): with the scores min–max normalised to τ ∈ [0, 1] over
the valid pixels, P_D(τ) and P_F(τ) are the shares of anomalous and background pixels scoring ≥ τ, and

    AUC(D,F)  the ROC AUC above
    AUC(D,τ)  = ∫ P_D(τ) dτ = mean normalised score of the anomalies (detectability)
    AUC(F,τ)  = ∫ P_F(τ) dτ = mean normalised score of the background (lower = better suppressed)
    AUC_TD    = AUC(D,F) + AUC(D,τ)          AUC_BS   = AUC(D,F) − AUC(F,τ)
    AUC_TDBS  = AUC(D,τ) − AUC(F,τ)          AUC_SNPR = AUC(D,τ) / AUC(F,τ)
    AUC_OD    = AUC(D,F) + AUC(D,τ) − AUC(F,τ)
    AUC_ODP   = AUC(D,τ) + 1 − AUC(F,τ)

(∫₀¹ 1[s ≥ τ] dτ = s, hence the means.) They depend on the normalisation, so they compare maps of
the same scene, not scenes.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from .errors import InputError


def _prepare(scores, labels, valid=None):
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(bool)
    if s.shape != y.shape:
        raise InputError(f"score map and ground truth differ in size ({s.size} vs {y.size} pixels)")
    ok = np.isfinite(s)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool).reshape(-1)
    s, y = s[ok], y[ok]
    npos = int(y.sum())
    if npos == 0:
        raise InputError("the ground truth marks no anomalous pixel among the valid pixels: AUC is undefined")
    if npos == y.size:
        raise InputError("the ground truth marks every valid pixel as anomalous: AUC is undefined")
    return s, y


def roc_auc(scores, labels, valid=None) -> float:
    """Area under the ROC curve = P(score of an anomaly > score of background), ties counted half.

    Computed from average ranks (Mann–Whitney U), which equals the trapezoidal
    area under the full ROC curve.
    """
    return _auc(*_prepare(scores, labels, valid))


def _auc(s: np.ndarray, y: np.ndarray) -> float:
    r = rankdata(s)
    npos = y.sum()
    nneg = y.size - npos
    return float((r[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def roc3d(scores, labels, valid=None) -> dict:
    """The 3D-ROC areas of the module docstring, keyed auc_df, auc_dt, auc_ft, auc_td, auc_bs, auc_tdbs,
    auc_snpr, auc_od, auc_odp."""
    s, y = _prepare(scores, labels, valid)
    lo, hi = float(s.min()), float(s.max())
    t = (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
    df, dt, ft = _auc(s, y), float(t[y].mean()), float(t[~y].mean())
    return {"auc_df": df, "auc_dt": dt, "auc_ft": ft, "auc_td": df + dt, "auc_bs": df - ft, "auc_tdbs": dt - ft,
            "auc_snpr": dt / ft if ft > 0 else float("inf"), "auc_od": df + dt - ft, "auc_odp": dt + 1 - ft}


def roc_curve(scores, labels, valid=None) -> tuple:
    """(false-alarm rate, detection rate, thresholds), thresholds decreasing, starting at (0, 0)."""
    s, y = _prepare(scores, labels, valid)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[distinct]
    fp = (distinct + 1) - tp
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (y.size - y.sum())]
    return fpr, tpr, np.r_[np.inf, s[distinct]]
