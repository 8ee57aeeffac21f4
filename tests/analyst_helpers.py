"""Helpers for the wavelength / bundled-model / objects tests: an ENVI file written by hand (no GDAL writer)
and a small Spe-FEN checkpoint whose model card (meta) gives wavelengths."""
import os

import numpy as np


def write_envi(path, bhw, wavelengths=None, units="Nanometers", fwhm=None, bbl=None, map_info=True):
    """A BSQ float32 ENVI file (``path`` = the .img; the .hdr beside it), written with numpy and text only."""
    bhw = np.ascontiguousarray(bhw, dtype="<f4")
    b, h, w = bhw.shape
    bhw.tofile(path)
    lines = ["ENVI", f"samples = {w}", f"lines = {h}", f"bands = {b}", "header offset = 0",
             "file type = ENVI Standard", "data type = 4", "interleave = bsq", "byte order = 0"]
    if map_info:
        lines.append("map info = {UTM, 1.000, 1.000, 371000.000, 3757000.000, 7.1, 7.1, 11, North, WGS-84, units=Meters}")
    fmt = lambda vals: "{ " + ", ".join(f"{v:g}" for v in vals) + " }"  # noqa: E731
    if wavelengths is not None:
        lines += [f"wavelength units = {units}", f"wavelength = {fmt(wavelengths)}"]
    if fwhm is not None:
        lines.append(f"fwhm = {fmt(fwhm)}")
    if bbl is not None:
        lines.append(f"bbl = {fmt(bbl)}")
    with open(os.path.splitext(str(path))[0] + ".hdr", "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def sample_cube(bands=30):
    """(bands, 100, 100) float32 of the bundled real sample scene (ABU airport-2, AVIRIS)."""
    from osgeo import gdal

    from conftest import REPO

    gdal.UseExceptions()
    ds = gdal.Open(os.path.join(REPO, "resources", "sample", "abu-airport-2.tif"))
    return np.stack([ds.GetRasterBand(i + 1).ReadAsArray().astype(np.float32) for i in range(bands)])


def tiny_checkpoint(path, bands, wavelengths=None, seed=0, **meta):
    """A 'spe-fen' FERS checkpoint with random weights and the given model-card metadata."""
    import torch

    from fers.checkpoint import save_checkpoint
    from fers.spectral.model import SpeFEN

    torch.manual_seed(seed)
    net = SpeFEN(bands)
    m = {"bands": bands, "band_indices": list(range(bands)), "wavelengths": wavelengths, "trunk": "wide_resnet50_2",
         "backbone_weights": "random", "fpl_hidden": net.hidden}
    m.update(meta)
    return save_checkpoint(str(path), "spe-fen", m, spe_fen=net.state_dict())
