"""AUC and ROC against brute-force definitions."""
import numpy as np
import pytest

from conftest import pairwise_auc
from fers.errors import InputError
from fers.metrics import roc_auc, roc_curve


def test_auc_equals_pairwise_probability_with_ties():
    rng = np.random.default_rng(3)
    s = rng.integers(0, 20, 3000).astype(float)  # many ties
    y = rng.random(3000) < 0.05
    s[y] += 3
    assert roc_auc(s, y) == pytest.approx(pairwise_auc(s, y), abs=1e-12)


def test_auc_equals_trapezoid_area_of_roc_curve():
    rng = np.random.default_rng(4)
    s = rng.normal(size=2000)
    y = rng.random(2000) < 0.1
    s[y] += 1
    fpr, tpr, thr = roc_curve(s, y)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapz(tpr, fpr) == pytest.approx(roc_auc(s, y), abs=1e-12)


def test_invalid_pixels_are_ignored_and_degenerate_truth_rejected():
    s = np.array([0.1, 0.9, np.nan, 0.5, 5.0])
    y = np.array([0, 1, 1, 0, 0])
    valid = np.array([1, 1, 1, 1, 0], bool)
    assert roc_auc(s, y, valid) == 1.0
    with pytest.raises(InputError, match="no anomalous pixel"):
        roc_auc(s, np.zeros(5), valid)
    with pytest.raises(InputError, match="every valid pixel"):
        roc_auc(s, np.ones(5), valid)
