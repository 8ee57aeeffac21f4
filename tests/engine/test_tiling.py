"""Tiled Spe-FEN = whole-image Spe-FEN; score_scene's in-place enhanced cubes = the textbook sums."""
import os

import numpy as np
import pytest
import torch

from conftest import WEIGHTS, mat_scene
from fers.checkpoint import load_model
from fers.metrics import roc_auc
from fers.pipeline import score_scene
from fers.preprocess import scale_cube
from fers.spectral.model import PAD
from fers.tiling import halo_tile, reflect_indices, spe_tile_size, spefen_tiled, tiles


@pytest.fixture(scope="module")
def scene():
    cube = np.ascontiguousarray(np.moveaxis(mat_scene("abu-airport-4")[0][:, :, :100], 2, 0).astype(np.float32))
    valid = np.ones(cube.shape[1:], bool)
    return scale_cube(cube, valid)[0], valid


def test_reflect_indices_are_torch_reflect_padding():
    x = torch.arange(7.0)[None, None, :]
    padded = torch.nn.functional.pad(x, (4, 4), mode="reflect")[0, 0]
    assert torch.equal(x[0, 0, reflect_indices(-4, 11, 7)], padded)


@pytest.mark.parametrize("shape, tile", [((3, 100, 100), 17), ((2, 5, 9), 32), ((2, 133, 70), 64),
                                         ((2, 130, 517), 128)])
@pytest.mark.parametrize("halo", [3, PAD])
def test_halo_tile_is_the_reflected_gather(shape, tile, halo):
    # every tile of the grid (last ones of 1-5 px included), against the index gather of reflected positions
    cube = torch.randn(*shape)
    for r0, r1, c0, c1 in tiles(shape[1], shape[2], tile):
        rows = reflect_indices(r0 - halo, r1 + halo, shape[1])
        cols = reflect_indices(c0 - halo, c1 + halo, shape[2])
        x = halo_tile(cube, r0, r1, c0, c1, halo)
        assert x.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(x[0], cube.index_select(1, rows).index_select(2, cols))


@pytest.mark.parametrize("tile", [17, 40, 64])
def test_tiled_spefen_equals_whole_image(scene, tile):
    spe = load_model(os.path.join(WEIGHTS, "fers-reference", "aviris_ng-100bands")).spe
    cube, _ = scene
    h = torch.from_numpy(cube)
    with torch.inference_mode():
        whole = spe(h[None])[0]
        tiled = spefen_tiled(spe, h, tile)
    # same arithmetic per pixel; only the convolution's blocking of sums may differ
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)


def test_tile_size_follows_the_memory_budget():
    gpu = [spe_tile_size(200, mb, "cuda") for mb in (16, 64, 1024)]
    assert gpu[0] < gpu[1] < gpu[2]
    side = gpu[2] + 8
    assert side * side * 4 * (1472 + 400) <= 1024 << 20 < (side + 2) ** 2 * 4 * (1472 + 400)
    assert spe_tile_size(200, 1024, "cpu") == 128 and spe_tile_size(200, 16, "cpu") == gpu[0] < 128


def test_spectral_scores_with_small_tiles_equal_one_tile(scene):
    model = load_model(os.path.join(WEIGHTS, "fers-reference", "aviris_ng-100bands"))
    cube, valid = scene
    before = cube.copy()
    # the SPEC's plain RX (rx_trim=0), so that the textbook form below applies
    a, _ = score_scene(cube, valid, "spectral", model=model, tile=23, rx_trim=0.0)
    b, _ = score_scene(cube, valid, "spectral", model=model, tile=4096, rx_trim=0.0)
    assert np.array_equal(cube, before)  # the caller's cube is never modified
    # features agree to float32 rounding; RX's ill-conditioned covariance (cond. ~1e9) amplifies that
    np.testing.assert_allclose(a, b, rtol=5e-3)
    gt = mat_scene("abu-airport-4")[1]
    assert roc_auc(a, gt, valid) == pytest.approx(roc_auc(b, gt, valid), abs=1e-4)
    # the textbook form: RX of H + F_spe built from the whole-image network
    with torch.inference_mode():
        f = model.spe(torch.from_numpy(cube)[None])[0].numpy()
    x = (cube + f).reshape(cube.shape[0], -1).T.astype(np.float64)
    z = x - x.mean(0)
    ref = np.einsum("ij,jk,ik->i", z, np.linalg.pinv(np.cov(x, rowvar=False)), z).reshape(valid.shape)
    np.testing.assert_allclose(b, ref, rtol=2e-3, atol=1e-3 * ref.max())


def test_tile_size_through_the_cli_and_its_errors(tmp_path):
    from conftest import fers, read_geotiff, write_geotiff

    tif = write_geotiff(tmp_path / "a4.tif", mat_scene("abu-airport-4")[0])
    maps = []
    for tile in (32, 4096):
        out = tmp_path / f"t{tile}.tif"
        r = fers("detect", tif, out, "--strategy", "additive", "--bands", 100, "--tile-size", tile, "--device", "cpu")
        assert r.returncode == 0, r.stderr
        maps.append(read_geotiff(out)[0][0])
    np.testing.assert_allclose(maps[0], maps[1], rtol=5e-3)
    gt = mat_scene("abu-airport-4")[1]
    assert roc_auc(maps[0], gt) == pytest.approx(roc_auc(maps[1], gt), abs=1e-4)
    r = fers("detect", tif, tmp_path / "x.tif", "--strategy", "spectral", "--bands", 100, "--tile-size", 5)
    assert r.returncode == 2 and "TILE_SIZE must be 0 (automatic) or at least 32 px, got 5" in r.stderr
    r = fers("detect", tif, tmp_path / "x.tif", "--memory-mb", 1)
    assert r.returncode == 2 and "memory budget must be at least 16 MB" in r.stderr
