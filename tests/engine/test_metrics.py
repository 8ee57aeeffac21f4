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


def test_3d_roc_areas_are_the_integrals_of_pd_and_pf_over_the_normalised_threshold():
    """AUC(D,τ) and AUC(F,τ) integrated numerically from P_D(τ), P_F(τ) on a fine τ grid equal the module's
    closed forms; the combinations follow (Chang 2021)."""
    from fers.metrics import roc3d

    rng = np.random.default_rng(3)
    y = rng.random(4000) < 0.05
    s = rng.normal(0, 1, y.size) + 2.5 * y
    s[:3] = np.nan  # invalid pixels are left out
    ok = np.isfinite(s)
    v, yy = s[ok], y[ok]
    tau = np.linspace(0, 1, 20001)
    norm = (v - v.min()) / (v.max() - v.min())
    pd = (norm[yy][None, :] >= tau[:, None]).mean(axis=1)
    pf = (norm[~yy][None, :] >= tau[:, None]).mean(axis=1)
    trapezoid = lambda f: float(((f[1:] + f[:-1]) / 2 * np.diff(tau)).sum())  # noqa: E731
    a = roc3d(s, y)
    assert a["auc_df"] == pytest.approx(roc_auc(s, y))
    assert a["auc_dt"] == pytest.approx(trapezoid(pd), abs=1e-4)
    assert a["auc_ft"] == pytest.approx(trapezoid(pf), abs=1e-4)
    assert a["auc_dt"] > 0.5 > a["auc_ft"]
    assert a["auc_td"] == pytest.approx(a["auc_df"] + a["auc_dt"])
    assert a["auc_bs"] == pytest.approx(a["auc_df"] - a["auc_ft"])
    assert a["auc_snpr"] == pytest.approx(a["auc_dt"] / a["auc_ft"])
    assert a["auc_tdbs"] == pytest.approx(a["auc_dt"] - a["auc_ft"])
    assert a["auc_od"] == pytest.approx(a["auc_df"] + a["auc_dt"] - a["auc_ft"])
    assert a["auc_odp"] == pytest.approx(a["auc_dt"] + 1 - a["auc_ft"])
