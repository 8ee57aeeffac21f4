"""Research formats: MATLAB .mat (v5 and v7.3/HDF5), NumPy .npy, the HAD100 layout.

These carry no georeferencing; results written from them are plain pixel grids.
"""
from __future__ import annotations

import glob
import math
import os
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from .raster import Georef
from .source import Source, finalize_cube

RESEARCH_EXTENSIONS = (".mat", ".npy")
GT_KEYS = ("map", "gt", "groundtruth", "ground_truth", "mask")


def is_research_path(path: str) -> bool:
    return os.fspath(path).lower().endswith(RESEARCH_EXTENSIONS)


def _read_mat(path: str) -> dict:
    """All numeric arrays of a .mat file, in MATLAB's (row, col, ...) orientation."""
    try:
        import scipy.io

        raw = scipy.io.loadmat(path)
        return {k: v for k, v in raw.items() if not k.startswith("__") and isinstance(v, np.ndarray)}
    except NotImplementedError:
        pass  # MATLAB v7.3 is HDF5
    except Exception as e:  # scipy raises many types for non-.mat content
        if not _is_hdf5(path):
            raise InputError(f"{path} is not a readable MATLAB file ({e})") from None
    try:
        import h5py
    except ImportError:
        raise InputError(f"{path} is a MATLAB v7.3 (HDF5) file; install h5py to read it") from None
    out = {}
    with h5py.File(path, "r") as f:
        for k, v in f.items():
            if isinstance(v, h5py.Dataset) and v.dtype.kind in "fiub":
                # HDF5 stores MATLAB's column-major arrays with the axes reversed
                out[k] = np.asarray(v).T
    return out


def _is_hdf5(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def _scalar(arrays: dict, key: str) -> Optional[int]:
    v = arrays.get(key)
    if v is not None and v.size == 1:
        return int(v.reshape(-1)[0])
    return None


def _as_cube(arrays: dict, variable: Optional[str], path: str) -> tuple:
    """Pick the data array and bring it to (rows, cols, bands)."""
    numeric = {k: v for k, v in arrays.items() if v.dtype.kind in "fiub"}
    if variable is not None:
        if variable not in numeric:
            raise InputError(f"{path} has no numeric variable '{variable}' (it has: {', '.join(sorted(numeric))})")
        key = variable
    else:
        cubes = [k for k, v in numeric.items() if v.ndim == 3]
        if len(cubes) == 1:
            key = cubes[0]
        elif len(cubes) > 1:
            raise InputError(f"{path} holds several 3-D arrays ({', '.join(sorted(cubes))}); name one with --variable")
        else:
            # bands × pixels matrices (unmixing data sets): the biggest 2-D array
            flat = sorted((k for k, v in numeric.items() if v.ndim == 2 and min(v.shape) > 3),
                          key=lambda k: -numeric[k].size)
            if not flat:
                raise InputError(f"{path} holds no hyperspectral array (variables: {', '.join(sorted(numeric))})")
            key = flat[0]
    a = numeric[key]
    if a.ndim == 3:
        return key, a
    if a.ndim != 2:
        raise InputError(f"variable '{key}' of {path} has {a.ndim} dimensions; expected 3 (rows, cols, bands)")
    bands, pixels = sorted(a.shape)
    if a.shape[0] != bands:
        a = a.T
    rows, cols = _scalar(arrays, "nRow"), _scalar(arrays, "nCol")
    if not (rows and cols and rows * cols == pixels):
        side = int(round(math.sqrt(pixels)))
        if side * side != pixels:
            raise InputError(f"variable '{key}' of {path} is a {a.shape} matrix whose image size is unknown")
        rows = cols = side
    # pixels are numbered column-major (MATLAB order)
    return key, a.T.reshape(cols, rows, bands).transpose(1, 0, 2)


def _find_gt(arrays: dict, key: str, shape: tuple) -> Optional[np.ndarray]:
    candidates = list(GT_KEYS) + [f"{key}_gt"] + [k for k in arrays if k.lower().endswith("_gt")]
    lower = {k.lower(): k for k in arrays}
    for c in candidates:
        k = lower.get(c.lower())
        if k is not None and arrays[k].shape == shape:
            return arrays[k]
    return None


class ArraySource(Source):
    """A cube held in memory as (rows, cols, bands), from .mat or .npy."""

    def __init__(self, path: str, hwb: np.ndarray, gt: Optional[np.ndarray] = None, variable: Optional[str] = None):
        if hwb.ndim != 3:
            raise InputError(f"{path}: expected a (rows, cols, bands) array, got shape {hwb.shape}")
        self.path, self.variable = path, variable
        self.height, self.width, self.band_count = hwb.shape
        self.georef = Georef()
        self.wavelengths = None
        self.nodata = None
        self._hwb = hwb
        self._gt = gt

    @classmethod
    def from_file(cls, path: str, variable: Optional[str] = None) -> "ArraySource":
        if path.lower().endswith(".npy"):
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as e:
                raise InputError(f"{path} is not a readable .npy array ({e})") from None
            return cls(path, arr)
        arrays = _read_mat(path)
        key, hwb = _as_cube(arrays, variable, path)
        return cls(path, hwb, _find_gt(arrays, key, hwb.shape[:2]), key)

    def read(self, bands: Sequence[int], window=None):
        x0, y0, w, h = window or (0, 0, self.width, self.height)
        sub = self._hwb[y0:y0 + h, x0:x0 + w][:, :, list(bands)]
        cube = np.ascontiguousarray(np.moveaxis(sub, 2, 0), dtype=np.float32)
        return finalize_cube(cube, np.ones((h, w), dtype=bool), self.extra_nodata)

    def ground_truth(self):
        return None if self._gt is None else np.asarray(self._gt)


def load_ground_truth(path: str, variable: Optional[str] = None, band: int = 1) -> tuple:
    """Binary anomaly mask from a raster, a .png (HAD100: second colour channel) or a .mat.

    Returns ``(mask bool (rows, cols), valid bool (rows, cols))``. Any value > 0 is an
    anomaly (ABU uses 1, PNG masks 255).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"ground truth not found: {path}")
    if path.lower().endswith(".mat"):
        arrays = _read_mat(path)
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
        gt = np.load(path, allow_pickle=False)
        return gt > 0, np.ones(gt.shape, bool)
    if path.lower().endswith(".png") and band == 1:
        band = 2  # HAD100 PNG masks: the anomaly mask is the second colour channel
    from .raster import GdalSource

    src = GdalSource(path)
    if band > src.band_count:
        band = 1
    cube, valid = src.read([band - 1])
    return cube[0] > 0, valid


def had100_scenes(root: str, sensor: str = "aviris_ng", split: str = "test") -> list:
    """(name, cube_path, gt_path or None) for the public HAD100 folder layout (SPEC §4)."""
    folder = os.path.join(root, split, sensor)
    cubes = sorted(glob.glob(os.path.join(folder, "*.npy")))
    if not cubes:
        raise InputError(f"no .npy scenes in {folder} (expected the HAD100 layout {split}/{sensor}/*.npy)")
    out = []
    for p in cubes:
        name = os.path.splitext(os.path.basename(p))[0]
        gt = os.path.join(root, "ground_truth", sensor, name + ".png")
        out.append((name, p, gt if os.path.exists(gt) else None))
    return out
