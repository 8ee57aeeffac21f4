"""ENVI's RXD / UTD / RXD-UTD (global or local mean) and the local dual-window RX, against independent
NumPy computations on a real ABU crop (per-pixel loops, np.cov, np.linalg), and against Spectral Python's
windowed RX where it computes the same thing (windows inside the image)."""
import numpy as np
import pytest

from conftest import fers, mat_scene, read_geotiff, write_geotiff
from fers.detect.classic import dual_window_scores, global_scores
from fers.errors import InputError


@pytest.fixture(scope="module")
def crop():
    """(cube (B, H, W) float32 with one NaN pixel, valid, pixels (H·W, B) float64) of abu-airport-2."""
    hwb, _ = mat_scene("abu-airport-2")
    cube = np.ascontiguousarray(hwb[20:50, 30:55, :12].astype(np.float32).transpose(2, 0, 1))
    valid = np.ones(cube.shape[1:], bool)
    cube[:, 3, 4] = np.nan
    valid[3, 4] = False
    return cube, valid, cube.reshape(cube.shape[0], -1).T.astype(np.float64)


def _unit(pixels, vm):
    q = pixels[vm]
    return (pixels - q.min()) / (q.max() - q.min())


def test_global_utd_rxd_utd_and_rx_equal_their_formulas(crop):
    cube, valid, p = crop
    vm = valid.reshape(-1)
    u = _unit(p, vm)  # UTD and RXD-UTD see the cube scaled to [0, 1] (SPEC §3); RX does not depend on it
    mu, ki, one = u[vm].mean(0), np.linalg.pinv(np.cov(u[vm].T), hermitian=True), np.ones(p.shape[1])
    want = {"utd": ((one - mu) @ ki * (u - mu)).sum(1), "rxd-utd": ((u - one) @ ki * (u - mu)).sum(1),
            "rx": ((u - mu) @ ki * (u - mu)).sum(1)}
    for name, ref in want.items():
        got, _ = global_scores(cube, valid, name)
        assert np.isnan(got[3, 4])
        np.testing.assert_allclose(got.reshape(-1)[vm], ref[vm], rtol=1e-5, atol=1e-6 * np.abs(ref[vm]).max(),
                                   err_msg=name)
    # UTD is not RX: the two rank pixels differently on a real scene
    assert np.corrcoef(want["utd"][vm], want["rx"][vm])[0, 1] < 0.99


def test_local_mean_is_the_mean_of_the_valid_pixels_of_the_window(crop):
    cube, valid, p = crop
    b, h, w = cube.shape
    vm = valid.reshape(-1)
    u = _unit(p, vm)
    ki = np.linalg.pinv(np.cov(u[vm].T), hermitian=True)
    one = np.ones(b)
    lm = np.zeros_like(u)
    for i in range(h):  # the window clipped at the edges, nodata pixels left out
        for j in range(w):
            win = [a * w + c for a in range(max(0, i - 2), min(h, i + 3)) for c in range(max(0, j - 2), min(w, j + 3))
                   if valid[a, c]]
            lm[i * w + j] = u[win].mean(0)
    for name, ref in {"rx": ((u - lm) @ ki * (u - lm)).sum(1), "utd": ((one - lm) @ ki * (u - lm)).sum(1)}.items():
        got, _ = global_scores(cube, valid, name, local_mean=5)
        np.testing.assert_allclose(got.reshape(-1)[vm], ref[vm], rtol=1e-5, atol=1e-6 * np.abs(ref[vm]).max(),
                                   err_msg=name)


def test_streamed_row_blocks_give_the_same_map(crop):
    """Blocks of a few rows (block_bytes of about one row): the local means of each block come from its own
    rows and the window's reach above and below it, so the map equals the one-block map, a nodata pixel at a
    block's edge included, for a window wider than a block."""
    cube, valid, _ = crop
    cube, valid = cube.copy(), valid.copy()
    cube[:, 8, :3] = np.nan  # nodata along a row that ends up at a block edge
    valid[8, :3] = False
    row = cube.shape[0] * cube.shape[2] * 8 * 3  # fers.detect.rx's bytes per row of a block
    for name, size in (("rx", 0), ("utd", 0), ("utd", 5), ("rxd-utd", 9), ("rx", 3)):
        whole, _ = global_scores(cube, valid, name, local_mean=size)
        for rows in (1, 3, 7):
            got, _ = global_scores(cube, valid, name, local_mean=size, block_bytes=rows * row)
            np.testing.assert_array_equal(np.isnan(got), ~valid)
            np.testing.assert_allclose(got[valid], whole[valid], rtol=1e-9, atol=1e-9 * np.abs(whole[valid]).max(),
                                       err_msg=f"{name} local mean {size}, {rows}-row blocks")


def test_dual_window_rx_equals_a_per_pixel_numpy_rx_of_the_ring(crop):
    cube, valid, p = crop
    b, h, w = cube.shape
    got = dual_window_scores(cube, valid, (3, 9))

    def window(q, size, n):  # an n-pixel window around q, shifted to stay inside the image
        lo = min(max(0, q - n // 2), size - n)
        return range(lo, lo + n)

    for i in range(h):
        for j in range(w):
            if not valid[i, j]:
                assert np.isnan(got[i, j])
                continue
            ring = [a * w + c for a in window(i, h, 9) for c in window(j, w, 9)
                    if valid[a, c] and not (a in window(i, h, 3) and c in window(j, w, 3))]
            z = p[ring]
            d = p[i * w + j] - z.mean(0)
            want = d @ np.linalg.solve(np.cov(z.T), d)
            assert got[i, j] == pytest.approx(want, rel=1e-4), (i, j)


def test_dual_window_rx_equals_spectral_pythons(crop):
    spectral = pytest.importorskip("spectral")
    cube, valid, _ = crop
    full = cube.copy()
    full[:, 3, 4] = full[:, 3, 5]  # Spectral Python knows no nodata
    ours = dual_window_scores(full, np.ones_like(valid), (3, 9))
    theirs = spectral.rx(np.ascontiguousarray(full.transpose(1, 2, 0)).astype(np.float64), window=(3, 9))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)  # edges included: both shift their windows


def test_windows_are_checked(crop):
    cube, valid, _ = crop
    for window in ((4, 9), (9, 9), (3, 1), (1, 3)):  # (1, 3): a ring of 8 pixels for 12 bands
        with pytest.raises(InputError):
            dual_window_scores(cube, valid, window)
    with pytest.raises(InputError):
        global_scores(cube, valid, "utd", local_mean=4)


def test_cli_runs_each_classic_detector_on_a_real_raster(tmp_path, crop):
    cube, valid, _ = crop
    hwb = np.nan_to_num(cube.transpose(1, 2, 0), nan=-9999.0)
    src = tmp_path / "crop.tif"
    write_geotiff(str(src), hwb, nodata=-9999.0)
    for args, ref in ((["--detector", "utd"], global_scores(cube, valid, "utd")[0]),
                      (["--detector", "rxd-utd", "--local-mean", "5"], global_scores(cube, valid, "rxd-utd", 5)[0]),
                      (["--detector", "rx", "--local-mean", "5"], global_scores(cube, valid, "rx", 5)[0]),
                      (["--detector", "rx-dual", "--window", "3", "9"], dual_window_scores(cube, valid, (3, 9)))):
        out = tmp_path / f"map_{args[1]}_{len(args)}.tif"
        r = fers("detect", str(src), str(out), *args)
        assert r.returncode == 0, r.stderr
        got = read_geotiff(str(out))[0][0]
        # the CLI scores the cube after SPEC §0 scaling in float32: UTD crosses zero, so an absolute tolerance too
        np.testing.assert_allclose(got[valid], ref[valid], rtol=1e-3, atol=1e-4 * np.abs(ref[valid]).max(),
                                   err_msg=str(args))
    bad = fers("detect", str(src), str(tmp_path / "x.tif"), "--detector", "rx-dual", "--window", "4", "9", check=False)
    assert bad.returncode == 2 and not (tmp_path / "x.tif").exists()
