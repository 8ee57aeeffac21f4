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
from .source import Georef, Source, finalize_cube

RESEARCH_EXTENSIONS = (".mat", ".npy")
GT_KEYS = ("map", "gt", "groundtruth", "ground_truth", "mask")


def is_research_path(path: str) -> bool:
    return os.fspath(path).lower().endswith(RESEARCH_EXTENSIONS)


# bytes per element of each MATLAB class (scipy.io.whosmat names them); complex doubles at most twice that
MAT_CLASS_BYTES = {"double": 8, "single": 4, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4,
                   "uint32": 4, "int64": 8, "uint64": 8, "logical": 1}


# MATLAB v5 array classes (mxCLASS) that hold numbers → bytes per element
MX_CLASS_BYTES = {6: 8, 7: 4, 8: 1, 9: 1, 10: 2, 11: 2, 12: 4, 13: 4, 14: 8, 15: 8}
HEADER_BYTES = 1 << 16  # of a variable, decompressed: flags, dimensions and name come first


def _mat5_headers(path: str) -> Optional[dict]:
    """{name: (shape, bytes per element)} of the numeric variables of a MATLAB v5 file, from each variable's
    first bytes only (a compressed one is inflated just that far: scipy's whosmat inflates far more, 0.28 GB
    for a 1 GB variable); None when the file is not v5 (v4, or v7.3 = HDF5)."""
    import struct
    import zlib

    with open(path, "rb") as f:
        head = f.read(128)
        if len(head) < 128 or head[126:128] not in (b"IM", b"MI") or head[:4] == b"\x89HDF":
            return None
        e = "<" if head[126:128] == b"IM" else ">"
        if struct.unpack(e + "H", head[124:126])[0] != 0x0100:
            return None
        out = {}
        while True:
            tag = f.read(8)
            if len(tag) < 8:
                return out
            mdtype, nbytes = struct.unpack(e + "II", tag)
            start = f.tell()
            if mdtype == 15:  # miCOMPRESSED
                z, buf, left = zlib.decompressobj(), b"", nbytes
                while len(buf) < HEADER_BYTES and (left or z.unconsumed_tail):
                    data = z.unconsumed_tail or f.read(min(left, 1 << 16))
                    if not z.unconsumed_tail:
                        left -= len(data)
                        if not data:
                            break
                    buf += z.decompress(data, HEADER_BYTES - len(buf))
            else:
                buf = tag + f.read(min(nbytes, HEADER_BYTES))
            _mat5_variable(buf, e, out)
            f.seek(start + nbytes + ((-nbytes) % 8 if mdtype != 15 else 0))


def _mat5_element(buf: bytes, pos: int, e: str) -> tuple:
    """(type, payload, next position) of a v5 data element, in its long or small (≤ 4 bytes) form."""
    import struct

    word, = struct.unpack_from(e + "I", buf, pos)
    if word >> 16:  # small data element: type and size in one word, the data in the next four bytes
        return word & 0xFFFF, buf[pos + 4:pos + 4 + (word >> 16)], pos + 8
    mdtype, n = struct.unpack_from(e + "II", buf, pos)
    return mdtype, buf[pos + 8:pos + 8 + n], pos + 8 + n + ((-n) % 8)


def _mat5_variable(buf: bytes, e: str, out: dict) -> None:
    import struct

    try:
        mdtype, _ = struct.unpack_from(e + "II", buf, 0)
        if mdtype != 14:  # miMATRIX
            return
        _, flags, pos = _mat5_element(buf, 8, e)
        _, dims, pos = _mat5_element(buf, pos, e)
        _, name, pos = _mat5_element(buf, pos, e)
        mx, complex_ = flags[0] if e == "<" else flags[3], bool(struct.unpack(e + "I", flags[:4])[0] & 0x0800)
        item = MX_CLASS_BYTES.get(mx)
        shape = struct.unpack(e + f"{len(dims) // 4}i", dims[:len(dims) // 4 * 4])
        name = name.decode("latin1")
    except (struct.error, IndexError, UnicodeDecodeError):
        raise InputError("a variable's header is damaged: the file is truncated or corrupt") from None
    if item is not None and name and not name.startswith("__"):
        out[name] = (tuple(max(0, int(d)) for d in shape), item * (2 if complex_ else 1))


def _mat_numeric_headers(path: str) -> tuple:
    """('v5' or 'v7.3', {name: (shape, bytes per element)}) of a .mat file's numeric variables, read from the
    headers alone: nothing is decoded (a 0.4 MB compressed file can hold 1 GB of zeros)."""
    import zlib

    try:
        found = _mat5_headers(path)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None
    except (OSError, ValueError, zlib.error) as err:
        raise InputError(f"{path} is a truncated or corrupt MATLAB file ({err})") from None
    if found is not None:
        return "v5", found
    if _is_hdf5(path):
        listed = None
    else:
        listed = _whosmat(path)
    if listed is not None:
        return "v5", {name: (tuple(int(d) for d in shape), MAT_CLASS_BYTES[cls]) for name, shape, cls in listed
                      if cls in MAT_CLASS_BYTES and not name.startswith("__")}
    return "v7.3", _h5_headers(path)


def _whosmat(path: str):
    """scipy's listing, for what is neither v5 nor HDF5 (MATLAB v4: never compressed); None for v7.3."""
    import scipy.io

    try:
        return scipy.io.whosmat(path)
    except NotImplementedError:
        return None  # MATLAB v7.3 is HDF5
    except Exception as e:  # scipy raises many types for non-.mat content
        raise InputError(f"{path} is not a readable MATLAB file ({e})") from None


def _h5_headers(path: str) -> dict:
    h5py = _h5py(path)
    out = {}
    try:
        with h5py.File(path, "r") as f:
            for k, v in f.items():
                if isinstance(v, h5py.Dataset) and v.dtype.kind in "fiub":
                    out[k] = (tuple(int(d) for d in v.shape[::-1]), int(v.dtype.itemsize))
    except Exception as e:  # h5py: OSError, KeyError, RuntimeError ... on a truncated or damaged file
        raise InputError(f"{path} is a truncated or corrupt MATLAB v7.3 (HDF5) file ({e})") from None
    return out


def _is_hdf5(path: str) -> bool:
    """HDF5's signature, at the start or after a user block (MATLAB v7.3 writes a 512-byte one)."""
    with open(path, "rb") as f:
        for offset in (0, 512, 1024, 2048):
            f.seek(offset)
            if f.read(8) == b"\x89HDF\r\n\x1a\n":
                return True
    return False


def _h5py(path: str):
    try:
        import h5py
    except ImportError:
        raise InputError(f"{path} is a MATLAB v7.3 (HDF5) file; install h5py to read it") from None
    return h5py


def _check_mat_fits(path: str, headers: dict) -> None:
    """The memory check (``fers.memory``) on what the variables decode to, plus the float32 cube made of the
    largest: before anything is decoded."""
    from ..memory import check_bytes

    sizes = {k: math.prod(shape) * item for k, (shape, item) in headers.items()}
    if not sizes:
        return
    big = max(sizes, key=sizes.get)
    shape = headers[big][0]
    need = sum(sizes.values()) + 4 * math.prod(shape)
    check_bytes(need, f"{os.path.basename(path)}: its variables decode to {sum(sizes.values()) / 1024 ** 3:.1f} GB "
                      f"(the largest, '{big}', {'×'.join(map(str, shape))})",
                "use a smaller file, or free memory; nothing was decoded")


def read_mat(path: str) -> dict:
    """All numeric arrays of a .mat file, in MATLAB's (row, col, ...) orientation; refused before decoding if
    they would not fit in memory."""
    from .guard import require_regular

    require_regular(path, "input")
    kind, headers = _mat_numeric_headers(path)
    _check_mat_fits(path, headers)
    if kind == "v5":
        import scipy.io

        try:
            raw = scipy.io.loadmat(path, variable_names=list(headers)) if headers else {}
        except Exception as e:  # truncated data or a damaged compressed stream: zlib, ValueError, ...
            raise InputError(f"{path} is a truncated or corrupt MATLAB file ({e})") from None
        return {k: v for k, v in raw.items() if not k.startswith("__") and isinstance(v, np.ndarray)}
    h5py = _h5py(path)
    out = {}
    try:
        with h5py.File(path, "r") as f:
            for k in headers:
                # HDF5 stores MATLAB's column-major arrays with the axes reversed
                out[k] = np.asarray(f[k]).T
    except Exception as e:
        raise InputError(f"{path} is a truncated or corrupt MATLAB v7.3 (HDF5) file ({e})") from None
    return out


def load_npy(path: str, what: str = "input", mmap: bool = True) -> np.ndarray:
    """A .npy array of numbers, memory-mapped (its header says its shape; nothing is read yet). Pickled object
    arrays stay refused (``allow_pickle=False``: unpickling runs code), as are strings and complex numbers."""
    from .guard import require_regular

    require_regular(path, what)
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        why = ("it holds Python objects, which FERS never unpickles"
               if "allow_pickle" in str(e) or "Python objects" in str(e) else str(e))
        raise InputError(f"{path} is not a readable .npy array of numbers ({why})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
        raise InputError(f"{path} holds {getattr(arr, 'dtype', type(arr).__name__)} values, not real numbers")
    return arr


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


def find_ground_truth(arrays: dict, key: str, shape: tuple) -> Optional[np.ndarray]:
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
            return cls(path, load_npy(path))
        arrays = read_mat(path)
        key, hwb = _as_cube(arrays, variable, path)
        return cls(path, hwb, find_ground_truth(arrays, key, hwb.shape[:2]), key)

    def read(self, bands: Sequence[int], window=None):
        x0, y0, w, h = window or (0, 0, self.width, self.height)
        sub = self._hwb[y0:y0 + h, x0:x0 + w][:, :, list(bands)]
        cube = np.ascontiguousarray(np.moveaxis(sub, 2, 0), dtype=np.float32)
        return finalize_cube(cube, np.ones((h, w), dtype=bool), self.extra_nodata)

    def ground_truth(self):
        return None if self._gt is None else np.asarray(self._gt)


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
