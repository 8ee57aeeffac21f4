"""Bad input, faults and hostile files: one clear message, exit code, and nothing half-written.

Each case runs through the engine CLI (`fers`) and through `fers-qgis-process run fers:detect`,
asserting the message and that no output (and no temporary file) is left in the output folder.
"""
import os
import pickle
import re
import shutil
import signal
import subprocess

import numpy as np
import pytest

from analyst_helpers import tiny_checkpoint, write_envi
from conftest import VENV_BIN, WEIGHTS, fers, mat_scene, numpy_rx, qgis_process, read_geotiff, write_geotiff
from fers.errors import InputError

AUTHORS_100 = os.path.join(WEIGHTS, "fers-reference", "aviris_ng-100bands")


class Evil:
    """Unpickling this would run a shell command (the marker file proves whether it ran)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _scene(tmp, name="scene.tif", rows=None, cols=None, bands=120, dtype=np.int16, nodata=None, edit=None):
    cube = mat_scene("abu-airport-2")[0][:rows, :cols, :bands].astype(dtype)
    if edit is not None:
        cube = edit(cube)
    return write_geotiff(tmp / name, cube, nodata=nodata)


def _all_nodata(tmp):
    return _scene(tmp, nodata=-1, edit=lambda c: np.full_like(c, -1))


def _nodata_bands(tmp):
    """Bands 12 and 13 filled with the nodata value (bad bands blanked by a processor): no pixel is valid."""
    def blank(c):
        c[:, :, 11:13] = 0
        return c
    return _scene(tmp, nodata=0, edit=blank)


def _constant(tmp):
    return _scene(tmp, edit=lambda c: np.full_like(c, 7))


def _truncated(tmp):
    full = _scene(tmp, name="full.tif")
    data = open(full, "rb").read()
    os.remove(full)
    (tmp / "cut.tif").write_bytes(data[: len(data) * 2 // 3])
    return str(tmp / "cut.tif")


def _not_raster(tmp):
    (tmp / "notes.tif").write_text("field notes, not pixels")
    return str(tmp / "notes.tif")


def _truncated_checkpoint(tmp):
    d = tmp / "ckpt"
    shutil.copytree(AUTHORS_100, d)
    data = (d / "enc.pt").read_bytes()
    (d / "enc.pt").write_bytes(data[:1000])
    return str(d)


def _evil_checkpoint(tmp):
    import torch

    p = tmp / "evil.pt"
    torch.save({"format": "fers-checkpoint", "payload": Evil(tmp / "PWNED")}, p)
    return str(p)


def _pickle_checkpoint(tmp):
    p = tmp / "plain.pkl.pt"
    with open(p, "wb") as f:
        pickle.dump(Evil(tmp / "PWNED"), f)
    return str(p)


# (id, input factory, extra CLI args, extra QGIS params, expected message)
CASES = [
    ("bands-too-many", _scene, ["--bands", "300"], ["BANDS=300"], "asks for the first 300 bands, but the raster has only 120"),
    ("band-list-out-of-range", _scene, ["--band-list", "1-10,500"], ["BAND_LIST=1-10,500"], "band(s) 500 do not exist"),
    ("band-list-empty", _scene, ["--band-list", ","], ["BAND_LIST=,"], "the band list is empty"),
    ("band-list-garbage", _scene, ["--band-list", "a-b"], ["BAND_LIST=a-b"], "is not a band number or a range"),
    ("all-nodata", _all_nodata, [], [], "every pixel is nodata"),
    # STRATEGY=none in QGIS, whose default is auto with a bundled model: these two are about RX and band reading
    ("bands-all-nodata", _nodata_bands, ["--bands", "20"], ["BANDS=20", "STRATEGY=none"],
     "band(s) 12-13 are no data in every pixel (the file's nodata value 0 or NaN/Inf); leave them out (band list "
     "1-11,14-20"),
    ("constant-bands", _constant, [], [], "all valid pixels have the same value"),
    ("single-pixel", lambda t: _scene(t, rows=1, cols=1), [], ["STRATEGY=none"], "RX needs at least 2 valid pixels"),
    ("single-pixel-default-strategy", lambda t: _scene(t, rows=1, cols=1), ["--strategy", "auto"], [],
     "the Spa-FEN needs an image of at least 16×16 pixels"),
    ("not-a-raster", _not_raster, [], [], "is not a raster GDAL can read"),
    ("truncated-geotiff", _truncated, [], [], "truncated or corrupt"),
    ("model-band-mismatch", _scene, ["--strategy", "spectral", "--model", AUTHORS_100, "--bands", "50"],
     ["STRATEGY=spectral", f"MODEL={AUTHORS_100}", "BANDS=50"], "trained on 100 bands, but 50 are selected"),
    ("model-needs-more-bands-than-raster", lambda t: _scene(t, bands=60), ["--strategy", "spectral", "--model", AUTHORS_100],
     ["STRATEGY=spectral", f"MODEL={AUTHORS_100}"], "uses bands up to 100, but the raster has only 60"),
    ("stage1-model-for-fusion", _scene, ["--strategy", "additive", "--model", AUTHORS_100],
     ["STRATEGY=additive", f"MODEL={AUTHORS_100}"], "needs the spatial branch (Spa-FEN)"),
    ("model-on-one-row-raster", lambda t: _scene(t, rows=1), ["--strategy", "spectral", "--model", AUTHORS_100],
     ["STRATEGY=spectral", f"MODEL={AUTHORS_100}"], "needs an image of at least 5×5 pixels"),
    ("device-cuda-without-cuda", _scene, ["--device", "cuda"], ["DEVICE=cuda"], "sees no CUDA GPU"),
]


def _no_output(folder, out):
    assert not os.path.exists(out)
    assert not [p for p in os.listdir(folder) if "partial" in p], os.listdir(folder)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cli_failure(tmp_path, case):
    _, make, args, _, message = case
    out = tmp_path / "out" / "map.tif"
    out.parent.mkdir()
    r = fers("detect", make(tmp_path), out, *args)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert message in last and last.startswith("fers: error: ") and "Traceback" not in r.stderr
    _no_output(out.parent, out)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_qgis_failure(tmp_path, case):
    _, make, _, params, message = case
    out = tmp_path / "out" / "map.tif"
    out.parent.mkdir()
    r = qgis_process("run", "fers:detect", "--", f"INPUT={make(tmp_path)}", *params, f"OUTPUT={out}")
    text = r.stdout + r.stderr
    assert r.returncode != 0
    assert "Traceback" not in text
    # an unreadable file is refused by QGIS itself before our code runs; either message is clear
    assert message in text or ("not-a-raster" in case[0] or "truncated" in case[0]) and "INPUT" in text, text
    _no_output(out.parent, out)


@pytest.mark.parametrize("make,message", [
    (_truncated_checkpoint, "truncated, corrupt or not a PyTorch weights file"),
    (_evil_checkpoint, "refused for safety"),
    (_pickle_checkpoint, "refused for safety"),
])
def test_bad_checkpoints_are_refused_and_never_executed(tmp_path, make, message):
    tif = _scene(tmp_path, bands=100)
    model = make(tmp_path)
    out = tmp_path / "map.tif"
    r = fers("detect", tif, out, "--strategy", "spectral", "--model", model)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    r = qgis_process("run", "fers:detect", "--", f"INPUT={tif}", "STRATEGY=spectral", f"MODEL={model}", f"OUTPUT={out}")
    assert r.returncode != 0 and message in r.stdout + r.stderr
    assert not (tmp_path / "PWNED").exists() and not out.exists()


def test_unwritable_output_and_output_equal_input(tmp_path):
    tif = _scene(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file instead
            target = tmp_path / "scene.tif" / "map.tif"
            expected = "output folder does not exist"
        else:
            target, expected = locked / "map.tif", "not writable"
        r = fers("detect", tif, target)
        assert r.returncode == 2 and expected in r.stderr
        r = qgis_process("run", "fers:detect", "--", f"INPUT={tif}", f"OUTPUT={target}")
        assert r.returncode != 0 and "Traceback" not in r.stdout + r.stderr
    finally:
        locked.chmod(0o700)
    r = fers("detect", tif, tif)
    assert r.returncode == 2 and "output path is the input itself" in r.stderr
    before = open(tif, "rb").read()
    r = qgis_process("run", "fers:detect", "--", f"INPUT={tif}", f"OUTPUT={tif}")
    assert r.returncode != 0 and "output path is the input itself" in r.stdout + r.stderr
    assert open(tif, "rb").read() == before


def test_rank_deficient_and_constant_band_subsets_still_give_finite_maps(tmp_path):
    def dup_and_flat(c):
        c = np.concatenate([c[:, :, :40], c[:, :, :40]], axis=2)
        c[:, :, 5] = 3  # one constant band
        return c

    tif = _scene(tmp_path, edit=dup_and_flat)
    r = fers("detect", tif, tmp_path / "m.tif")
    assert r.returncode == 0 and "singular (rank" in r.stderr
    assert np.isfinite(read_geotiff(tmp_path / "m.tif")[0]).all()
    # one row, more bands than pixels
    row = _scene(tmp_path, name="row.tif", rows=1)
    r = fers("detect", row, tmp_path / "r.tif")
    assert r.returncode == 0 and "only 100 valid pixels" in r.stderr
    assert np.isfinite(read_geotiff(tmp_path / "r.tif")[0]).all()


def test_interrupting_detection_leaves_no_partial_map(tmp_path):
    big = np.tile(mat_scene("abu-urban-4")[0][:, :, :200], (6, 6, 1))  # 600×600×200
    tif = write_geotiff(tmp_path / "big.tif", big)
    out = tmp_path / "out" / "map.tif"
    out.parent.mkdir()
    # the Spe-FEN in 32-px tiles: ~360 tiles, each reported, so the run is interrupted in the middle of its
    # work whatever the machine's speed (a fixed delay once landed in interpreter start-up on a loaded machine)
    p = subprocess.Popen([os.path.join(VENV_BIN, "fers"), "detect", tif, str(out), "--bands", "100", "--strategy",
                          "spectral", "--model", AUTHORS_100, "--tile-size", "32", "--device", "cpu"],
                         stderr=subprocess.PIPE, text=True,
                         # a suite started in the background by a non-interactive shell inherits SIGINT ignored,
                         # and so would this child (Python then never raises KeyboardInterrupt): restore it
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in p.stderr:
        seen.append(line)
        if "spectral features, tile" in line:
            break
    assert any(x.startswith("input big.tif: 600×600 px, 200 bands") for x in seen) and "tile" in seen[-1], seen
    p.send_signal(signal.SIGINT)
    rest = p.communicate(timeout=60)[1]
    err = "".join(seen) + rest
    assert p.returncode == 130 and "no output was written" in err and "Traceback" not in err
    _no_output(out.parent, out)


def test_two_runs_with_the_same_seed_are_bit_identical(tmp_path):
    tif = _scene(tmp_path, bands=100)
    for i in (1, 2):
        r = fers("detect", tif, tmp_path / f"m{i}.tif", "--strategy", "spectral", "--model", AUTHORS_100)
        assert r.returncode == 0, r.stderr
    a, b = read_geotiff(tmp_path / "m1.tif")[0], read_geotiff(tmp_path / "m2.tif")[0]
    assert np.array_equal(a, b)


def test_wavelengths_outside_the_models_range_are_refused(tmp_path):
    """A thermal (8–12 µm) raster given to a VNIR model: resampling would copy one edge band into every
    model band and still draw a map, so the run must stop instead."""
    cube = mat_scene("abu-airport-2")[0][:, :, :30].transpose(2, 0, 1).astype(np.float32)
    envi = write_envi(tmp_path / "lwir.img", cube, wavelengths=np.linspace(8000, 12000, 30))
    model = tiny_checkpoint(tmp_path / "vnir.pt", 12, wavelengths=[float(w) for w in np.linspace(450, 900, 12)])
    message = "do not cover the model's (450.0 nm–900.0 nm)"
    out = tmp_path / "out" / "map.tif"
    out.parent.mkdir()
    r = fers("detect", envi, out, "--strategy", "spectral", "--model", model)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = qgis_process("run", "fers:detect", "--", f"INPUT={envi}", "STRATEGY=spectral", f"MODEL={model}", f"OUTPUT={out}")
    assert r.returncode != 0 and message in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr
    _no_output(out.parent, out)


def test_nan_and_inf_pixels_are_left_out_and_stay_nodata(tmp_path):
    cube = mat_scene("abu-airport-2")[0][:, :, :60].astype(np.float32)
    bad = np.zeros(cube.shape[:2], bool)
    bad[3, 4] = bad[50, 60] = bad[99, 0] = True
    bad[10, 10:20] = True
    cube[3, 4, 7] = np.nan  # one band is enough to make the pixel invalid
    cube[50, 60, :] = np.inf
    cube[99, 0, 59] = -np.inf
    cube[10, 10:20, 30] = np.nan
    tif = write_geotiff(tmp_path / "holes.tif", cube)
    expected = numpy_rx(cube[~bad].astype(np.float64))  # RX of the valid pixels alone
    for tool, out in (("cli", tmp_path / "a.tif"), ("qgis", tmp_path / "b.tif")):
        r = (fers("detect", tif, out) if tool == "cli" else
             qgis_process("run", "fers:detect", "--", f"INPUT={tif}", "STRATEGY=none", f"OUTPUT={out}"))
        assert r.returncode == 0, r.stdout + r.stderr
        scores, _, _, nodata = read_geotiff(out)
        assert nodata == -9999.0 and np.array_equal(scores[0] == nodata, bad)
        np.testing.assert_allclose(scores[0][~bad], expected, rtol=2e-4, atol=1e-6)


def test_a_job_too_large_for_the_memory_left_is_refused_before_reading(tmp_path, monkeypatch):
    """The estimate (fers.memory: 3 × the float32 cube + 1 GB with the networks, 1.6 × + 0.3 GB for RX) against
    a cap of 500 MB: fusion on 100 bands of a 100×100 scene (4 MB cube → 1.01 GB) is refused with one line and
    no output, through the engine, the CLI and qgis_process; RX on it (0.30 GB) runs."""
    from fers.memory import check_fits
    from fers.pipeline import detect

    scene = _scene(tmp_path, bands=120)  # abu-airport-2: 100×100 px
    message = "100×100 px × 100 bands needs about 1.0 GB of memory, but 0.5 GB are left (FERS_MEMORY_LIMIT_MB)"
    monkeypatch.setenv("FERS_MEMORY_LIMIT_MB", "500")
    with pytest.raises(InputError, match=re.escape(message)):
        detect(scene, str(tmp_path / "e.tif"), bands=100, strategy="additive", device="cpu")
    assert not (tmp_path / "e.tif").exists()
    assert detect(scene, None, bands=100, strategy="none", device="cpu").valid.all()
    check_fits(100, 100, 100, "rx")  # 0.30 GB: fits
    env = {"FERS_MEMORY_LIMIT_MB": "500"}
    out = tmp_path / "out" / "map.tif"
    out.parent.mkdir()
    r = fers("detect", scene, out, "--bands", "100", "--strategy", "additive", env=env)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert "use fewer bands, or plain RX (strategy none, about 0.3 GB), or free memory" in r.stderr
    _no_output(out.parent, out)
    r = qgis_process("run", "fers:detect", "--", f"INPUT={scene}", "BANDS=100", "STRATEGY=additive", f"OUTPUT={out}",
                     env=env)
    assert r.returncode != 0 and message in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr
    _no_output(out.parent, out)
    monkeypatch.setenv("FERS_MEMORY_LIMIT_MB", "lots")
    with pytest.raises(InputError, match="FERS_MEMORY_LIMIT_MB must be a number of megabytes"):
        check_fits(1, 1, 1, "rx")


def test_the_memory_left_in_a_container_counts_its_page_cache_as_free(tmp_path, monkeypatch):
    """cgroup v2: limit 8 GiB, 7 GiB in use of which 6 GiB page cache → 7 GiB left, not 1."""
    from fers import memory

    files = {"/sys/fs/cgroup/memory.max": str(8 * 1024 ** 3), "/sys/fs/cgroup/memory.current": str(7 * 1024 ** 3),
             "/sys/fs/cgroup/memory.stat": f"anon {1024 ** 3}\nfile {6 * 1024 ** 3}\n"}
    real_open = open

    def fake_open(path, *a, **kw):
        return real_open(tmp_path / os.path.basename(path), *a, **kw) if path in files else real_open(path, *a, **kw)

    for path, text in files.items():
        (tmp_path / os.path.basename(path)).write_text(text)
    monkeypatch.setattr("builtins.open", fake_open)
    assert memory._cgroup() == 7 * 1024 ** 3


def _vrt_missing_source(tmp, warped):
    """A VRT whose source file name holds a line break and does not exist: GDAL's own error text then runs over
    two lines, as GDAL >= 3.10's often do ("...\\nMay be caused by: ..."). A warped VRT opens its source when it is
    opened, a plain one when a band is read."""
    src = "missing\nscene.tif"
    if warped:
        xml = ('<VRTDataset rasterXSize="4" rasterYSize="4" subClass="VRTWarpedDataset">'
               '<VRTRasterBand dataType="Float32" band="1" subClass="VRTWarpedRasterBand"/>'
               f'<GDALWarpOptions><SourceDataset relativeToVRT="1">{src}</SourceDataset></GDALWarpOptions>'
               '</VRTDataset>')
    else:
        xml = ('<VRTDataset rasterXSize="4" rasterYSize="4">'
               + "".join(f'<VRTRasterBand dataType="Float32" band="{b}"><SimpleSource>'
                         f'<SourceFilename relativeToVRT="1">{src}</SourceFilename><SourceBand>{b}</SourceBand>'
                         '</SimpleSource></VRTRasterBand>' for b in (1, 2, 3)) + '</VRTDataset>')
    path = tmp / ("warped.vrt" if warped else "plain.vrt")
    path.write_text(xml)
    return str(path)


@pytest.mark.parametrize("warped,message", [(True, "is not a raster GDAL can read"), (False, "could not read rows 1")])
def test_a_gdal_message_over_several_lines_stays_one_line(tmp_path, warped, message):
    out = tmp_path / "out" / "map.tif"
    out.parent.mkdir()
    r = fers("detect", _vrt_missing_source(tmp_path, warped), out)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]  # a plain VRT opens, so the run's first line comes before it
    assert last.startswith("fers: error: ") and message in last, r.stderr
    assert "missing scene.tif: No such file or directory" in last and "Traceback" not in r.stderr
    _no_output(out.parent, out)
