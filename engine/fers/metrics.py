"""ROC and AUC over valid pixels (SPEC §4)."""
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
    s, y = _prepare(scores, labels, valid)
    r = rankdata(s)
    npos = y.sum()
    nneg = y.size - npos
    return float((r[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


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
