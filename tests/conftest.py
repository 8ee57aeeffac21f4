"""Shared test fixtures: real scenes from ../shared/data turned into real rasters with GDAL.

The converters here use GDAL directly (not the engine's writer), so engine reads are
checked against files produced independently of the code under test.
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import scipy.io

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # Under pytest -n N (make test), each worker and every fers / qgis_process / torchrun it starts gets its share
    # of the cores, rather than N full-width torch pools fighting over them. Set before torch is imported.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ[
        "PYTEST_XDIST_WORKER_COUNT"]))))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# make test SYSTEM_PYTHON=1 VENV=... (make test-debian13) runs the suite with a venv elsewhere
VENV = os.environ.get("FERS_VENV") or os.path.join(REPO, ".venv")
VENV_BIN = os.path.join(VENV, "bin")

if os.environ.get("PYTEST_XDIST_WORKER") and "FERS_QGIS_PROFILE" not in os.environ:
    # Each worker's qgis_process runs (.venv/bin/fers-qgis-process) get a copy of the venv's QGIS profile, so two
    # QGIS instances never write one profile's settings and databases at the same time.
    _profile = os.path.join(VENV, "qgis-profile")
    if os.path.isdir(_profile):
        _copy = tempfile.mkdtemp(prefix=f"fers-qgis-profile-{os.environ['PYTEST_XDIST_WORKER']}-")
        shutil.copytree(_profile, _copy, dirs_exist_ok=True)
        os.environ["FERS_QGIS_PROFILE"] = _copy
        atexit.register(shutil.rmtree, _copy, True)

DATA = os.environ.get("FERS_DATA") or os.path.abspath(os.path.join(REPO, "..", "shared", "data"))
WEIGHTS = os.environ.get("FERS_WEIGHTS") or os.path.abspath(os.path.join(DATA, "..", "weights"))
RAW = os.path.join(DATA, "raw")

# ../shared/data/README.md: RX column (first C bands, SPEC §0 preprocessing)
PUBLISHED_RX = [
    ("abu-airport-1", 200, 0.8248), ("abu-airport-2", 200, 0.8433), ("abu-airport-3", 200, 0.9301),
    ("abu-urban-4", 200, 0.9889), ("abu-urban-5", 200, 0.9690),
    ("abu-airport-1", 100, 0.8789), ("abu-airport-4", 100, 0.9374), ("abu-urban-3", 100, 0.9571),
]


def mat_scene(name):
    """(cube H×W×B, gt H×W) of an ABU-style .mat, read with scipy only."""
    m = scipy.io.loadmat(os.path.join(RAW, name + ".mat"))
    return m["data"], m["map"]


def write_geotiff(path, hwb, nodata=None, epsg=32611, geotransform=(380000.0, 7.1, 0.0, 3760000.0, 0.0, -7.1)):
    from osgeo import gdal, osr

    gdal.UseExceptions()
    hwb = np.asarray(hwb)
    if hwb.ndim == 2:
        hwb = hwb[:, :, None]
    h, w, b = hwb.shape
    types = {np.dtype("int16"): gdal.GDT_Int16, np.dtype("uint16"): gdal.GDT_UInt16, np.dtype("uint8"): gdal.GDT_Byte,
             np.dtype("float64"): gdal.GDT_Float64}
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, b, types.get(hwb.dtype, gdal.GDT_Float32))
    if epsg:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
        ds.SetGeoTransform(geotransform)
    for i in range(b):
        band = ds.GetRasterBand(i + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(hwb[:, :, i])
    ds = None
    return str(path)


def read_geotiff(path):
    """(array B×H×W float64, crs wkt, geotransform, nodata) through GDAL."""
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.Open(str(path))
    arr = ds.ReadAsArray().astype(np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    return arr, ds.GetProjection(), ds.GetGeoTransform(), ds.GetRasterBand(1).GetNoDataValue()


def numpy_rx(hwb_valid_pixels):
    """Textbook RX, per pixel, with np.cov and np.linalg.pinv (the authors' formulation)."""
    x = np.asarray(hwb_valid_pixels, dtype=np.float64)
    x = (x - x.min()) / (x.max() - x.min())
    mu = x.mean(0)
    inv = np.linalg.pinv(np.cov(x, rowvar=False))
    z = x - mu
    return np.array([zi @ inv @ zi for zi in z])


def numpy_trimmed_rx(pixels, trim):
    """Trimmed RX written out with NumPy: textbook RX, drop the top ``trim`` of its scores, np.cov and pinv of
    the rest, every pixel scored against them. Returns (scores, the pixels kept)."""
    x = np.asarray(pixels, dtype=np.float64)
    first = numpy_rx(x)
    keep = first <= np.quantile(first, 1 - trim)
    inv = np.linalg.pinv(np.cov(x[keep], rowvar=False))
    z = x - x[keep].mean(0)
    return np.einsum("ij,jk,ik->i", z, inv, z), keep


def pairwise_auc(scores, labels):
    """AUC as P(anomaly score > background score) + ½P(=), by brute-force comparison."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel() > 0
    pos, neg = s[y], s[~y]
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return (gt + 0.5 * eq) / (pos.size * neg.size)


def run(cmd, **kw):
    """Run a command, return CompletedProcess with text output (never raises)."""
    env = dict(os.environ, FERS_DATA=DATA)
    env.update(kw.pop("env", {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, **kw)


def fers(*args, **kw):
    return run([os.path.join(VENV_BIN, "fers"), *map(str, args)], **kw)


def qgis_process(*args, **kw):
    return run([os.path.join(VENV_BIN, "fers-qgis-process"), *map(str, args)], **kw)


@pytest.fixture(scope="session")
def scene_tifs(tmp_path_factory):
    """GeoTIFF copies (native integer dtype, nominal UTM CRS) of the published-RX scenes + GT rasters."""
    folder = tmp_path_factory.mktemp("scenes")
    out = {}
    for name in sorted({n for n, _, _ in PUBLISHED_RX}):
        cube, gt = mat_scene(name)
        out[name] = (write_geotiff(folder / f"{name}.tif", cube), write_geotiff(folder / f"{name}_gt.tif", gt.astype(np.uint8), epsg=None))
    return out


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


BACKGROUND_SPLIT = ["abu-urban-1", "abu-urban-2", "abu-beach-1", "abu-beach-3", "jasperRidge2_R198", "Moffet",
                    "Rcuprite50x90x188"]  # ../shared/data/README.md: background training sources
PAPER_SET = ["abu-airport-1", "abu-airport-2", "abu-airport-3", "abu-airport-4", "abu-urban-3", "LREN__abu-beach-4",
             "RCRD__dataPavia"]


@pytest.fixture(scope="session")
def stage2_model(tmp_path_factory):
    """A tiny stage-2 model (100 bands) trained on the background split only, against the authors' 100-band
    teacher; ResNet-34 weights random (no ImageNet offline). Small on purpose: it proves the path, not accuracy."""
    import torch

    from fers.train.stage2 import train_spatial

    out = tmp_path_factory.mktemp("stage2") / "fers_tiny.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is faster than two fighting on a shared machine
    try:
        train_spatial([os.path.join(RAW, n + ".mat") for n in BACKGROUND_SPLIT], str(out),
                      teacher=os.path.join(WEIGHTS, "fers-reference", "aviris_ng-100bands"),
                      backbone_weights="random", epochs=1, batch=2, patch=32, steps_per_epoch=2, device="cpu",
                      val_patches=2, seed=1)
    finally:
        torch.set_num_threads(threads)
    return str(out)


@pytest.fixture(scope="session")
def paper_set_tifs(tmp_path_factory):
    """The paper set of ../shared/data/README.md as GeoTIFFs (nominal UTM CRS) with ground-truth rasters."""
    from fers.io import load_ground_truth, open_source

    folder = tmp_path_factory.mktemp("paper_set")
    out = {}
    for name in PAPER_SET:
        src = open_source(os.path.join(RAW, name + ".mat"))
        cube, _ = src.read(range(src.band_count))
        if name == "RCRD__dataPavia":
            gt, _ = load_ground_truth(os.path.join(RAW, "RCRD__maskPavia.mat"))
        else:
            gt = src.ground_truth() > 0
        out[name] = (write_geotiff(folder / f"{name}.tif", np.moveaxis(cube, 0, 2)),
                     write_geotiff(folder / f"{name}_gt.tif", gt.astype(np.uint8), epsg=None))
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module, restored after: on the shared 2-core test machine torch's threads
    spin against other processes, and the short per-scene trainings (AE, spatial) run ~5× faster on one. A module
    takes it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
