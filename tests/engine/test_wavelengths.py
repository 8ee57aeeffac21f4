"""Wavelengths: reading GDAL/ENVI metadata, matching a raster's bands to a model card's, resampling, warnings."""
import json
import os

import numpy as np
import pytest

from analyst_helpers import sample_cube, tiny_checkpoint, write_envi
from conftest import REPO, fers

from fers.errors import InputError, ModelError
from fers.feedback import RecordingFeedback

RASTER_WL = [400.0 + 9.6 * i for i in range(30)]  # AVIRIS-like spacing, nm


@pytest.fixture(scope="module")
def envi_scene(tmp_path_factory):
    """The real sample's first 30 bands as ENVI with wavelengths in µm, FWHM and a bad-band list."""
    folder = tmp_path_factory.mktemp("envi")
    bbl = [1] * 30
    bbl[7] = 0
    return write_envi(folder / "scene.img", sample_cube(30), [w / 1000 for w in RASTER_WL], "Micrometers",
                      fwhm=[0.0085] * 30, bbl=bbl)


def test_envi_header_wavelengths_fwhm_and_bad_bands(envi_scene):
    from fers.io import open_source

    src = open_source(envi_scene)
    np.testing.assert_allclose(src.wavelengths, RASTER_WL, atol=1e-9)
    np.testing.assert_allclose(src.fwhm, [8.5] * 30, atol=1e-9)
    assert list(src.bad_bands) == [7]
    assert src.georef.geotransform[1] == 7.1


def test_geotiff_band_metadata_written_reads_back(tmp_path):
    from fers.io import open_source, write_raster
    from fers.wavelengths import band_metadata

    wl, fw = [450.5, 550.25, 650.0], [10.0, 11.0, 12.0]
    path = write_raster(str(tmp_path / "enh.tif"), [np.zeros((4, 5), np.float32)] * 3, None, None,
                        band_metadata=band_metadata(wl, fw))
    src = open_source(path)
    np.testing.assert_allclose(src.wavelengths, wl)
    np.testing.assert_allclose(src.fwhm, fw)


def test_nearest_skips_bad_bands_and_resampling_is_np_interp():
    from fers.wavelengths import match_nearest, resampling_matrix

    idx, off = match_nearest(RASTER_WL, [RASTER_WL[7] + 1, RASTER_WL[20] - 2], bad=[7])
    assert idx == [8, 20] or idx == [6, 20]
    assert abs(off[1] + (-2)) < 1e-9 or abs(off[1] - 2) < 1e-9
    rng = np.random.default_rng(0)
    spectra = rng.normal(size=(5, 30))
    target = [405.0, 433.3, 470.0, 612.1, 390.0, 700.0]  # two outside the range: edge bands stand in
    w, clamped = resampling_matrix(RASTER_WL, target, bad=[3])
    good = [i for i in range(30) if i != 3]
    for x in spectra:
        np.testing.assert_allclose(w @ x, np.interp(target, np.asarray(RASTER_WL)[good], x[good]), atol=1e-12)
    assert clamped == [4, 5]


def _detect(path, model, **kw):
    from fers.pipeline import detect

    fb = RecordingFeedback()
    return detect(path, None, strategy="spectral", model=model, device="cpu", feedback=fb, **kw), fb


def test_detect_picks_model_bands_by_nearest_wavelength(envi_scene, tmp_path):
    want = list(range(0, 24, 2))  # 12 bands
    ckpt = tiny_checkpoint(tmp_path / "m.pt", 12, [RASTER_WL[i] + 1.5 for i in want])
    res, fb = _detect(envi_scene, ckpt)
    assert res.bands == want and res.info["band_match"] == "nearest"
    assert any("matched by wavelength" in m for m in fb.infos) and not fb.warnings
    # the same bands chosen by hand give the same map
    ref, _ = _detect(envi_scene, ckpt, bands=want)
    np.testing.assert_array_equal(res.scores, ref.scores)
    # a model band on the bad band 8 (bbl = 0): 'nearest' takes band 9 (8.1 nm away) and says it is off
    ckpt = tiny_checkpoint(tmp_path / "b.pt", 12, [RASTER_WL[i] + 1.5 for i in range(1, 24, 2)])
    res, fb = _detect(envi_scene, ckpt, band_match="nearest")
    assert res.bands == [1, 3, 5, 8, 9, 11, 13, 15, 17, 19, 21, 23]
    assert any("do not match the model card" in w for w in fb.warnings)


def test_detect_resamples_when_the_sensor_differs(envi_scene, tmp_path):
    from fers.checkpoint import load_model
    from fers.io import open_source
    from fers.pipeline import score_scene
    from fers.preprocess import scale_cube

    model_wl = [RASTER_WL[2] + 4.8 + 9.6 * j for j in range(12)]  # halfway between bands: none measures them
    ckpt = tiny_checkpoint(tmp_path / "m.pt", 12, model_wl)
    res, fb = _detect(envi_scene, ckpt)
    assert res.info["band_match"] == "resample"
    assert any("do not match the model card" in w and "resampling" in w for w in fb.warnings)
    # independent: np.interp of every pixel's spectrum over the good bands, then the same scaling and scoring
    src = open_source(envi_scene)
    cube, valid = src.read(list(range(30)))
    good = [i for i in range(30) if i != 7]
    flat = cube.reshape(30, -1)
    interp = np.stack([np.interp(model_wl, np.asarray(RASTER_WL)[good], flat[good, p]) for p in range(flat.shape[1])], 1)
    interp = interp.reshape(12, 100, 100).astype(np.float32)
    scaled, _ = scale_cube(interp, valid)
    ref, _ = score_scene(scaled, valid, "spectral", "rx", load_model(ckpt).to("cpu"), "cpu")
    np.testing.assert_allclose(res.scores, ref, rtol=2e-4, atol=1e-3)
    # nearest forced: the mismatch is a warning, not silence
    res, fb = _detect(envi_scene, ckpt, band_match="nearest")
    assert res.info["band_match"] == "nearest" and any("do not match the model card" in w for w in fb.warnings)


def test_mismatch_warnings(envi_scene, tmp_path):
    model_wl = [RASTER_WL[i] for i in range(12)]
    ckpt = tiny_checkpoint(tmp_path / "m.pt", 12, model_wl, input_band_count=224)
    sample = os.path.join(REPO, "resources", "sample", "abu-airport-2.tif")  # no wavelength metadata
    res, fb = _detect(sample, ckpt)
    assert res.bands == list(range(12)) and res.info["band_match"] == "index"
    text = " ".join(fb.warnings)
    assert "carries no wavelength metadata" in text and "expects rasters with 224 bands" in text
    # explicit bands that are not the model's wavelengths, one of them flagged bad
    res, fb = _detect(envi_scene, ckpt, bands=list(range(5, 17)))
    text = " ".join(fb.warnings)
    assert "do not match the model card's wavelengths" in text and "flagged bad" in text
    with pytest.raises(InputError, match="needs wavelengths"):
        _detect(sample, ckpt, band_match="resample")
    with pytest.raises(ModelError, match="uses bands up to 40"):
        _detect(envi_scene, tiny_checkpoint(tmp_path / "k.pt", 12, None, band_indices=list(range(28, 40))))


def test_bundled_model_by_bare_name(envi_scene, tmp_path, monkeypatch):
    from fers.bundled import list_models

    folder = tmp_path / "models"
    folder.mkdir()
    tiny_checkpoint(folder / "aviris-tiny.pt", 12, [RASTER_WL[i] for i in range(0, 24, 2)])
    (folder / "aviris-tiny.md").write_text("# AVIRIS tiny test model\n\n12 bands, random weights.\n")
    monkeypatch.setenv("FERS_MODELS_DIR", str(folder))
    assert [(m.name, m.summary()) for m in list_models()] == [("aviris-tiny", "AVIRIS tiny test model")]
    res, _ = _detect(envi_scene, "aviris-tiny")
    assert res.bands == list(range(0, 24, 2))
    with pytest.raises(ModelError, match="bundled models: aviris-tiny"):
        _detect(envi_scene, "no-such-model")
    r = fers("models", "--json", env={"FERS_MODELS_DIR": str(folder)})
    assert r.returncode == 0 and json.loads(r.stdout)[0]["name"] == "aviris-tiny"


def test_a_band_list_by_wavelength_selects_the_bands_whose_centres_lie_there(envi_scene, tmp_path):
    """'450-500nm,0.6um,25' on centres 400 + 9.6·i nm: i = 6..10 (457.6–496.0 nm), the band nearest 600 nm
    (i = 21, 601.6 nm) and band 25, i.e. '7-11,22,25', through the engine, the CLI and qgis_process."""
    from conftest import mat_scene, qgis_process, read_geotiff, write_geotiff
    from fers.pipeline import detect
    from fers.preprocess import parse_band_list
    from fers.train.stage1 import train_spectral

    by_wl = parse_band_list("450-500nm, 0.6um, 25")
    ref = detect(envi_scene, None, bands=parse_band_list("7-11,22,25"), strategy="none", device="cpu")
    fb = RecordingFeedback()
    got = detect(envi_scene, None, bands=by_wl, strategy="none", device="cpu", feedback=fb)
    assert got.bands == [6, 7, 8, 9, 10, 21, 24] == ref.bands
    np.testing.assert_array_equal(got.scores, ref.scores)
    assert "band list '450-500nm, 0.6um, 25': bands 7-11,22,25 of the raster (7)" in fb.infos
    for text, message in (("700-800nm", "'700-800nm' selects no band: the raster's band centres run from 400.0 "
                                        "to 678.4 nm"),
                          ("1um", "'1um' selects no band"),
                          ("500-450nm", "a wavelength range must increase"),
                          ("450-500", None), ("400-500mm", "is not a band number or a range")):
        if message is None:  # plain numbers stay band numbers
            assert parse_band_list(text) == list(range(449, 500))
            continue
        with pytest.raises(InputError, match=message):
            detect(envi_scene, None, bands=parse_band_list(text), strategy="none", device="cpu")
    plain = write_geotiff(tmp_path / "plain.tif", mat_scene("abu-airport-2")[0][:30, :30, :30])
    with pytest.raises(InputError, match="selects bands by wavelength, but the raster carries no wavelengths"):
        detect(plain, None, bands=by_wl, strategy="none", device="cpu")
    with pytest.raises(InputError, match="training takes band numbers"):
        train_spectral([plain], str(tmp_path / "m.pt"), bands=by_wl)
    r = fers("detect", envi_scene, tmp_path / "cli.tif", "--band-list", "450-500nm,0.6um,25")
    assert r.returncode == 0, r.stderr
    r = qgis_process("run", "fers:detect", "--", f"INPUT={envi_scene}", "BAND_LIST=450-500nm,0.6um,25", "STRATEGY=none",
                     f"OUTPUT={tmp_path / 'qgis.tif'}")
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("cli.tif", "qgis.tif"):
        scores = read_geotiff(tmp_path / name)[0][0]
        np.testing.assert_allclose(scores, ref.scores, rtol=1e-6)
        from osgeo import gdal

        assert gdal.Open(str(tmp_path / name)).GetMetadataItem("FERS_BANDS") == "7-11,22,25"


def test_info_gives_what_an_extent_and_a_wavelength_band_list_refer_to(envi_scene):
    r = fers("info", envi_scene)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    # ENVI map info: upper-left 371000, 3757000, 7.1 m pixels, 100 × 100 of them
    assert info["extent"] == pytest.approx([371000, 3757000 - 710, 371710, 3757000])
    assert info["wavelength_range_nm"] == [400.0, 678.4] and info["bad_bands"] == "8"


def test_envi_header_values_win_over_gdal_310s_rounded_imagery_domain(tmp_path):
    """GDAL ≥ 3.10's ENVI driver copies the header's wavelength/fwhm into the IMAGERY domain as "%.3f" µm
    (0.4096 → "0.410"). The header's exact values must be the ones read. On an older GDAL the driver does not
    fill IMAGERY, so the test writes there what GDAL 3.10 does (into the .aux.xml), the same rounded strings."""
    from osgeo import gdal

    from fers.io import open_source

    wl_um = [w / 1000 for w in RASTER_WL[:6]]
    path = write_envi(tmp_path / "scene.img", sample_cube(6), wl_um, "Micrometers", fwhm=[0.00855] * 6)
    ds = gdal.Open(path, gdal.GA_Update)
    for i, w in enumerate(wl_um):
        band = ds.GetRasterBand(i + 1)
        if band.GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY") is None:  # GDAL < 3.10
            band.SetMetadataItem("CENTRAL_WAVELENGTH_UM", f"{w:.3f}", "IMAGERY")
            band.SetMetadataItem("FWHM_UM", f"{0.00855:.3f}", "IMAGERY")
    ds = None
    ds = gdal.Open(path)
    assert ds.GetRasterBand(1).GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY") == "0.400"
    assert ds.GetRasterBand(2).GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY") == "0.410"  # 409.6 nm
    ds = None
    src = open_source(path)
    np.testing.assert_allclose(src.wavelengths, RASTER_WL[:6], atol=1e-9)
    np.testing.assert_allclose(src.fwhm, [8.55] * 6, atol=1e-9)


def test_imagery_domain_alone_still_gives_the_wavelengths(tmp_path):
    """A GeoTIFF whose only spectral metadata is GDAL's standard IMAGERY domain (µm)."""
    from osgeo import gdal

    from fers.io import open_source, write_raster

    path = write_raster(str(tmp_path / "imagery.tif"), [np.zeros((4, 5), np.float32)] * 3, None, None)
    ds = gdal.Open(path, gdal.GA_Update)
    for i, (w, f) in enumerate([("0.45", "0.010"), ("0.55", "0.011"), ("0.65", "0.012")]):
        ds.GetRasterBand(i + 1).SetMetadataItem("CENTRAL_WAVELENGTH_UM", w, "IMAGERY")
        ds.GetRasterBand(i + 1).SetMetadataItem("FWHM_UM", f, "IMAGERY")
    ds = None
    src = open_source(path)
    np.testing.assert_allclose(src.wavelengths, [450.0, 550.0, 650.0])
    np.testing.assert_allclose(src.fwhm, [10.0, 11.0, 12.0])
