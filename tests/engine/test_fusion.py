"""Fusion strategies (SPEC §3) against an independent NumPy computation, and all six through `fers detect`."""
import numpy as np
import pytest
import torch

from conftest import PAPER_SET, fers, mat_scene, numpy_rx, numpy_trimmed_rx, read_geotiff
from fers.checkpoint import load_model
from fers.pipeline import STRATEGIES, score_scene
from fers.preprocess import scale_cube


def _minmax(s):
    return (s - s.min()) / (s.max() - s.min())


def _crop_and_features(model, rows, cols):
    """A scaled 100-band crop of abu-airport-2, its valid mask, and the model's F_spe and F_spa on it."""
    cube = np.ascontiguousarray(np.moveaxis(mat_scene("abu-airport-2")[0][:rows, :cols, :100], 2, 0), dtype=np.float32)
    valid = np.ones(cube.shape[1:], bool)
    scale_cube(cube, valid)
    with torch.inference_mode():
        h = torch.from_numpy(cube)[None]
        return cube, valid, model.spe(h)[0].numpy(), model.spa(h)[0].numpy()


def test_fusion_arithmetic_matches_independent_numpy(stage2_model):
    model = load_model(stage2_model)
    cube, valid, f_spe, f_spa = _crop_and_features(model, 60, 70)

    def rx_np(x):
        return numpy_rx(x.reshape(x.shape[0], -1).T).reshape(x.shape[1:])

    expected = {
        "none": rx_np(cube), "spectral": rx_np(cube + f_spe), "spatial": rx_np(cube + f_spa),
        "additive": rx_np(cube + f_spa + f_spe),
        "multiplicative": _minmax(rx_np(cube + f_spa)) * _minmax(rx_np(cube + f_spe)),
    }
    for strategy, ref in expected.items():
        got, info = score_scene(cube.copy(), valid, strategy, "rx", model, rx_trim=0.0)  # the SPEC's plain RX
        assert info["strategy"] == strategy
        np.testing.assert_allclose(got, ref, rtol=2e-3, atol=1e-6 if strategy == "multiplicative" else 0, err_msg=strategy)
        # rankings, what AUC sees, agree more tightly than values
        assert np.corrcoef(np.argsort(np.argsort(got.ravel())), np.argsort(np.argsort(ref.ravel())))[0, 1] > 0.99999
    auto, info = score_scene(cube.copy(), valid, "auto", "rx", model)
    assert info["strategy"] == "additive" and np.array_equal(auto, score_scene(cube.copy(), valid, "additive", "rx", model)[0])


def test_default_detector_is_trimmed_rx_for_the_enhanced_strategies_only(stage2_model):
    from fers.detect.rx import DEFAULT_TRIM

    model = load_model(stage2_model)
    cube, valid, f_spe, f_spa = _crop_and_features(model, 50, 60)

    def trimmed(x):
        return numpy_trimmed_rx(x.reshape(x.shape[0], -1).T, DEFAULT_TRIM)[0].reshape(x.shape[1:])

    assert DEFAULT_TRIM == 0.01
    expected = {"none": numpy_rx(cube.reshape(100, -1).T).reshape(50, 60), "spectral": trimmed(cube + f_spe),
                "multiplicative": _minmax(trimmed(cube + f_spa)) * _minmax(trimmed(cube + f_spe))}
    for strategy, ref in expected.items():
        got, info = score_scene(cube.copy(), valid, strategy, "rx", model)
        assert info["rx_trim"] == (0.0 if strategy == "none" else DEFAULT_TRIM), strategy
        np.testing.assert_allclose(got, ref, rtol=2e-3, atol=1e-6 if strategy == "multiplicative" else 0,
                                   err_msg=strategy)
    # an explicit trim holds for every strategy, 'none' included
    got, info = score_scene(cube.copy(), valid, "none", "rx", model, rx_trim=0.05)
    assert info["rx_trim"] == 0.05
    np.testing.assert_allclose(got, numpy_trimmed_rx(cube.reshape(100, -1).T, 0.05)[0].reshape(50, 60), rtol=2e-3)


def test_auto_picks_multiplicative_at_50_bands_or_fewer():
    from fers.pipeline import resolve_strategy

    assert resolve_strategy("auto", 50) == "multiplicative" and resolve_strategy("auto", 51) == "additive"


def test_all_six_strategies_via_fers_detect_are_georeferenced(stage2_model, paper_set_tifs, tmp_path):
    for name in ("abu-airport-1", "RCRD__dataPavia"):
        tif, _ = paper_set_tifs[name]
        for strategy in STRATEGIES:
            out = tmp_path / f"{name}_{strategy}.tif"
            r = fers("-q", "detect", tif, out, "--strategy", strategy, "--model", stage2_model, "--bands", 100)
            assert r.returncode == 0, (name, strategy, r.stderr)
            scores, wkt, geotransform, _ = read_geotiff(out)
            assert "UTM zone 11N" in wkt and geotransform[1] == 7.1, (name, strategy)
            assert np.isfinite(scores).all() and scores.min() >= 0


def test_all_six_strategies_on_the_whole_paper_set_in_one_benchmark(stage2_model, paper_set_tifs, tmp_path):
    # one process for 7 scenes × 6 strategies (42 fers-detect start-ups would cost ~100 s of suite time)
    import csv

    pairs = [f"{tif}={gt}" for tif, gt in paper_set_tifs.values()]
    r = fers("-q", "benchmark", *pairs, "--bands", "100", "--strategies", ",".join(STRATEGIES),
             "--model", stage2_model, "--out", tmp_path / "bench", "--no-plots")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "bench" / "results.csv")))
    done = {(row["scene"], row["strategy"]) for row in rows if row["auc"]}
    assert len(done) == len(PAPER_SET) * len(STRATEGIES), sorted(done)
    assert all(0.5 < float(row["auc"]) <= 1.0 for row in rows if row["auc"])


def test_ae_detector_through_fers_detect(stage2_model, paper_set_tifs, tmp_path):
    tif, gt = paper_set_tifs["abu-airport-2"]
    outs = []
    for i in (1, 2):
        out = tmp_path / f"ae{i}.tif"
        r = fers("-q", "detect", tif, out, "--strategy", "additive", "--detector", "ae", "--model", stage2_model)
        assert r.returncode == 0, r.stderr
        outs.append(read_geotiff(out)[0])
    assert np.array_equal(outs[0], outs[1])  # seeded: bit-identical
    auc = float(fers("-q", "evaluate", tmp_path / "ae1.tif", gt).stdout)
    assert 0.0 < auc < 1.0
