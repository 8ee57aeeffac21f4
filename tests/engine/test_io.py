"""Readers, band selection, SPEC §0 scaling and the atomic GeoTIFF writer."""
import os
import re

import h5py
import numpy as np
import pytest
import scipy.io

from conftest import RAW, mat_scene, read_geotiff, write_geotiff
from fers.errors import Cancelled, InputError, OutputError
from fers.feedback import Feedback
from fers.io import Georef, load_ground_truth, open_source, write_raster
from fers.preprocess import parse_band_list, scale_cube, select_bands


def test_mat_v5_cube_and_ground_truth():
    src = open_source(os.path.join(RAW, "abu-airport-4.mat"))
    cube, gt = mat_scene("abu-airport-4")
    assert (src.height, src.width, src.band_count) == cube.shape
    x, valid = src.read([0, 5, 190])
    np.testing.assert_array_equal(x, np.moveaxis(cube[:, :, [0, 5, 190]], 2, 0).astype(np.float32))
    assert valid.all() and (src.ground_truth() == gt).all()


def test_mat_v73_hdf5_is_transposed_to_rows_cols_bands():
    src = open_source(os.path.join(RAW, "TAEF__MUUFL.mat"))
    with h5py.File(os.path.join(RAW, "TAEF__MUUFL.mat"), "r") as f:
        raw = np.asarray(f["data"])  # (bands, cols, rows): MATLAB column-major seen through HDF5
        gt = np.asarray(f["groundtruth"])
    assert (src.height, src.width, src.band_count) == (100, 100, 64)
    x, _ = src.read([7])
    np.testing.assert_array_equal(x[0], raw[7].T)
    assert src.ground_truth().sum() == 269 and (src.ground_truth() == gt.T).all()


def test_bands_by_pixels_matrices_are_reshaped_column_major():
    jr = open_source(os.path.join(RAW, "jasperRidge2_R198.mat"))
    m = scipy.io.loadmat(os.path.join(RAW, "jasperRidge2_R198.mat"))
    assert (jr.height, jr.width, jr.band_count) == (100, 100, 198)
    x, _ = jr.read([3])
    # MATLAB: reshape(Y(4,:), 100, 100): pixel (r, c) is column r + 100·c
    assert x[0, 12, 34] == np.float32(m["Y"][3, 12 + 100 * 34])
    mo = open_source(os.path.join(RAW, "Moffet.mat"))
    assert (mo.height, mo.width, mo.band_count) == (50, 50, 159)


def test_mat_errors_are_specific(tmp_path):
    with pytest.raises(InputError, match="no numeric variable 'nope'"):
        open_source(os.path.join(RAW, "abu-airport-4.mat"), variable="nope")
    bad = tmp_path / "junk.mat"
    bad.write_bytes(b"this is not matlab")
    with pytest.raises(InputError, match="not a readable MATLAB file"):
        open_source(str(bad))


def test_npy_and_separate_mask_file(tmp_path):
    cube, gt = mat_scene("abu-urban-3")
    np.save(tmp_path / "s.npy", cube[:64, :64, :50].astype(np.float32))
    src = open_source(str(tmp_path / "s.npy"))
    assert (src.height, src.width, src.band_count) == (64, 64, 50)
    mask, valid = load_ground_truth(os.path.join(RAW, "RCRD__maskPavia.mat"))
    assert mask.shape == (105, 120) and mask.sum() == 43 and valid.all()


def test_envi_with_wavelengths(tmp_path):
    from osgeo import gdal

    gdal.UseExceptions()
    cube, _ = mat_scene("abu-airport-2")
    ds = gdal.GetDriverByName("ENVI").Create(str(tmp_path / "scene.dat"), 100, 100, 5, gdal.GDT_Int16)
    for i in range(5):
        ds.GetRasterBand(i + 1).WriteArray(cube[:, :, i])
    ds.SetMetadata({"wavelength": "{0.40, 0.41, 0.42, 0.43, 0.44}", "wavelength_units": "Micrometers"}, "ENVI")
    ds = None
    src = open_source(str(tmp_path / "scene.dat"))
    assert src.band_count == 5
    np.testing.assert_allclose(src.wavelengths, [400, 410, 420, 430, 440])
    x, _ = src.read([4])
    np.testing.assert_array_equal(x[0], cube[:, :, 4])


def test_band_selection():
    assert select_bands(205, 0) == list(range(205))
    assert select_bands(205, 200) == list(range(200))
    assert select_bands(10, [0, 9]) == [0, 9]
    assert parse_band_list("1-3, 10,2") == [0, 1, 2, 9]
    with pytest.raises(InputError, match="first 250 bands, but the raster has only 205"):
        select_bands(205, 250)
    with pytest.raises(InputError, match="band list is empty"):
        select_bands(10, [])
    with pytest.raises(InputError, match="band list is empty"):
        parse_band_list(" , ")
    with pytest.raises(InputError, match="do not exist"):
        select_bands(10, [10])
    with pytest.raises(InputError, match="not a band number"):
        parse_band_list("1-x")


def test_scaling_is_spec_formula_over_valid_pixels_only():
    rng = np.random.default_rng(0)
    x = rng.uniform(100, 5000, (4, 6, 7)).astype(np.float32)
    valid = np.ones((6, 7), bool)
    valid[0, 0] = False
    x[:, 0, 0] = 1e9  # an invalid pixel must not set the max
    lo, hi = x[:, valid].min(), x[:, valid].max()
    expected = ((x.astype(np.float64) - lo) / (hi - lo) * 2 - 1) * 0.1
    y, mm = scale_cube(x.copy(), valid)
    assert mm == (lo, hi)
    np.testing.assert_allclose(y[:, valid], expected[:, valid], atol=1e-7)
    assert y[:, valid].min() == pytest.approx(-0.1) and y[:, valid].max() == pytest.approx(0.1)
    assert (y[:, ~valid] == 0).all()
    with pytest.raises(InputError, match="same value"):
        scale_cube(np.ones((3, 4, 4), np.float32), np.ones((4, 4), bool))
    with pytest.raises(InputError, match="every pixel is nodata"):
        scale_cube(np.ones((3, 4, 4), np.float32), np.zeros((4, 4), bool))


def test_writer_keeps_georeferencing(tmp_path):
    src_path = write_geotiff(tmp_path / "in.tif", np.zeros((5, 6, 1), np.uint8))
    src = open_source(src_path)
    out = write_raster(str(tmp_path / "o.tif"), [np.arange(30, dtype=np.float32).reshape(5, 6)], src.georef, -9999.0)
    arr, wkt, gt, nodata = read_geotiff(out)
    assert "UTM zone 11N" in wkt and gt == src.georef.geotransform and nodata == -9999.0
    assert arr[0, 4, 5] == 29


def test_writer_leaves_nothing_on_cancel_or_bad_path(tmp_path):
    class CancelNow(Feedback):
        def cancelled(self):
            return True

    with pytest.raises(Cancelled):
        write_raster(str(tmp_path / "o.tif"), [np.zeros((4, 4), np.float32)], Georef(), None, feedback=CancelNow())
    assert os.listdir(tmp_path) == []
    with pytest.raises(OutputError, match="folder does not exist"):
        write_raster(str(tmp_path / "missing" / "o.tif"), [np.zeros((4, 4), np.float32)], Georef(), None)
    with pytest.raises(OutputError, match="GeoTIFF"):
        write_raster(str(tmp_path / "o.png"), [np.zeros((4, 4), np.float32)], Georef(), None)


def test_not_a_raster_and_truncated_geotiff(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(InputError, match="not a raster GDAL can read"):
        open_source(str(txt))
    cube, _ = mat_scene("abu-airport-2")
    full = write_geotiff(tmp_path / "full.tif", cube[:, :, :20])
    data = open(full, "rb").read()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt|not a raster"):
        src = open_source(str(tmp_path / "cut.tif"))
        src.read(range(20))


def _scaled_pair(tmp_path, scales, offsets, nodata=-9999):
    """An int16 GeoTIFF of a real ABU crop (first 100 bands) with per-band scale/offset metadata, and the
    float32 GeoTIFF of the values they describe (stored × scale + offset, computed here in float64)."""
    from osgeo import gdal

    cube, gt = mat_scene("abu-airport-2")
    stored = cube[:48, :40, :100].astype(np.int16)
    stored[3, 5, :] = nodata
    stored[20, 30, :] = nodata
    phys = stored.astype(np.float64) * np.asarray(scales) + np.asarray(offsets)
    phys[stored == nodata] = nodata
    write_geotiff(tmp_path / "stored.tif", stored, nodata=nodata)
    ds = gdal.Open(str(tmp_path / "stored.tif"), gdal.GA_Update)
    for b in range(stored.shape[2]):
        ds.GetRasterBand(b + 1).SetScale(float(scales[b]))
        ds.GetRasterBand(b + 1).SetOffset(float(offsets[b]))
    ds = None
    write_geotiff(tmp_path / "values.tif", phys.astype(np.float32), nodata=nodata)
    return stored, phys, gt[:48, :40]


# Hyperion-like: two spectrometers stored with different factors, plus an offset on some bands
SCALES = [1 / 40] * 50 + [1 / 80] * 50
OFFSETS = [0.0] * 30 + [-2.5] * 70


def test_band_scale_and_offset_are_applied_as_qgis_shows_them(tmp_path):
    stored, phys, _ = _scaled_pair(tmp_path, SCALES, OFFSETS)
    src = open_source(str(tmp_path / "stored.tif"))
    cube, valid = src.read(list(range(100)))
    ref, ref_valid = open_source(str(tmp_path / "values.tif")).read(list(range(100)))
    assert valid.sum() == 48 * 40 - 2 and np.array_equal(valid, ref_valid)  # nodata matched on stored values
    expect = np.transpose(phys, (2, 0, 1))
    np.testing.assert_allclose(cube[:, valid], expect[:, valid], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(cube, ref)
    assert "band scale/offset applied to 100 band(s)" in src.describe()
    assert "scale" not in open_source(str(tmp_path / "values.tif")).describe()
    import json

    from conftest import fers

    for name, scaled in (("stored", 100), ("values", 0)):
        r = fers("info", tmp_path / f"{name}.tif")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert (info["width"], info["height"], info["bands"], info["nodata"], info["crs"]) == (40, 48, 100, -9999, True)
        assert info["scaled_bands"] == scaled


def test_a_zero_scale_is_ignored_with_its_offset_as_qgis_does(tmp_path):
    stored, _, _ = _scaled_pair(tmp_path, [0.0] * 100, [5.0] * 100)
    cube, valid = open_source(str(tmp_path / "stored.tif")).read([0, 99])
    np.testing.assert_array_equal(cube[:, valid], np.transpose(stored[:, :, [0, 99]], (2, 0, 1))[:, valid])


def test_detection_on_scaled_integers_equals_detection_on_their_values(tmp_path):
    """The networks see the bands in proportion: with per-band factors, the stored integers give another map."""
    from osgeo import gdal

    from fers.metrics import roc_auc
    from fers.pipeline import detect

    _, _, gt = _scaled_pair(tmp_path, SCALES, OFFSETS)
    gdal.Translate(str(tmp_path / "stripped.tif"), str(tmp_path / "stored.tif"))  # copy, then drop the factors
    ds = gdal.Open(str(tmp_path / "stripped.tif"), gdal.GA_Update)
    for b in range(1, 101):
        ds.GetRasterBand(b).SetScale(1.0)
        ds.GetRasterBand(b).SetOffset(0.0)
    ds = None
    maps = {k: detect(str(tmp_path / f"{k}.tif"), None, bands=100, strategy="spectral", device="cpu")
            for k in ("stored", "values", "stripped")}
    s, v, x = (maps[k].scores for k in ("stored", "values", "stripped"))
    valid = maps["values"].valid
    np.testing.assert_allclose(s[valid], v[valid], rtol=2e-3, atol=1e-3 * float(np.nanmax(v)))
    assert abs(roc_auc(s, gt > 0, valid) - roc_auc(v, gt > 0, valid)) < 1e-4
    # without the factors the map is another one: what an analyst would have got before
    assert float(np.nanmax(np.abs(x[valid] - v[valid]))) > 0.05 * float(np.nanmax(v))


def test_a_container_names_its_cube_and_the_cube_reads_as_a_raster(tmp_path):
    """HDF5 / netCDF products (EMIT, PRISMA, EnMAP) hold their cube as one of several datasets."""
    path = tmp_path / "product.h5"
    cube = mat_scene("abu-airport-2")[0][:30, :40, :20].astype(np.float32)
    with h5py.File(path, "w") as f:
        f["quality"] = np.zeros((30, 40), np.uint8)
        f["reflectance"] = np.transpose(cube, (2, 0, 1))  # bands × rows × cols
        f["wavelengths"] = np.linspace(400, 600, 20)
    with pytest.raises(InputError) as e:
        open_source(str(path))
    msg = str(e.value)
    assert f"{path} is a container of 2 datasets, not one raster" in msg  # the 1-D wavelengths are not a raster
    assert f'e.g. HDF5:"{path}"://reflectance (in QGIS' in msg and "//quality" in msg
    src = open_source(f'HDF5:"{path}"://reflectance')
    got, valid = src.read(list(range(20)))
    assert (src.width, src.height, src.band_count) == (40, 30, 20) and valid.all()
    np.testing.assert_array_equal(got, np.transpose(cube, (2, 0, 1)))


def _zero_border(tmp_path, tag):
    """A real crop with a zero-filled border in every band (what lies around a flight line), with or without a
    nodata tag."""
    cube = mat_scene("abu-airport-2")[0][:48, :40, :30].astype(np.int16)
    cube[:5] = 0
    cube[:, -3:] = 0
    return write_geotiff(tmp_path / f"border-{tag}.tif", cube, nodata=0 if tag == "tagged" else None)


def test_no_data_values_and_ranges_parse_as_documented():
    from fers.io.source import parse_nodata

    assert parse_nodata("0, -9999; 10:20") == ((0.0, 0.0), (-9999.0, -9999.0), (10.0, 20.0))
    assert parse_nodata(["-10:-5", "nan", " "]) == ((-10.0, -5.0),)  # NaN is always nodata: nothing to add
    assert parse_nodata("") == ()
    for bad, msg in (("abc", "'abc' is not a no-data value or range"), ("5:1", "must run from low to high")):
        with pytest.raises(InputError, match=msg):
            parse_nodata(bad)


def test_extra_no_data_acts_as_the_files_own(tmp_path):
    """--nodata 0 on an untagged raster gives the map of the same raster tagged nodata=0, through the engine and
    the CLI; without it the zero border enters the statistics and the map is another one."""
    from conftest import fers
    from fers.pipeline import detect

    untagged, tagged = _zero_border(tmp_path, "untagged"), _zero_border(tmp_path, "tagged")
    ref = detect(tagged, None, strategy="none", device="cpu")
    assert ref.valid.sum() == (48 - 5) * (40 - 3)
    for nodata in ([0], [(-0.5, 0.5)], "0"):
        got = detect(untagged, None, strategy="none", device="cpu", nodata=nodata if nodata != "0" else None)
        if nodata == "0":  # the plain call: no extra no-data
            assert got.valid.all() and np.nanmax(np.abs(got.scores[ref.valid] - ref.scores[ref.valid])) > 1.0
            continue
        np.testing.assert_array_equal(got.valid, ref.valid)
        np.testing.assert_array_equal(got.scores[ref.valid], ref.scores[ref.valid])
    r = fers("detect", untagged, tmp_path / "cli.tif", "--nodata", "0", "--strategy", "none")
    assert r.returncode == 0, r.stderr
    assert "no data also where a band reads 0" in r.stderr
    r2 = fers("detect", tagged, tmp_path / "cli-tagged.tif", "--strategy", "none")
    assert r2.returncode == 0, r2.stderr
    a, b = read_geotiff(tmp_path / "cli.tif"), read_geotiff(tmp_path / "cli-tagged.tif")
    np.testing.assert_array_equal(a[0], b[0])  # scores and nodata pixels alike
    r = fers("detect", untagged, tmp_path / "bad.tif", "--nodata", "5:1")
    assert r.returncode == 2 and "must run from low to high" in r.stderr and not (tmp_path / "bad.tif").exists()


def test_a_read_with_no_valid_pixel_names_the_bands_to_blame(tmp_path):
    """A pixel is valid only where all its bands are, so one blanked band voids the scene: the error names it
    (and the file's bad-band flags), or says that the bands' no data covers different pixels."""
    from analyst_helpers import write_envi
    from fers.io.source import require_valid

    cube = np.transpose(mat_scene("abu-airport-2")[0][:30, :30, :20], (2, 0, 1)).astype(np.float32)
    cube[4:6] = np.nan  # water-vapour bands set to NaN, flagged bad
    path = write_envi(tmp_path / "nan.img", cube, bbl=[0 if b in (4, 5) else 1 for b in range(20)])
    src = open_source(path)
    _, valid = src.read(list(range(20)))
    with pytest.raises(InputError) as e:
        require_valid(src, list(range(20)), valid)
    assert str(e.value) == ("every pixel is nodata (or NaN/Inf) in the selected bands: band(s) 5-6 are no data in "
                            "every pixel (NaN/Inf; 5-6 flagged bad in the file (ENVI bbl)); leave them out "
                            "(band list 1-4,7-20: BAND_LIST / --band-list)")
    require_valid(src, [0, 1, 2], src.read([0, 1, 2])[1])  # other bands: nothing to say
    cube = np.transpose(mat_scene("abu-airport-2")[0][:30, :30, :3], (2, 0, 1)).astype(np.float32)
    cube[0, :15] = np.nan
    cube[1, 15:] = np.nan  # each band half valid, never both
    src = open_source(write_envi(tmp_path / "halves.img", cube))
    with pytest.raises(InputError, match="each of the 3 bands has valid pixels, but no pixel is valid in all"):
        require_valid(src, [0, 1, 2], src.read([0, 1, 2])[1])
    from fers.train.data import load_background

    with pytest.raises(InputError, match=r"^background .*nan.img: every pixel is nodata .* band\(s\) 5-6"):
        load_background(path, 10, 16)


def test_a_wrong_nodata_tag_can_be_read_as_data(tmp_path):
    """nodata=0 on a product in which 0 is also a real value: file_nodata=False (--ignore-file-nodata) gives the
    map of the same raster untagged; by default the file's tag holds and those pixels are left out."""
    from conftest import fers
    from fers.pipeline import detect

    cube = mat_scene("abu-airport-2")[0][:40, :40, :30].astype(np.int16)
    cube[10:12, 20:25, 3] = 0  # real zeros, in one band
    tagged = write_geotiff(tmp_path / "tagged.tif", cube, nodata=0)
    plain = write_geotiff(tmp_path / "plain.tif", cube)
    ref = detect(plain, None, strategy="none", device="cpu")
    assert ref.valid.all()
    assert (~detect(tagged, None, strategy="none", device="cpu").valid).sum() == 10
    got = detect(tagged, None, strategy="none", device="cpu", file_nodata=False)
    np.testing.assert_array_equal(got.valid, ref.valid)
    np.testing.assert_array_equal(got.scores, ref.scores)
    assert "the file's nodata value 0 read as data" in open_source(tagged, file_nodata=False).describe()
    r = fers("detect", tagged, tmp_path / "cli.tif", "--ignore-file-nodata", "--strategy", "none")
    assert r.returncode == 0, r.stderr
    scores, _, _, nodata = read_geotiff(tmp_path / "cli.tif")
    assert nodata == -9999.0 and not (scores == nodata).any()  # 0 is data here, so the map's nodata is another
    np.testing.assert_array_equal(scores[0], ref.scores.astype(np.float32))


def test_an_extent_scores_only_the_window_it_touches_on_the_same_grid(tmp_path):
    """--extent over columns 11-40 and rows 6-35 of a real crop gives the map of that window cut out with NumPy
    and georeferenced by hand: the same pixels, statistics and scores, the origin moved by 10 and 5 pixels."""
    from conftest import fers, qgis_process
    from fers.pipeline import detect

    cube = mat_scene("abu-airport-2")[0][:50, :60, :40]
    scene = write_geotiff(tmp_path / "scene.tif", cube)  # origin (380000, 3760000), 7.1 m pixels, EPSG:32611
    window = write_geotiff(tmp_path / "window.tif", cube[5:35, 10:40],
                           geotransform=(380000 + 10 * 7.1, 7.1, 0.0, 3760000 - 5 * 7.1, 0.0, -7.1))
    ref = detect(window, str(tmp_path / "ref.tif"), strategy="none", device="cpu")
    # an extent that cuts into the edge pixels still takes them whole
    extent = (380000 + 10.2 * 7.1, 3760000 - 34.9 * 7.1, 380000 + 39.5 * 7.1, 3760000 - 5.01 * 7.1)
    got = detect(scene, str(tmp_path / "got.tif"), strategy="none", device="cpu", extent=extent)
    np.testing.assert_array_equal(got.scores, ref.scores)
    a, b = read_geotiff(tmp_path / "got.tif"), read_geotiff(tmp_path / "ref.tif")
    np.testing.assert_array_equal(a[0], b[0])
    assert a[2] == pytest.approx(b[2]) and a[1] == b[1]  # geotransform and CRS
    r = fers("detect", scene, tmp_path / "cli.tif", "--extent", *map(str, extent), "--mask", tmp_path / "mask.tif")
    assert r.returncode == 0, r.stderr
    assert "extent: columns 11–40, rows 6–35 (30×30 of the raster's 60×50 px)" in r.stderr
    assert read_geotiff(tmp_path / "mask.tif")[2] == pytest.approx(b[2])  # the mask sits on the window too
    # another process: its BLAS may sum in another order (one pixel of 900 off by 1 ulp with Debian 13's OpenBLAS)
    np.testing.assert_allclose(read_geotiff(tmp_path / "cli.tif")[0], b[0], rtol=1e-6)
    xmin, ymin, xmax, ymax = extent
    r = qgis_process("run", "fers:detect", "--", f"INPUT={scene}", "STRATEGY=none",
                     f"EXTENT={xmin},{xmax},{ymin},{ymax} [EPSG:32611]",
                     f"OUTPUT={tmp_path / 'qgis.tif'}")
    assert r.returncode == 0, r.stdout + r.stderr
    q = read_geotiff(tmp_path / "qgis.tif")
    np.testing.assert_allclose(q[0], b[0], rtol=1e-6)
    assert q[2] == pytest.approx(b[2])
    off = "does not overlap scene.tif (its extent: 380000, 3759645, 380426, 3760000, in its CRS)"
    for bad, message in (((0, 0, 10, 10), off),
                         ((380100, 3759900, 380000, 3760000), "the extent must run from low to high")):
        with pytest.raises(InputError, match=re.escape(message)):
            detect(scene, None, strategy="none", device="cpu", extent=bad)
    with pytest.raises(InputError, match="carries no georeferencing: an extent cannot be placed on it"):
        detect(os.path.join(RAW, "abu-airport-2.mat"), None, strategy="none", device="cpu", extent=extent)


def test_what_c_libraries_print_during_a_write_is_kept_aside():
    """GDAL 3.10 with Debian 13's libtiff prints '_tiffWriteProc: File too large.' straight on fd 2 beside
    GDAL's own error: the writers keep fd 2 aside, read the reason from it, and print it only if the write
    succeeded. Checked in a child process, on its real fd 2."""
    import subprocess
    import sys

    code = r"""
import os, sys
from fers.errors import OutputError
from fers.io.raster import NativeStderr, raise_write_failure
with NativeStderr() as ok:
    os.write(2, b"a C warning\n")
    print("python's own line", file=sys.stderr)
raise_write_failure("m.tif", None, [], ok)          # success: replayed, in order
with NativeStderr() as bad:
    os.write(2, b"_tiffWriteProc: File too large.\n")
try:
    raise_write_failure("m.tif", OutputError("writing m.tif failed: TIFFAppendToStrip:Write error"), [], bad)
except OutputError as e:
    print("error:", e)
with NativeStderr() as outer, NativeStderr() as inner:   # one capture at a time: the inner one captures nothing
    os.write(2, b"nested\n")
print(len(outer.lines), len(inner.lines))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == ["a C warning", "python's own line"], r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("error: no space left on the disk of m.tif"), out
    assert out[1] == "1 0", out


def _block_max(a, f, nodata):
    """The largest valid value of each f×f block (the last ones partial), NaN where none: the reference for
    a score map's overview level, by NumPy's nanmax over every block, not by repeated 2×2 pooling."""
    h, w = a.shape
    b = np.full((-(-h // f) * f, -(-w // f) * f), np.nan)
    b[:h, :w] = np.where(a == nodata, np.nan, a)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):  # the nodata corner
        return np.nanmax(b.reshape(b.shape[0] // f, f, b.shape[1] // f, f), axis=(1, 3))


def test_large_score_maps_carry_max_overviews_written_before_the_rename(tmp_path):
    """A score map of 1024 px or more on a side carries internal overviews (QGIS draws a large map from them),
    each pixel the highest valid score of the block it covers, so a one-pixel anomaly stays visible zoomed out;
    a smaller map has none; nothing but the map is left in the folder."""
    from osgeo import gdal

    from fers.pipeline import detect

    gdal.UseExceptions()
    tile = mat_scene("abu-airport-2")[0][:, :, :3].astype(np.float32)  # 100×100×3, real spectra
    big = np.tile(tile, (11, 11, 1))[:1100, :1030]  # odd overview sizes at every level
    big[:40, :40] = -9999  # a nodata corner: its overview pixels stay nodata
    src = write_geotiff(tmp_path / "big.tif", big, nodata=-9999)
    folder = tmp_path / "maps"
    folder.mkdir()
    out = str(folder / "map.tif")
    detect(src, out, strategy="none")
    assert os.listdir(folder) == ["map.tif"]  # the overviews went into the temporary before the rename
    ds = gdal.Open(out)
    band = ds.GetRasterBand(1)
    nodata = band.GetNoDataValue()
    full = band.ReadAsArray()
    assert [(band.GetOverview(k).XSize, band.GetOverview(k).YSize) for k in range(band.GetOverviewCount())] == \
        [(515, 550), (258, 275), (129, 138)]
    for k, f in enumerate((2, 4, 8)):
        got = band.GetOverview(k).ReadAsArray().astype(np.float64)
        ref = _block_max(full, f, nodata)
        assert np.array_equal(np.where(got == nodata, np.nan, got), ref, equal_nan=True)
    assert np.isnan(ref[0, 0]) and got[0, 0] == nodata  # the nodata corner, 8×8 blocks of it
    peak = np.unravel_index(np.argmax(np.where(full == nodata, -np.inf, full)), full.shape)
    assert got[peak[0] // 8, peak[1] // 8] == full[peak]  # the highest score survives to the smallest level
    small = write_geotiff(tmp_path / "small.tif", big[:1023, :40], nodata=-9999)
    detect(small, str(folder / "small_map.tif"), strategy="none")
    assert gdal.Open(str(folder / "small_map.tif")).GetRasterBand(1).GetOverviewCount() == 0
