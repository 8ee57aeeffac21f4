"""Hostile, lying and faulty files (issue 20, classes 4-7): memory bounded before work, files that lie, errors
instead of crashes, and files that must not make FERS run code or fetch anything.

Each case runs `fers -q` and checks: exit code 2, exactly one line on stderr (no traceback, no raw GDAL
line), no output file, the inputs' bytes unchanged, no marker file written by code in the input, and no request
to a local HTTP server that the input points at. A batch of them runs through `fers-qgis-process` too.
"""
import hashlib
import http.server
import os
import resource
import struct
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest

from conftest import VENV_BIN, fers, qgis_process, write_geotiff


@pytest.fixture
def server():
    """A local HTTP server that records every request it gets (and answers 404)."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    srv.shutdown()


def _sha(paths):
    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths if os.path.isfile(p)}


def _cube(rows=20, cols=20, bands=6, seed=0):
    return np.random.default_rng(seed).integers(100, 1000, (rows, cols, bands)).astype(np.int16)


def _check_refused(r, out_dir, message, inputs_before, tmp_path, hits=()):
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(err) == 1 and err[0].startswith("fers: error: ") and message in err[0], r.stderr
    assert err[0].isprintable() and len(err[0]) <= 1100
    assert "Traceback" not in r.stderr and "ERROR 1" not in r.stderr
    assert not os.listdir(out_dir), os.listdir(out_dir)
    assert _sha(inputs_before) == inputs_before
    assert not (tmp_path / "MARKER").exists()
    assert not hits, hits


# many refusals through the CLI's own main() in one process: a `fers` start costs seconds (torch), a refusal none
BATCH = r"""
import contextlib, io, json, sys
from fers.cli import main
out = []
for argv in json.load(sys.stdin):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    out.append([rc, err.getvalue()])
sys.stdout.write(json.dumps(out))
"""


def refused(tmp_path, out_dir, cases, env=None, hits=(), timeout=300):
    """Run ``cases`` [(argv, message), ...] through fers.cli.main in one process; check each as
    ``_check_refused`` does (the inputs' bytes are those of every file in tmp_path beforehand)."""
    import json

    before = _sha([str(p) for p in tmp_path.iterdir()])
    r = subprocess.run([os.path.join(VENV_BIN, "python"), "-c", BATCH], input=json.dumps(
        [["-q"] + [str(a) for a in argv] for argv, _ in cases]), capture_output=True, text=True,
        env=dict(os.environ, **(env or {})), timeout=timeout)
    assert r.returncode == 0 and "ERROR" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    for (argv, message), (rc, err) in zip(cases, json.loads(r.stdout)):
        _check_refused(subprocess.CompletedProcess(argv, rc, "", err), out_dir, message, before, tmp_path, hits)


def mat_v5_zeros(path, shape, name="data"):
    """A MATLAB v5 file whose one compressed double array decodes to prod(shape) × 8 bytes of zeros, written in
    chunks (the test never holds the array): 1000×1000×130 decodes to 1.04 GB."""
    n = int(np.prod(shape))

    def element(dtype, payload):
        return struct.pack("<II", dtype, len(payload)) + payload + b"\0" * ((-len(payload)) % 8)

    head = (element(6, struct.pack("<II", 6, 0)) + element(5, struct.pack(f"<{len(shape)}i", *shape))
            + element(1, name.encode()))
    comp = zlib.compressobj(1)
    parts = [comp.compress(struct.pack("<II", 14, len(head) + 8 + n * 8) + head + struct.pack("<II", 9, n * 8))]
    chunk, left = b"\0" * (1 << 22), n * 8
    while left:
        parts.append(comp.compress(chunk[:min(left, len(chunk))]))
        left -= min(left, len(chunk))
    parts.append(comp.flush())
    z = b"".join(parts)
    header = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    with open(path, "wb") as f:
        f.write(header + struct.pack("<II", 15, len(z)) + z)
    return str(path)


def _envi(tmp_path, claim_bands=12):
    from osgeo import gdal

    gdal.UseExceptions()
    cube = _cube(bands=6)
    ds = gdal.GetDriverByName("ENVI").Create(str(tmp_path / "e.img"), 20, 20, 6, gdal.GDT_Int16)
    for i in range(6):
        ds.GetRasterBand(i + 1).WriteArray(cube[:, :, i])
    ds = None
    hdr = tmp_path / "e.hdr"
    hdr.write_text(hdr.read_text().replace("bands   = 6", f"bands   = {claim_bands}"))
    assert f"bands   = {claim_bands}" in hdr.read_text()
    return str(tmp_path / "e.img"), [str(tmp_path / "e.img"), str(hdr)]


def _python_vrt(tmp_path):
    src = write_geotiff(tmp_path / "src.tif", _cube())
    marker = tmp_path / "MARKER"
    bands = "".join(f"""<VRTRasterBand dataType="Float32" band="{b}" subClass="VRTDerivedRasterBand">
<PixelFunctionType>f</PixelFunctionType><PixelFunctionLanguage>Python</PixelFunctionLanguage>
<PixelFunctionCode><![CDATA[
def f(in_ar, out_ar, *args, **kwargs):
    open({str(marker)!r}, "w").write("ran")
    out_ar[:] = in_ar[0]
]]></PixelFunctionCode>
<SimpleSource><SourceFilename relativeToVRT="1">src.tif</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource>
</VRTRasterBand>""" for b in range(1, 7))
    (tmp_path / "py.vrt").write_text(f'<VRTDataset rasterXSize="20" rasterYSize="20">{bands}</VRTDataset>')
    return str(tmp_path / "py.vrt"), [src, str(tmp_path / "py.vrt")]


def _remote_vrt(tmp_path, url):
    (tmp_path / "remote.vrt").write_text(
        f'<VRTDataset rasterXSize="20" rasterYSize="20"><VRTRasterBand dataType="Float32" band="1"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">/vsicurl/{url}/x.tif</SourceFilename><SourceBand>1</SourceBand>'
        f'</SimpleSource></VRTRasterBand></VRTDataset>')
    return str(tmp_path / "remote.vrt")


def test_python_pixel_functions_never_run_whatever_the_environment_says(tmp_path):
    """GDAL does run such a VRT when the environment allows it (so the marker can appear): FERS never does."""
    vrt, inputs = _python_vrt(tmp_path)
    from osgeo import gdal

    r = subprocess.run([os.path.join(VENV_BIN, "python"), "-c", "from osgeo import gdal; gdal.UseExceptions(); "
                        f"gdal.Open({vrt!r}).ReadAsArray()"], env=dict(os.environ, GDAL_VRT_ENABLE_PYTHON="YES"),
                       capture_output=True, text=True)
    if not (tmp_path / "MARKER").exists():
        pytest.skip(f"this GDAL ({gdal.__version__}) cannot run Python pixel functions: {r.stderr[-200:]}")
    (tmp_path / "MARKER").unlink()
    out = tmp_path / "out"
    out.mkdir()
    refused(tmp_path, out, [(("detect", vrt, out / "map.tif"), "holds Python code")],
            env={"GDAL_VRT_ENABLE_PYTHON": "YES"})
    # the engine's own switch, not only the check of the file: a reader that skips the check still runs nothing
    r = subprocess.run([os.path.join(VENV_BIN, "python"), "-c", "from fers.io.raster import gdal_exceptions\n"
                        f"with gdal_exceptions() as gdal:\n    gdal.Open({vrt!r}).ReadAsArray()"],
                       env=dict(os.environ, GDAL_VRT_ENABLE_PYTHON="YES"), capture_output=True, text=True)
    assert r.returncode != 0 and "disabled" in r.stderr and not (tmp_path / "MARKER").exists()


def test_nothing_is_fetched_unless_asked(tmp_path, server):
    url, hits = server
    out = tmp_path / "out"
    out.mkdir()
    vrt = _remote_vrt(tmp_path, url)
    refused(tmp_path, out, [(("detect", path, out / "map.tif"), "is on the network") for path in (
        f"/vsicurl/{url}/a.tif", f"{url}/a.tif", f"/vsizip//vsicurl/{url}/a.zip/x.tif", vrt)], hits=hits)
    # GDAL's own switch, under the check: the engine's GDAL layer refuses the URL by itself
    r = subprocess.run([os.path.join(VENV_BIN, "python"), "-c", "from fers.io.raster import gdal_exceptions\n"
                        f"with gdal_exceptions() as gdal:\n    gdal.Open('/vsicurl/{url}/b.tif')"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and not hits
    # asked for: the request is made (and the 404 is one line)
    r = fers("-q", "--allow-network", "info", f"/vsicurl/{url}/c.tif")
    assert r.returncode == 2 and hits and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_non_regular_files_are_refused_instead_of_hanging(tmp_path):
    os.mkfifo(tmp_path / "pipe.tif")
    os.mkfifo(tmp_path / "pipe.npy")
    good = write_geotiff(tmp_path / "good.tif", _cube())
    one = write_geotiff(tmp_path / "one.tif", _cube(bands=1).astype(np.float32))
    out = tmp_path / "out"
    out.mkdir()
    # a FIFO beside a raster (its ENVI header) or named inside a VRT blocks GDAL as well
    side = write_geotiff(tmp_path / "side.tif", _cube())
    os.mkfifo(tmp_path / "side.hdr")
    (tmp_path / "v.vrt").write_text('<VRTDataset rasterXSize="20" rasterYSize="20"><VRTRasterBand dataType="Float32" '
                                    'band="1"><SimpleSource><SourceFilename relativeToVRT="1">pipe.tif</SourceFilename>'
                                    '</SimpleSource></VRTRasterBand></VRTDataset>')
    refused(tmp_path, out, [
        (("detect", tmp_path / "pipe.tif", out / "m.tif"), "is a FIFO (named pipe), not a file"),
        (("info", tmp_path / "pipe.tif"), "is a FIFO"), (("evaluate", one, tmp_path / "pipe.npy"), "is a FIFO"),
        (("evaluate", tmp_path / "pipe.npy", one), "is a FIFO"),
        (("detect", good, out / "m.tif", "--strategy", "spectral", "--model", tmp_path / "pipe.npy"), "is a FIFO"),
        (("evaluate", one, tmp_path), "is a folder"), (("detect", "/dev/zero", out / "m.tif"), "is a device"),
        (("info", side), "is a FIFO"), (("info", tmp_path / "v.vrt"), "is a FIFO")], timeout=120)


def test_a_compressed_mat_is_sized_before_it_is_decoded(tmp_path):
    """A few MB on disk, 1.04 GB decoded: refused under a 200 MB cap with the peak RSS of a refused tiny job, where
    decoding first peaked at 1.48 GB."""
    bomb = mat_v5_zeros(tmp_path / "bomb.mat", (1000, 1000, 130))
    assert os.path.getsize(bomb) < 8 * 1024 ** 2  # zlib level 1, for speed; level 9 makes it 1 MB
    before = _sha([bomb])
    out = tmp_path / "out"
    out.mkdir()
    # the peak RSS is measured by a small wrapper process: a child's ru_maxrss starts at the high-water mark of the
    # memory it had before exec, and a child of this test process (fork or posix_spawn alike) has this process's,
    # 4-5 GB late in a pytest worker on Debian 13, which hid the fers process's 0.25 GB
    argv = [os.path.join(VENV_BIN, "fers"), "-q", "detect", bomb, str(out / "m.tif")]
    wrapper = ("import os, sys; pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ); "
               "_, status, usage = os.wait4(pid, 0); print(usage.ru_maxrss); "
               "sys.exit(os.waitstatus_to_exitcode(status))")
    r = subprocess.run([sys.executable, "-c", wrapper, *argv], capture_output=True, text=True,
                       env=dict(os.environ, FERS_MEMORY_LIMIT_MB="200"), timeout=300)
    peak_kb = int(r.stdout.split()[-1])
    _check_refused(subprocess.CompletedProcess(argv, r.returncode, "", r.stderr), out,
                   "its variables decode to 1.0 GB", before, tmp_path)
    assert peak_kb < 500 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"  # KB on Linux
    # the same header reader on a small file reads its values
    small = mat_v5_zeros(tmp_path / "small.mat", (7, 5, 4))
    r = fers("info", small)
    assert r.returncode == 0 and '"width": 5' in r.stdout and '"bands": 4' in r.stdout, r.stderr


def test_metadata_and_parameters_are_bounded_before_allocating(tmp_path):
    import torch

    from analyst_helpers import tiny_checkpoint

    tif = write_geotiff(tmp_path / "s.tif", _cube(bands=12))
    out = tmp_path / "out"
    out.mkdir()
    good = tiny_checkpoint(tmp_path / "good.pt", 12)
    obj = torch.load(good, weights_only=True)
    cases = []
    for name, meta in (("millions.pt", dict(obj["meta"], bands=5_000_000)),
                       ("text.pt", dict(obj["meta"], bands="12")),
                       ("indices.pt", dict(obj["meta"], band_indices="0-11"))):
        torch.save(dict(obj, meta=meta), tmp_path / name)
        cases.append((("detect", tif, out / "m.tif", "--strategy", "spectral", "--model", tmp_path / name),
                      "is a damaged FERS checkpoint"))
    cases.append((("detect", tif, out / "m.tif", "--band-list", "1-20000000"), "goes past band 100000"))
    cases.append((("detect", tif, out / "m.tif", "--band-list", ",".join(str(i) for i in range(13, 15000))),
                  "band(s) 13-14999 do not exist"))
    # fers evaluate: a 3000×3000 map (128 bytes/px at the peak) does not fit under 300 MB
    big = tmp_path / "big.npy"
    np.lib.format.open_memmap(big, "w+", np.float32, (3000, 3000)).flush()
    cases.append((("evaluate", big, big), "evaluating a 3000×3000 px score map needs about"))
    refused(tmp_path, out, cases, env={"FERS_MEMORY_LIMIT_MB": "300"})


def test_files_that_lie_are_errors(tmp_path):
    from osgeo import gdal, osr

    out = tmp_path / "out"
    out.mkdir()
    envi, files = _envi(tmp_path, claim_bands=12)
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "c.tif"), 10, 10, 3, gdal.GDT_CFloat32)
    ds = None
    refused(tmp_path, out, [(("detect", envi, out / "m.tif"), "is truncated: its header declares 20×20 px × 12 bands"),
                            (("detect", tmp_path / "c.tif", out / "m.tif"), "holds complex samples (CFloat32)")])
    # signed bytes read as QGIS shows them: stored 200 is -56
    stored = np.random.default_rng(1).integers(0, 256, (20, 20, 3)).astype(np.uint8)
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "sb.tif"), 20, 20, 3, gdal.GDT_Byte,
                                              ["PIXELTYPE=SIGNEDBYTE"])
    # GDAL >= 3.7 makes that an Int8 band (deprecated, still written so): the same bytes are then given as int8,
    # or GDAL would clip 200 to 127 on the way in
    as_written = stored if ds.GetRasterBand(1).DataType == gdal.GDT_Byte else stored.view(np.int8)
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(as_written[:, :, i])
    ds = None
    from fers.io import open_source

    cube, valid = open_source(str(tmp_path / "sb.tif")).read([0, 1, 2])
    np.testing.assert_array_equal(cube, stored.astype(np.int8).transpose(2, 0, 1).astype(np.float32))
    # GCPs only: the map and the mask keep them
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "g.tif"), 20, 20, 6, gdal.GDT_Int16)
    for i in range(6):
        ds.GetRasterBand(i + 1).WriteArray(_cube()[:, :, i])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    gcps = [gdal.GCP(10.0, 50.0, 0, 0, 0), gdal.GCP(10.2, 50.0, 0, 20, 0), gdal.GCP(10.0, 49.8, 0, 0, 20)]
    ds.SetGCPs(gcps, srs.ExportToWkt())
    ds = None
    r = fers("detect", tmp_path / "g.tif", out / "map.tif", "--mask", out / "mask.tif")
    assert r.returncode == 0 and "no georeferencing" not in r.stderr, r.stderr
    for f in ("map.tif", "mask.tif"):
        d = gdal.Open(str(out / f))
        assert d.GetGeoTransform(can_return_null=True) is None and d.GetGCPCount() == 3
        assert [(g.GCPX, g.GCPY, g.GCPPixel, g.GCPLine) for g in d.GetGCPs()] == [
            (g.GCPX, g.GCPY, g.GCPPixel, g.GCPLine) for g in gcps]
        assert osr.SpatialReference(d.GetGCPProjection()).GetAuthorityCode(None) == "4326"


def test_errors_not_crashes(tmp_path):
    import h5py

    out = tmp_path / "out"
    out.mkdir()
    tif = write_geotiff(tmp_path / "s.tif", _cube())
    one = write_geotiff(tmp_path / "one.tif", _cube(bands=1).astype(np.float32))
    # a truncated v7.3 .mat
    with h5py.File(tmp_path / "full.mat", "w", userblock_size=512) as f:
        f["data"] = _cube(bands=5).astype(np.float64).T
    with open(tmp_path / "full.mat", "r+b") as f:  # MATLAB's own 128-byte header in the user block
        f.write(b"MATLAB 7.3 MAT-file".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0200) + b"IM")
    from fers.io import open_source

    assert open_source(str(tmp_path / "full.mat")).band_count == 5
    data = (tmp_path / "full.mat").read_bytes()
    (tmp_path / "cut.mat").write_bytes(data[:len(data) // 2])
    # an object array .npy (pickled), a truncated .pt, a .mat variable name with terminal escapes
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    (tmp_path / "cut.pt").write_bytes(open(os.path.join(os.path.dirname(__file__), "..", "resources", "models",
                                                        "fers-aviris-100.pt"), "rb").read()[:5000])
    import scipy.io

    scipy.io.savemat(tmp_path / "esc.mat", {"data": _cube(bands=4).astype(np.float64),
                                            "cube2": _cube(bands=4).astype(np.float64)})
    raw = (tmp_path / "esc.mat").read_bytes().replace(b"cube2", b"\x1b[2J\x1b")
    (tmp_path / "esc.mat").write_bytes(raw)
    refused(tmp_path, out, [
        (("detect", tmp_path / "cut.mat", out / "m.tif"), "truncated or corrupt MATLAB"),
        (("evaluate", one, tmp_path / "obj.npy"), "holds Python objects"),
        (("detect", tmp_path / "obj.npy", out / "m.tif"), "holds Python objects"),
        (("detect", tif, out / "m.tif", "--strategy", "spectral", "--model", tmp_path / "cut.pt"),
         "truncated, corrupt or not a PyTorch weights file"),
        # the escape sequences in a variable's name are gone from the message (_check_refused: one printable line)
        (("detect", tmp_path / "esc.mat", out / "m.tif"), "several 3-D arrays (")])
    # a file name that matplotlib's mathtext cannot parse, as the ROC title
    weird = tmp_path / "m$\\foo{$.tif"
    os.link(one, weird)
    truth = np.zeros((20, 20), np.uint8)
    truth[3:6, 4:7] = 1
    gt = write_geotiff(tmp_path / "gt.tif", truth)
    r = fers("-q", "evaluate", weird, gt, "--roc", out / "roc.png")
    assert r.returncode == 0 and (out / "roc.png").exists(), r.stderr
    os.remove(out / "roc.png")
    # disk full while writing the map (a file-size limit reads the same): one line, no raw GDAL errors, no file
    big = write_geotiff(tmp_path / "big.tif", np.random.default_rng(0).random((200, 200, 6)).astype(np.float32))
    before = _sha([big])
    r = subprocess.run([os.path.join(VENV_BIN, "fers"), "-q", "detect", big, str(out / "m.tif")], capture_output=True,
                       text=True, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000)))
    _check_refused(r, out, "no space left on the disk", before, tmp_path)


def test_the_same_through_qgis_process(tmp_path, server):
    """The plugin's front: each refusal is the engine's one line, no output, nothing run or fetched. QGIS loads a
    raster parameter itself before any algorithm runs: under GDAL_VRT_ENABLE_PYTHON=YES in QGIS's own environment
    QGIS would run the VRT's code (and rewrite the file) on its own; the plugin's refusal comes first for the
    network (checkParameterValues), and the VRT's code is not run here, where QGIS's GDAL keeps its default."""
    url, hits = server
    out = tmp_path / "out"
    out.mkdir()
    vrt, inputs = _python_vrt(tmp_path)
    envi, files = _envi(tmp_path)
    remote = _remote_vrt(tmp_path, url)
    one = write_geotiff(tmp_path / "one.tif", _cube(bands=1).astype(np.float32))
    before = _sha(inputs + files + [remote, one])
    cases = [(("fers:detect", f"INPUT={vrt}"), "holds Python code"),
             (("fers:detect", f"INPUT={envi}"), "is truncated"),
             (("fers:detect", f"INPUT={remote}"), "is on the network"),
             (("fers:detect", f"INPUT={one}", "BAND_LIST=1-20000000"), "goes past band 100000"),
             (("fers:evaluate", f"SCORE=/vsicurl/{url}/s.tif", f"GROUND_TRUTH={one}"), "is on the network")]
    for (alg, *params), message in cases:
        dest = "ROC" if alg == "fers:evaluate" else "OUTPUT"
        r = qgis_process("run", alg, "--", *params, f"{dest}={out / 'o.tif' if dest == 'OUTPUT' else out / 'r.png'}",
                         timeout=120)
        text = r.stdout + r.stderr
        assert r.returncode != 0 and message in text and "Traceback" not in text, (alg, params, text[-2000:])
        assert not os.listdir(out), os.listdir(out)
    assert _sha(list(before)) == before
    # the URL given as SCORE is refused before QGIS 3.22 loads it; a VRT naming a URL is opened by QGIS's own
    # layer loading before any algorithm runs (QGIS's GDAL, QGIS's settings: README), so only FERS's refusal is
    # checked. qgis_process of QGIS 3.40 sends one HEAD for a URL given as a raster parameter before it asks the
    # algorithm (outside the plugin's reach, said in README); FERS's own check makes no request at all
    assert not (tmp_path / "MARKER").exists(), hits
    from qgis.core import Qgis

    if Qgis.QGIS_VERSION_INT < 34000:
        assert "/s.tif" not in hits, hits
    del hits[:]
    from fers.errors import FersError
    from fers.io.guard import check_input

    with pytest.raises(FersError, match="is on the network"):
        check_input(f"/vsicurl/{url}/s.tif", "SCORE")
    assert hits == [], hits


def test_a_resume_file_from_other_background_data_or_settings_is_refused(tmp_path):
    """train/loop.py: the resume file records the background files' fingerprint (path, size, mtime) and the
    settings; a run over other or changed files, or with other settings, is refused unless restarted."""
    import torch

    from fers.errors import ModelError
    from fers.train.data import fingerprint
    from fers.train.loop import TrainConfig, Trainer, TrainTask

    scenes = [write_geotiff(tmp_path / f"bg{i}.tif", _cube(seed=i)) for i in range(2)]
    first = fingerprint(scenes)

    class Sampler:
        def batch(self, n):
            return np.zeros((n, 3), np.float32)

        def epoch_steps(self, batch):
            return 1

        def get_state(self):
            return {}

        def set_state(self, state):
            pass

    def trainer(data, lr=0.1):
        module = torch.nn.Module()
        module.w = torch.nn.Parameter(torch.tensor(1.0))
        task = TrainTask(module, lambda m, x: (m.w ** 2, {}), lambda p, h: open(p, "w").write("m"), "toy")
        return Trainer(task, Sampler(), np.zeros((2, 3), np.float32),
                       TrainConfig(epochs=2, batch=2, lr=lr, steps_per_epoch=1), str(tmp_path / "m.pt"),
                       hyper={"data": data})

    trainer(first)._save_resume(1, {"epochs": []}, None)
    assert trainer(first)._load_resume()[0] == 1  # the same files and settings resume
    os.utime(scenes[1], ns=(1, 1))  # the same path, changed since
    changed = fingerprint(scenes)
    assert changed != first
    for data, lr, message in ((changed, 0.1, "on other background data"), (first[:1], 0.1, "other background data"),
                              (first, 0.2, "it was started with lr=0.1, now lr=0.2")):
        with pytest.raises(ModelError, match=message):
            trainer(data, lr).fit(resume=True)
    assert trainer(changed).fit(resume=False)["best_epoch"] is not None  # --restart: starts over
    (tmp_path / "m.pt.resume.pt").write_bytes(b"not a resume file")
    with pytest.raises(ModelError, match="not a PyTorch weights file"):
        trainer(first).fit(resume=True)
