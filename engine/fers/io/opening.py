"""Which reader takes a path: ``open_source`` for scenes and ``load_ground_truth`` for masks.

The one place that knows every format, above the readers (``raster`` for what GDAL opens, ``research`` for
.mat/.npy) and their common base (``source``), none of which knows another.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..errors import InputError
from .guard import check_input
from .raster import GdalSource
from .research import GT_KEYS, ArraySource, is_research_path, load_npy, read_mat
from .source import Source, nodata_ranges


def open_source(path: str, variable: Optional[str] = None, nodata=None, file_nodata: bool = True) -> Source:
    """Open a hyperspectral scene from any supported format. ``nodata``: values or (lo, hi) ranges that are no
    data too, beyond what the file declares (``nodata_ranges``). ``file_nodata`` False reads the value the
    file declares as nodata as data (a tag that is wrong for this file; QGIS's unticked "No data value")."""
    src = _open(path, variable)
    if not file_nodata:
        src.ignore_file_nodata()
    src.extra_nodata = nodata_ranges(nodata)
    return src


def _open(path: str, variable: Optional[str] = None) -> Source:
    path = os.fspath(path)
    check_input(path, folder_ok=True)  # network, FIFOs, devices, and what a VRT names: before any reader opens it
    if not os.path.exists(path) and "://" not in path and not path.startswith("/vsi") and ":" not in os.path.basename(path):
        raise InputError(f"input not found: {path}")
    if os.path.isdir(path):
        raise InputError(f"input is a folder, not a raster: {path}")
    if is_research_path(path):
        return ArraySource.from_file(path, variable)
    if variable:
        raise InputError("--variable only applies to .mat files")
    return GdalSource(path)


def load_ground_truth(path: str, variable: Optional[str] = None, band: int = 1) -> tuple:
    """Binary anomaly mask from a raster, a .png (HAD100: second colour channel) or a .mat.

    Returns ``(mask bool (rows, cols), valid bool (rows, cols))``. Any value > 0 is an
    anomaly (ABU uses 1, PNG masks 255).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"ground truth not found: {path}")
    if path.lower().endswith(".mat"):
        arrays = read_mat(path)
        if variable:
            if variable not in arrays:
                raise InputError(f"{path} has no variable '{variable}'")
            gt = arrays[variable]
        else:
            two_d = {k: v for k, v in arrays.items() if v.ndim == 2}
            lower = {k.lower(): k for k in two_d}
            hit = [lower[k] for k in GT_KEYS if k in lower] + [k for k in two_d if k.lower().endswith("_gt")]
            if not hit and len(two_d) == 1:
                hit = list(two_d)
            if not hit:
                raise InputError(f"{path}: no ground-truth variable found (looked for {', '.join(GT_KEYS)}); use --gt-variable")
            gt = two_d[hit[0]]
        gt = np.asarray(gt)
        return gt > 0, np.isfinite(gt) if gt.dtype.kind == "f" else np.ones(gt.shape, bool)
    if path.lower().endswith(".npy"):
        gt = load_npy(path, "ground truth")
        if gt.ndim != 2:
            raise InputError(f"ground truth {path} must be 2-D (rows, cols), got shape {gt.shape}")
        return np.asarray(gt > 0), np.isfinite(gt) if gt.dtype.kind == "f" else np.ones(gt.shape, bool)
    if path.lower().endswith(".png") and band == 1:
        band = 2  # HAD100 PNG masks: the anomaly mask is the second colour channel
    src = GdalSource(path)
    if band > src.band_count:
        band = 1
    from ..memory import check_bytes

    check_bytes(6.0 * src.width * src.height, f"the {src.width}×{src.height} px ground truth {os.path.basename(path)}",
                "give a ground truth of the map's size; nothing was read")
    cube, valid = src.read([band - 1])
    return cube[0] > 0, valid
