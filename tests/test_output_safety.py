"""Nothing lost, nothing left: outputs that name an input, numbers checked before writing, signals, stale files.

Every case checks the exit code, one line on stderr (no traceback), no file left behind (not even a hidden
temporary one) and the inputs' bytes unchanged (sha256). Most CLI cases call ``fers.cli.main`` in this
process (the code `fers` runs, without a torch start-up per case); the signal cases, a few CLI cases and the
QGIS cases start real processes (`fers`, `fers-qgis-process`).
"""
import hashlib
import os
import signal
import subprocess
import time
import zipfile

import numpy as np
import pytest

from analyst_helpers import tiny_checkpoint
from conftest import VENV_BIN, fers, mat_scene, qgis_process, write_geotiff


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def files(folder, qgis=False):
    """Every file under ``folder`` (hidden ones too) with its sha256. ``qgis``: without the .aux.xml files QGIS
    itself writes beside a raster when it loads it as a layer (GDAL's statistics; the raster is unchanged)."""
    out = {}
    for root, _, names in os.walk(folder):
        for n in names:
            if qgis and n.endswith(".aux.xml"):
                continue
            p = os.path.join(root, n)
            out[os.path.relpath(p, folder)] = sha(p) if os.path.isfile(p) and not os.path.islink(p) else "link"
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A small crop of a real scene (40×40 px, 12 bands), its ground truth, a checkpoint, as a folder to copy."""
    d = tmp_path_factory.mktemp("safety")
    cube, gt = mat_scene("abu-airport-2")
    write_geotiff(d / "x.tif", cube[:40, :40, :12].astype(np.int16))
    write_geotiff(d / "gt.tif", (gt[:40, :40] > 0).astype(np.uint8), epsg=None)
    tiny_checkpoint(d / "a.pt", 12)
    tiny_checkpoint(d / "b.pt", 12, seed=1)
    return d


@pytest.fixture
def work(tmp_path, sources, monkeypatch):
    """A fresh copy of the sources as the working directory (relative spellings are relative to it)."""
    import shutil

    for p in sources.iterdir():
        shutil.copy(p, tmp_path / p.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(capsys, monkeypatch):
    """fers.cli.main in this process: (exit code, stderr lines); signal handlers restored afterwards."""
    from fers.cli import main

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}

    def call(*args, env=None):
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        try:
            rc = main(["-q", *map(str, args)])
        finally:
            for s, h in saved.items():
                signal.signal(s, h)
        return rc, capsys.readouterr().err.strip().splitlines()

    return call


def assert_refused(rc, lines, message):
    assert rc == 2, lines
    assert len(lines) == 1 and lines[0].startswith("fers: error: ") and message in lines[0], lines


def png_truth(path, gt):
    """A HAD100-style .png mask (the ground truth in its second colour channel), written with GDAL."""
    from osgeo import gdal

    mem = gdal.GetDriverByName("MEM").Create("", gt.shape[1], gt.shape[0], 3, gdal.GDT_Byte)
    for b in range(3):
        mem.GetRasterBand(b + 1).WriteArray((gt > 0).astype(np.uint8) * 255)
    gdal.GetDriverByName("PNG").CreateCopy(str(path), mem)
    return str(path)


def _link(work):
    os.symlink("x.tif", work / "link.tif")


def _hard(work):
    os.link(work / "x.tif", work / "hard.tif")


def _zip(work):
    with zipfile.ZipFile(work / "z.zip", "w") as z:
        z.write(work / "x.tif", "x.tif")


def _h5(work):
    import h5py

    with h5py.File(work / "c.h5", "w") as f:
        f["cube"] = mat_scene("abu-airport-2")[0][:40, :40, :12].transpose(2, 0, 1).astype(np.float32)


def _envi(work):
    from osgeo import gdal

    gdal.Translate(str(work / "e.img"), str(work / "x.tif"), format="ENVI")


def _png(work):
    png_truth(work / "gt.png", mat_scene("abu-airport-2")[1][:40, :40])
    write_geotiff(work / "score.tif", mat_scene("abu-airport-2")[0][:40, :40, 0].astype(np.float32))


def _subdir(work):
    (work / "d").mkdir()


ALIASES = [  # (id, setup, args, expected message)
    ("symlink-output", _link, ["detect", "x.tif", "link.tif"], "(through a symbolic link)"),
    ("symlink-input", _link, ["detect", "link.tif", "x.tif"], "(through a symbolic link)"),
    ("hard-link", _hard, ["detect", "x.tif", "hard.tif"], "(a hard link)"),
    ("relative-spelling", _subdir, ["detect", "x.tif", "d/../x.tif"], "the input raster x.tif are the same file"),
    ("home-spelling", None, ["detect", "x.tif", "~/x.tif"], "the input raster x.tif are the same file"),
    ("vsisubfile", None, ["detect", "/vsisubfile/0_1000000,x.tif", "m.tif", "--mask", "x.tif"],
     "(a GDAL path that reads it)"),
    ("vsizip", _zip, ["enhance", "/vsizip/z.zip/x.tif", "z.zip", "--model", "a.pt"], "(a GDAL path that reads it)"),
    ("gtiff-dir", None, ["detect", "GTIFF_DIR:1:x.tif", "x.tif"], "(a GDAL path that reads it)"),
    ("hdf5-subdataset", _h5, ["train-spectral", 'HDF5:"c.h5"://cube', "-o", "c.h5", "--bands", "12"],
     "the checkpoint c.h5 and the background raster"),
    ("envi-header", _envi, ["train-spectral", "e.img", "-o", "e.hdr", "--bands", "12"],
     "e.hdr, a file GDAL reads along with the background raster e.img"),
    ("detect-mask-is-map", None, ["detect", "x.tif", "m.tif", "--mask", "m.tif"],
     "two outputs are the same file: the score map m.tif and the anomaly mask m.tif"),
    ("detect-objects-is-input", None, ["detect", "x.tif", "m.tif", "--objects", "./x.tif"], "the anomaly objects"),
    ("evaluate-roc-is-truth", _png, ["evaluate", "score.tif", "gt.png", "--roc", "gt.png"],
     "the ROC curve gt.png and the ground truth gt.png are the same file"),
    ("prune-onto-itself", None, ["prune", "a.pt", "a.pt"], "the pruned model a.pt and the checkpoint a.pt"),
    ("train-onto-background", None, ["train-spectral", "x.tif", "-o", "x.tif", "--bands", "12"],
     "the checkpoint x.tif and the background raster x.tif"),
    ("train-onto-teacher", None, ["train-spatial", "x.tif", "-o", "a.pt", "--teacher", "a.pt"],
     "the checkpoint a.pt and the teacher a.pt"),
    ("ensemble-onto-member", None, ["ensemble", "a.pt", "b.pt", "-o", "b.pt"], "the ensemble b.pt and the member b.pt"),
    ("enhance-onto-input", None, ["enhance", "x.tif", "x.tif", "--model", "a.pt"],
     "the enhanced cube x.tif and the input raster x.tif"),
    ("benchmark-html-onto-scene", None, ["benchmark", "x.tif=gt.tif", "--out", "res", "--html", "x.tif"],
     "the HTML report"),
    ("benchmark-html-onto-results", None, ["benchmark", "x.tif=gt.tif", "--out", "res", "--html", "res/results.md"],
     "two outputs are the same file"),
]


@pytest.mark.parametrize("case", ALIASES, ids=[c[0] for c in ALIASES])
def test_an_output_that_names_an_input_is_refused_before_anything_is_read(work, cli, monkeypatch, case):
    _, setup, args, message = case
    monkeypatch.setenv("HOME", str(work))
    if setup:
        setup(work)
    before = files(work)
    rc, lines = cli(*args)
    assert_refused(rc, lines, message)
    assert "output path is the input itself" in lines[0] or "two outputs are the same file" in lines[0]
    assert files(work) == before  # nothing written, nothing replaced, no temporary file


INVALID = [  # (id, args, env, expected message)
    ("percentile-101", ["--threshold-percentile", "101"], {}, "must be in [0, 100), got 101"),
    ("percentile-nan", ["--threshold-percentile", "nan"], {}, "must be a finite number, got nan"),
    ("far-1.5", ["--false-alarm-rate", "1.5"], {}, "must be in [0, 1), got 1.5"),
    ("far-inf", ["--false-alarm-rate", "inf"], {}, "must be a finite number, got inf"),
    ("min-pixels--3", ["--min-pixels", "-3"], {}, "must be at least 1, got -3"),
    ("extent-nan", ["--extent", "380000", "3759800", "nan", "3760000"], {}, "must be four finite numbers"),
    ("extent-inf", ["--extent", "380000", "3759800", "inf", "3760000"], {}, "must be four finite numbers"),
    ("extent-unordered", ["--extent", "380100", "3759800", "380000", "3760000"], {}, "must run from low to high"),
    ("memory-nan", ["--memory-mb", "nan"], {}, "must be a finite number, got nan"),
    ("memory-negative", ["--memory-mb", "-5"], {}, "must be at least 0, got -5"),
    ("tile-negative", ["--tile-size", "-1"], {}, "must be at least 0, got -1"),
    ("rx-trim-nan", ["--rx-trim", "nan"], {}, "must be a finite number, got nan"),
    ("nodata-range-nan", ["--nodata", "nan:3"], {}, "a no-data range needs two numbers"),
    ("nodata-range-unordered", ["--nodata", "5:1"], {}, "must run from low to high"),
    ("memory-limit-nan", [], {"FERS_MEMORY_LIMIT_MB": "nan"}, "FERS_MEMORY_LIMIT_MB must be a finite positive"),
    ("memory-limit-inf", [], {"FERS_MEMORY_LIMIT_MB": "inf"}, "FERS_MEMORY_LIMIT_MB must be a finite positive"),
    ("memory-limit-zero", [], {"FERS_MEMORY_LIMIT_MB": "0"}, "FERS_MEMORY_LIMIT_MB must be a finite positive"),
    ("memory-limit-text", [], {"FERS_MEMORY_LIMIT_MB": "lots"}, "FERS_MEMORY_LIMIT_MB must be a number"),
]


@pytest.mark.parametrize("case", INVALID, ids=[c[0] for c in INVALID])
def test_detect_checks_every_number_before_writing_anything(work, cli, case):
    """With a mask asked for too: the map used to be written before the threshold was checked."""
    _, extra, env, message = case
    before = files(work)
    rc, lines = cli("detect", "x.tif", "m.tif", "--mask", "k.tif", *extra, env=env)
    assert_refused(rc, lines, message)
    assert files(work) == before


TRAIN_INVALID = [
    ("lr-nan", ["--lr", "nan"], "the learning rate (LR / --lr) must be a finite number"),
    ("lr-zero", ["--lr", "0"], "must be more than 0"),
    ("epochs-0", ["--epochs", "0"], "epochs (EPOCHS / --epochs) must be at least 1"),
    ("batch-0", ["--batch", "0"], "the batch size (BATCH / --batch) must be at least 1"),
    ("betas-nan", ["--betas", "nan", "0.9"], "Adam's betas (--betas) must be a finite number"),
    ("band-stretch-inf", ["--band-stretch", "inf"], "the band stretch (BAND_STRETCH / --band-stretch) must be a "
                                                    "finite"),
    ("steps-negative", ["--steps", "-1"], "must be at least 0"),
]


@pytest.mark.parametrize("case", TRAIN_INVALID, ids=[c[0] for c in TRAIN_INVALID])
def test_training_checks_every_number_before_anything(work, cli, case):
    _, extra, message = case
    before = files(work)
    rc, lines = cli("train-spectral", "x.tif", "-o", "m.pt", "--bands", "12", "--backbone-weights", "random", *extra)
    assert_refused(rc, lines, message)
    assert files(work) == before


def test_the_cli_processes_refuse_with_one_line(work):
    """The same checks through the real `fers` executable: an alias and a number, inputs untouched."""
    os.link(work / "x.tif", work / "hard.tif")
    before = files(work)
    for args, message in ((["evaluate", "x.tif", "gt.tif", "--roc", "./hard.tif"], "(a hard link)"),
                          (["detect", "x.tif", "m.tif", "--objects", "o.gpkg", "--threshold-percentile", "101"],
                           "must be in [0, 100), got 101")):
        r = fers("-q", *args, cwd=work)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
    assert files(work) == before


# ---------------------------------------------------------------- QGIS Processing

def test_qgis_algorithms_refuse_outputs_that_name_an_input(work):
    """Each algorithm through qgis_process: the engine refuses before any work; no file written or changed."""
    os.symlink("x.tif", work / "link.tif")
    os.link(work / "x.tif", work / "hard.tif")
    png_truth(work / "gt.png", mat_scene("abu-airport-2")[1][:40, :40])
    write_geotiff(work / "score.tif", mat_scene("abu-airport-2")[0][:40, :40, 0].astype(np.float32))
    os.link(work / "gt.tif", work / "x_gt.tif")  # the scene's ground truth beside it, for fers:benchmark
    before = files(work, qgis=True)
    w = str(work)
    cases = [
        (["fers:detect", f"INPUT={w}/x.tif", f"OUTPUT={w}/link.tif"], "(through a symbolic link)"),
        (["fers:detect", f"INPUT={w}/x.tif", f"OUTPUT={w}/m.tif", f"MASK={w}/m.tif"], "two outputs are the same file"),
        (["fers:enhance", f"INPUT={w}/x.tif", f"MODEL={w}/a.pt", f"OUTPUT={w}/hard.tif"], "(a hard link)"),
        (["fers:evaluate", f"SCORE={w}/score.tif", f"GROUND_TRUTH={w}/gt.png", f"ROC={w}/gt.png"],
         "the ROC curve"),
        (["fers:train_spectral", f"SOURCES={w}/x.tif", "BANDS=12", "BACKBONE_WEIGHTS=random", f"OUTPUT={w}/x.tif"],
         "the checkpoint"),
        (["fers:train_spatial", f"SOURCES={w}/x.tif", f"TEACHER={w}/a.pt", "BACKBONE_WEIGHTS=random",
          f"OUTPUT={w}/a.pt"], "the teacher"),
        (["fers:benchmark", f"SCENES={w}/x.tif", f"OUTPUT_FOLDER={w}/res", f"OUTPUT_HTML={w}/x.tif"],
         "the HTML report"),
        # QGIS lets NaN through its number parameters' ranges (NaN compares False with both ends)
        (["fers:detect", f"INPUT={w}/x.tif", f"OUTPUT={w}/m.tif", f"MASK={w}/k.tif", "FALSE_ALARM_RATE=nan"],
         "must be a finite number, got nan"),
        (["fers:train_spectral", f"SOURCES={w}/x.tif", "BANDS=12", "LR=nan", "BACKBONE_WEIGHTS=random",
          f"OUTPUT={w}/t.pt"], "the learning rate (LR / --lr) must be a finite number, got nan"),
    ]
    for args, message in cases:
        r = qgis_process("run", args[0], "--", *args[1:])
        text = r.stdout + r.stderr
        assert r.returncode != 0 and "Traceback" not in text, text
        assert message in text, text
        if "nan" not in message:
            assert "output path is the input itself" in text or "two outputs are the same file" in text, text
        assert files(work, qgis=True) == before, args
    r = qgis_process("run", "fers:detect", "--", f"INPUT={w}/x.tif", f"OUTPUT={w}/m.tif", env={
        "FERS_MEMORY_LIMIT_MB": "nan"})
    assert r.returncode != 0 and "FERS_MEMORY_LIMIT_MB must be a finite positive" in r.stdout + r.stderr
    assert files(work, qgis=True) == before


def test_qgis_overwrites_an_existing_output_and_says_so(work):
    """QGIS's convention (class 8): an existing output is replaced, and the log says it was."""
    (work / "m.tif").write_bytes(b"an older map")
    r = qgis_process("run", "fers:detect", "--", f"INPUT={work}/x.tif", "STRATEGY=none", f"OUTPUT={work}/m.tif")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"OUTPUT: replaced the existing file {work}/m.tif" in r.stdout + r.stderr
    assert open(work / "m.tif", "rb").read(4) in (b"II*\x00", b"MM\x00*")
    r = qgis_process("run", "fers:detect", "--", f"INPUT={work}/x.tif", "STRATEGY=none", f"OUTPUT={work}/n.tif")
    assert r.returncode == 0 and "replaced the existing file" not in r.stdout + r.stderr


# ---------------------------------------------------------------- signals and dead runs

@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """200×200 px × 100 bands of a real scene (abu-urban-4 tiled) and a 100-band checkpoint: a run of seconds."""
    d = tmp_path_factory.mktemp("big")
    cube = np.tile(mat_scene("abu-urban-4")[0][:, :, :100], (2, 2, 1))
    tif = write_geotiff(d / "big.tif", cube)
    return tif, tiny_checkpoint(d / "m100.pt", 100), sha(tif)


def _start(args):
    return subprocess.Popen([os.path.join(VENV_BIN, "fers"), *map(str, args)], stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"),
                            # a shell that started us in the background may have left SIGINT/SIGHUP ignored
                            preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT,
                                                                                           signal.SIGHUP)])


def _wait_for_partial(p, folder, timeout=120):
    """Poll until the run's hidden temporary file exists (it is writing the output); its name."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        found = [n for n in os.listdir(folder) if ".partial" in n]
        if found:
            return found[0]
        assert p.poll() is None, "the run ended before it wrote anything: " + p.stderr.read()
        time.sleep(0.002)
    raise AssertionError("no temporary file appeared")


def test_sigterm_mid_run_ends_like_ctrl_c(tmp_path, big):
    tif, model, digest = big
    out = tmp_path / "map.tif"
    p = _start(["detect", tif, out, "--strategy", "spectral", "--model", model, "--tile-size", "32", "--device", "cpu"])
    seen = []
    for line in p.stderr:
        seen.append(line)
        if "spectral features, tile" in line:
            break
    p.send_signal(signal.SIGTERM)
    rest = p.communicate(timeout=60)[1].strip().splitlines()
    assert p.returncode == 130, seen + rest
    assert rest == ["fers: interrupted (SIGTERM); no output was written"], rest
    assert os.listdir(tmp_path) == [] and sha(tif) == digest


def test_sighup_while_writing_removes_the_temporary_file(tmp_path, big):
    """The signal arrives while the output is being written (its temporary file exists): nothing is left."""
    tif, model, digest = big
    out = tmp_path / "cube.tif"
    p = _start(["-q", "enhance", tif, out, "--model", model, "--branches", "spectral", "--device", "cpu"])
    name = _wait_for_partial(p, tmp_path)
    assert name.startswith(f".cube.tif.{p.pid}@") and name.endswith(".partial.tif"), name
    p.send_signal(signal.SIGHUP)
    err = p.communicate(timeout=60)[1].strip().splitlines()
    assert p.returncode == 130 and err == ["fers: interrupted (SIGHUP); no output was written"], err
    assert os.listdir(tmp_path) == [] and sha(tif) == digest


def test_the_next_run_removes_what_a_killed_run_left_and_nothing_of_a_live_one(tmp_path, big, sources):
    tif, model, digest = big
    out = tmp_path / "cube.tif"
    p = _start(["-q", "enhance", tif, out, "--model", model, "--branches", "spectral", "--device", "cpu"])
    left = _wait_for_partial(p, tmp_path)
    p.kill()  # SIGKILL: no clean-up can run
    p.wait()
    assert left in os.listdir(tmp_path) and not out.exists()
    from fers.io.paths import temp_prefix

    live = temp_prefix("cube.tif") + "abcd.partial.tif"  # this test's own pid: a live writer's file
    (tmp_path / live).write_bytes(b"being written by a live run")
    r = fers("-q", "detect", sources / "x.tif", out)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert sorted(os.listdir(tmp_path)) == sorted([live, "cube.tif"])
    assert sha(tif) == digest
