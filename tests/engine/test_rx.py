"""RX against independent NumPy computations and the published figures."""
import numpy as np
import pytest
import torch

from conftest import (PUBLISHED_RX, fers, mat_scene, numpy_rx, numpy_trimmed_rx, pairwise_auc, read_geotiff,
                      write_geotiff)
from fers.detect.rx import rx
from fers.feedback import RecordingFeedback
from fers.metrics import roc_auc
from fers.preprocess import scale_cube


def _bhw(hwb):
    return np.ascontiguousarray(np.moveaxis(np.asarray(hwb, dtype=np.float32), 2, 0))


def test_rx_matches_per_pixel_numpy_pinv_on_real_crop():
    cube, _ = mat_scene("abu-airport-1")
    crop = cube[10:50, 20:60, :60]
    scores, model = rx(_bhw(crop), np.ones(crop.shape[:2], bool))
    ref = numpy_rx(crop.reshape(-1, 60)).reshape(40, 40)
    assert model.rank == 60
    np.testing.assert_allclose(scores, ref, rtol=2e-5)


def test_streaming_blocks_equal_single_block():
    cube, _ = mat_scene("abu-urban-3")
    x = _bhw(cube[:, :, :80])
    valid = np.ones(x.shape[1:], bool)
    one, _ = rx(x, valid, block_bytes=1 << 40)
    many, _ = rx(x, valid, block_bytes=80 * 100 * 8 * 3 * 7)  # 7 rows per block
    np.testing.assert_allclose(many, one, rtol=1e-6)  # float32 output rounding only


@pytest.mark.parametrize("name,bands,published", PUBLISHED_RX)
def test_engine_reproduces_published_rx(name, bands, published):
    cube, gt = mat_scene(name)
    x = _bhw(cube[:, :, :bands])
    valid = np.ones(x.shape[1:], bool)
    scale_cube(x, valid)
    scores, _ = rx(x, valid)
    assert abs(roc_auc(scores, gt == 1) - published) <= 1e-4


def test_rank_deficient_duplicate_bands_and_more_bands_than_pixels():
    cube, _ = mat_scene("abu-airport-2")
    # duplicated bands: covariance rank 30 of 60
    dup = np.concatenate([cube[:, :, :30], cube[:, :, :30]], axis=2)
    fb = RecordingFeedback()
    s, model = rx(_bhw(dup), np.ones(dup.shape[:2], bool), feedback=fb)
    assert np.isfinite(s).all() and model.rank == 30
    assert any("singular" in w for w in fb.warnings)
    # the pseudo-inverse makes duplicated bands score like the unique ones
    s30, _ = rx(_bhw(cube[:, :, :30]), np.ones(dup.shape[:2], bool))
    np.testing.assert_allclose(s, s30, rtol=1e-4, atol=1e-6)
    # 8×8 = 64 pixels, 200 bands
    tiny = cube[:8, :8, :200]
    fb = RecordingFeedback()
    s, model = rx(_bhw(tiny), np.ones((8, 8), bool), feedback=fb)
    assert np.isfinite(s).all() and model.rank <= 63
    assert any("only 64 valid pixels" in w for w in fb.warnings)


def test_nodata_excluded_and_preserved(tmp_path):
    cube, gt = mat_scene("abu-airport-2")
    cube = cube[:, :, :100].astype(np.int16)
    holes = np.zeros(cube.shape[:2], bool)
    holes[:5, :] = True  # a stripe of nodata
    holes[40:45, 60:70] = True
    cube[holes] = -32768
    src = write_geotiff(tmp_path / "in.tif", cube, nodata=-32768)
    out = tmp_path / "out.tif"
    r = fers("detect", src, out, "--bands", "100")
    assert r.returncode == 0, r.stderr
    arr, wkt, gtf, nodata = read_geotiff(out)
    assert nodata == -32768  # a negative input nodata cannot collide with a score, so it is kept
    assert (arr[0][holes] == nodata).all() and (arr[0][~holes] >= 0).all()
    # statistics over valid pixels only: identical to RX of the valid pixels alone
    ref = numpy_rx(cube[~holes].astype(np.float64))
    np.testing.assert_allclose(arr[0][~holes], ref, rtol=1e-4)


def test_nan_and_inf_pixels_are_nodata(tmp_path):
    cube, _ = mat_scene("abu-urban-3")
    cube = cube[:, :, :50].astype(np.float32)
    cube[3, 4, 10] = np.nan
    cube[7, 8, 0] = np.inf
    src = write_geotiff(tmp_path / "in.tif", cube)
    r = fers("detect", src, tmp_path / "out.tif")
    assert r.returncode == 0, r.stderr
    arr, *_ = read_geotiff(tmp_path / "out.tif")
    assert arr[0, 3, 4] == -9999.0 and arr[0, 7, 8] == -9999.0
    assert np.isfinite(arr).all() and (arr >= 0).sum() == cube.shape[0] * cube.shape[1] - 2


def test_rx_on_cpu_uses_float64_statistics():
    # condition numbers of ~1e8 need float64: float32 accumulation would drift visibly
    cube, _ = mat_scene("abu-airport-1")
    s, model = rx(_bhw(cube[:, :, :200]), np.ones((100, 100), bool))
    assert model.mean.dtype == torch.float64 and model.condition > 1e7
    assert pairwise_auc(s, mat_scene("abu-airport-1")[1]) == pytest.approx(0.8248, abs=1e-4)


def test_trimmed_rx_matches_numpy_on_real_crop_with_nodata():
    cube, _ = mat_scene("abu-airport-1")
    crop = cube[10:50, 20:60, :40]
    valid = np.ones(crop.shape[:2], bool)
    valid[:3] = False  # nodata rows: neither statistics nor quantile may see them
    scores, model = rx(_bhw(crop), valid, trim=0.05)
    ref, keep = numpy_trimmed_rx(crop[valid], 0.05)
    assert model.n == keep.sum() == int(np.ceil(0.95 * valid.sum()))
    np.testing.assert_allclose(scores[valid], ref, rtol=2e-5)
    assert np.isnan(scores[~valid]).all()
    # and streaming it through small blocks changes nothing
    many, _ = rx(_bhw(crop), valid, trim=0.05, block_bytes=40 * 40 * 8 * 3 * 3)
    np.testing.assert_allclose(many, scores, rtol=1e-6, equal_nan=True)


def test_trimmed_rx_lifts_targets_that_contaminate_the_covariance():
    # 5% of the pixels share one target spectrum: in the plain covariance they are a direction of large
    # variance, so their distance drops; once they leave the background statistics it does not
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8))
    targets = rng.choice(3000, 150, replace=False)
    x[targets] += 5.0 * np.eye(8)[0]
    labels = np.zeros(3000, bool)
    labels[targets] = True
    cube = _bhw(x.reshape(50, 60, 8))
    valid = np.ones((50, 60), bool)
    plain = rx(cube, valid)[0].ravel()
    trimmed = rx(cube, valid, trim=0.05)[0].ravel()
    assert pairwise_auc(trimmed, labels) > pairwise_auc(plain, labels) + 0.02  # measured 0.9779 vs 0.9462


def test_trim_outside_its_range_is_refused():
    from fers.errors import InputError

    with pytest.raises(InputError, match="trim"):
        rx(np.zeros((2, 4, 4), np.float32), np.ones((4, 4), bool), trim=0.5)


def test_rx_leaves_a_float64_cube_untouched():
    # statistics and scores centre pixel vectors in place: on a copy, even when no dtype cast makes one (a
    # float64 cube was centred in place before, though no caller passed one)
    cube = np.random.default_rng(1).normal(size=(6, 20, 30))
    keep = cube.copy()
    rx(cube, np.ones((20, 30), bool), trim=0.05)
    np.testing.assert_array_equal(cube, keep)
