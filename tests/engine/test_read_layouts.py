"""The reader takes every layout at its own grain (windows of all bands per GDAL call) and returns exactly what
reading band by band with GDAL returns: the same stored values, the same nodata on stored values, the same
scale/offset arithmetic, the same zeroed invalid pixels. The windows are kept tiny here (a few KB), so that
every file is read in many windows cut on its own block boundaries."""
import h5py
import numpy as np
import pytest
from osgeo import gdal

from conftest import mat_scene
from fers.io import open_source
from fers.io import raster as raster_io

gdal.UseExceptions()
H, W, B = 45, 38, 24  # odd sizes: partial blocks at the right and bottom edges
ND = -9999


@pytest.fixture(scope="module")
def scene():
    """A real ABU crop (rows, cols, bands) as int16, with a few nodata pixels and one nodata in a single band."""
    hwb = mat_scene("abu-airport-2")[0][:H, :W, :B].astype(np.int16)
    hwb[3, 5, :] = ND
    hwb[40, 30, :] = ND
    hwb[10, 11, 7] = ND  # nodata in one band voids the pixel
    return hwb


@pytest.fixture(autouse=True)
def small_windows(monkeypatch):
    monkeypatch.setattr(raster_io, "READ_BUDGET", 6 * 1024)


def per_band(path, bands, window=None):
    """The reference: GDAL band by band, as the engine read before (nodata on the stored values; then
    value = stored × scale + offset in float64, rounded once to float32; invalid pixels zeroed)."""
    ds = gdal.Open(path)
    x0, y0, w, h = window or (0, 0, ds.RasterXSize, ds.RasterYSize)
    cube = np.empty((len(bands), h, w), np.float32)
    valid = np.ones((h, w), bool)
    for k, b in enumerate(bands):
        band = ds.GetRasterBand(b + 1)
        raw = band.ReadAsArray(x0, y0, w, h, buf_type=gdal.GDT_Float32)
        nd = band.GetNoDataValue()
        if nd is not None:
            valid &= raw != np.float32(nd)
        scale, offset = band.GetScale() or 1.0, band.GetOffset() or 0.0
        cube[k] = raw.astype(np.float64) * scale + offset if (scale, offset) != (1.0, 0.0) else raw
        valid &= np.isfinite(cube[k])
    cube[:, ~valid] = 0
    return cube, valid


def write(path, hwb, driver="GTiff", options=(), nodata=ND, scales=None):
    mem = gdal.GetDriverByName("MEM").Create("", hwb.shape[1], hwb.shape[0], hwb.shape[2], gdal.GDT_Int16)
    mem.SetGeoTransform((380000.0, 7.1, 0.0, 3760000.0, 0.0, -7.1))
    for i in range(hwb.shape[2]):
        band = mem.GetRasterBand(i + 1)
        band.WriteArray(hwb[:, :, i])
        band.SetNoDataValue(nodata)
        if scales is not None:
            band.SetScale(scales[i][0])
            band.SetOffset(scales[i][1])
    gdal.Translate(str(path), mem, format=driver, creationOptions=list(options))
    return str(path)


LAYOUTS = {
    "band-interleaved GeoTIFF": ("GTiff", ["INTERLEAVE=BAND", "BLOCKYSIZE=4"], "BAND"),
    "pixel-interleaved GeoTIFF strips": ("GTiff", ["INTERLEAVE=PIXEL", "BLOCKYSIZE=2"], "PIXEL"),
    "pixel-interleaved tiled DEFLATE": ("GTiff", ["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16",
                                                  "COMPRESS=DEFLATE"], "PIXEL"),
    "ENVI BSQ": ("ENVI", ["INTERLEAVE=BSQ"], "BAND"),
    "ENVI BIL": ("ENVI", ["INTERLEAVE=BIL"], "LINE"),
    "ENVI BIP": ("ENVI", ["INTERLEAVE=BIP"], "PIXEL"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_layout_reads_what_gdal_reads_band_by_band(tmp_path, scene, layout):
    driver, options, interleave = LAYOUTS[layout]
    path = write(tmp_path / ("cube.tif" if driver == "GTiff" else "cube.img"), scene, driver, options)
    ds = gdal.Open(path)
    assert ds.GetMetadataItem("INTERLEAVE", "IMAGE_STRUCTURE") == interleave  # the layout the test claims
    block = ds.GetRasterBand(1).GetBlockSize()
    src = open_source(path)
    bands_out_of_order = [7, 2, 19, 3, 4, 5, 23, 0]
    window = (5, 7, 29, 33)  # an extent's window, off the block boundaries
    assert len(raster_io.read_windows(block, window, len(bands_out_of_order))) > 4  # many windows, really
    for bands, win in ((list(range(B)), None), (bands_out_of_order, None), (bands_out_of_order, window),
                       ([11], window)):
        cube, valid = src.read(bands, win)
        ref, ref_valid = per_band(path, bands, win)
        np.testing.assert_array_equal(valid, ref_valid)
        np.testing.assert_array_equal(cube, ref)
        assert cube.dtype == np.float32 and cube.flags.c_contiguous
    full, valid = src.read(list(range(B)))
    assert (~valid).sum() == 3 and np.array_equal(full[:, valid], np.moveaxis(scene, 2, 0)[:, valid])


def test_scale_offset_and_nodata_per_window_equal_the_per_band_read(tmp_path, scene):
    """Per-band factors on a pixel-interleaved tiled file: the window-by-window arithmetic gives the per-band
    read's float32 values bit for bit."""
    scales = [(1 / 40, 0.0)] * 12 + [(1 / 80, -2.5)] * 12
    path = write(tmp_path / "scaled.tif", scene, "GTiff", ["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16",
                                                          "COMPRESS=DEFLATE"], scales=scales)
    src = open_source(path)
    assert sum(so is not None for so in src.scale_offset) == B
    bands = [20, 1, 13, 12, 5]
    cube, valid = src.read(bands, (3, 2, 30, 40))
    ref, ref_valid = per_band(path, bands, (3, 2, 30, 40))
    np.testing.assert_array_equal(cube, ref)
    np.testing.assert_array_equal(valid, ref_valid)
    assert cube[0, 5, 10] == np.float32(float(scene[7, 13, 20]) / 80 - 2.5)  # the value, in float64 then rounded


def test_containers_read_in_chunk_order_equal_gdal_band_by_band(tmp_path, scene):
    """HDF5 and netCDF cubes chunked across every band (the layout that made band-by-band reading decompress
    each chunk once per band) read through GDAL's multidimensional API equal GDAL's raster view, netCDF's
    bottom-up rows included."""
    cube = np.moveaxis(scene, 2, 0).astype(np.float32)
    h5 = tmp_path / "cube.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("reflectance", data=cube, chunks=(B, 16, 16), compression="gzip")
    nc, nc_per_band = str(tmp_path / "cube.nc"), str(tmp_path / "per_band.nc")
    for path, chunk in ((nc, B), (nc_per_band, 1)):  # a chunk per band: band lists read run by run, not as a span
        ds = gdal.GetDriverByName("netCDF").CreateMultiDimensional(path)
        rg = ds.GetRootGroup()
        dims = [rg.CreateDimension(n, None, None, s) for n, s in (("band", B), ("y", H), ("x", W))]
        arr = rg.CreateMDArray("reflectance", dims, gdal.ExtendedDataType.Create(gdal.GDT_Float32),
                               [f"BLOCKSIZE={chunk},16,16", "COMPRESS=DEFLATE"])
        arr.Write(cube)
        ds = None
    for path, flipped in ((f'HDF5:"{h5}"://reflectance', False), (f'NETCDF:"{nc}":reflectance', True),
                          (f'NETCDF:"{nc_per_band}":reflectance', True)):
        src = open_source(path)
        container = raster_io._container_array(gdal.Open(path), gdal)
        assert container is not None and container.flipped == flipped  # the fast path is the one tested
        assert raster_io._read_span(container, [7, 2, 12, 3, 4, 5]) == ("per_band" not in path)
        # all bands and a band range (one array read into the cube, whole or an extent's window), an
        # out-of-order list with gaps (the span of bands, window by window), one band
        for bands, win in ((list(range(B)), None), (list(range(3, 17)), (5, 7, 29, 33)),
                           ([7, 2, 12, 3, 4, 5], (5, 7, 29, 33)), ([7, 2, 12, 3, 4, 5], None), ([11], None)):
            got, valid = src.read(bands, win)
            ref, ref_valid = per_band(path, bands, win)
            np.testing.assert_array_equal(got, ref)
            np.testing.assert_array_equal(valid, ref_valid)
        got, _ = src.read(list(range(B)))
        np.testing.assert_array_equal(got, cube[:, ::-1] if flipped else cube)


def test_read_windows_follow_the_blocks_and_the_budget():
    # strips: whole block rows, as many as the budget holds, edges on the file's block boundaries
    wins = raster_io.read_windows((512, 4), (0, 2, 512, 100), 200, budget=512 * 16 * 200 * 4)
    assert wins[0] == (0, 2, 512, 14) and wins[1] == (0, 16, 512, 16) and wins[-1] == (0, 96, 512, 6)
    # tiles wider than the budget allows: one tile row, cut into whole tiles
    wins = raster_io.read_windows((256, 256), (0, 0, 2048, 600), 200, budget=64 * 2 ** 20)
    assert wins[:2] == [(0, 0, 256, 256), (256, 0, 256, 256)] and len(wins) == 8 * 3
    for block, window in (((16, 16), (5, 7, 29, 33)), ((38, 1), (0, 0, 38, 45)), ((7, 3), (2, 1, 30, 40))):
        wins = raster_io.read_windows(block, window, 24, budget=6 * 1024)
        cover = np.zeros((60, 60), int)
        for x, y, w, h in wins:
            cover[y:y + h, x:x + w] += 1
            assert w * h * 24 * 4 <= 6 * 1024 or (w <= block[0] and h <= block[1])
            assert (y + h) % block[1] == 0 or y + h == window[1] + window[3]  # cut on block rows
        x0, y0, w, h = window
        assert cover[y0:y0 + h, x0:x0 + w].min() == 1 and cover.sum() == w * h  # each pixel read once


def test_compressed_and_pixel_interleaved_geotiffs_are_decoded_on_several_threads(tmp_path, scene, monkeypatch):
    """GDAL decodes a GeoTIFF's blocks on several threads when FERS opens a compressed or pixel-interleaved
    one (not a band-interleaved uncompressed one, where it is slower), for that open only: nothing is left
    set in GDAL's configuration, a GDAL_NUM_THREADS the user set is theirs, OMP_NUM_THREADS caps it; and what
    is read on 4 threads, windows of several blocks each, equals GDAL's band-by-band read."""
    monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    paths = {name: write(tmp_path / f"{i}.tif", scene, "GTiff", LAYOUTS[name][1])
             for i, name in enumerate(["band-interleaved GeoTIFF", "pixel-interleaved GeoTIFF strips",
                                       "pixel-interleaved tiled DEFLATE"])}
    decide = {name: raster_io.threaded_decoding(gdal, gdal.Open(p)) for name, p in paths.items()}
    assert decide == {"band-interleaved GeoTIFF": None, "pixel-interleaved GeoTIFF strips": "ALL_CPUS",
                      "pixel-interleaved tiled DEFLATE": "ALL_CPUS"}
    tiled = paths["pixel-interleaved tiled DEFLATE"]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one core given (a Dask worker): no threads
    assert raster_io.threaded_decoding(gdal, gdal.Open(tiled)) is None
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert raster_io.threaded_decoding(gdal, gdal.Open(tiled)) == "4"
    assert raster_io.decoding_thread_count(gdal, gdal.Open(tiled)) == 4
    # windows of at least 4 tiles (16×16 px: the 6 KB budget holds fewer), and the values are GDAL's
    wins = raster_io.read_windows((16, 16), (0, 0, W, H), B, budget=6 * 1024, min_blocks=4)
    assert wins[0] == (0, 0, 38, 16)
    src = open_source(tiled)
    cube, valid = src.read(list(range(B)))
    ref, ref_valid = per_band(tiled, list(range(B)))
    np.testing.assert_array_equal(cube, ref)
    np.testing.assert_array_equal(valid, ref_valid)
    assert gdal.GetThreadLocalConfigOption("GDAL_NUM_THREADS", None) is None  # set for the open only
    assert gdal.GetConfigOption("GDAL_NUM_THREADS") is None
    gdal.SetConfigOption("GDAL_NUM_THREADS", "1")  # the user's choice wins
    try:
        assert raster_io.threaded_decoding(gdal, gdal.Open(tiled)) is None
    finally:
        gdal.SetConfigOption("GDAL_NUM_THREADS", None)
