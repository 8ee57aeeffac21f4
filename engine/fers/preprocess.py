"""Band selection and the per-scene scaling of SPEC §0 (identical at training and inference)."""
from __future__ import annotations

import re
from typing import Optional, Sequence, Union

import numpy as np

from .errors import InputError, TooFewBandsError

# SPEC §0.2: x = ((x - min) / (max - min) * 2 - 1) * 0.1 → values in [-0.1, 0.1]
SCALE_HALF_RANGE = 0.1


def parse_band_list(text: str) -> list:
    """'1,3,10-20' (1-based, inclusive ranges, as GDAL numbers bands) → sorted unique 0-based list."""
    out = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise InputError(f"band list item '{part}' is not a band number or a range like 10-20")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if a < 1 or b < a:
            raise InputError(f"band list item '{part}': band numbers start at 1 and ranges must increase")
        out.extend(range(a - 1, b))
    if not out:
        raise InputError("the band list is empty")
    return sorted(set(out))


def band_ranges(idx: Sequence[int]) -> str:
    """0-based indices → '1-100,120' (1-based, compact: BAND_LIST's syntax), for metadata and messages."""
    parts, start = [], None
    for i, b in enumerate(idx):
        if start is None:
            start = b
        if i + 1 == len(idx) or idx[i + 1] != b + 1:
            parts.append(f"{start + 1}" if start == b else f"{start + 1}-{b + 1}")
            start = None
    return ",".join(parts)


def select_bands(band_count: int, bands: Union[int, Sequence[int], None] = 0) -> list:
    """0-based indices of the bands to use.

    ``bands`` is either N (the paper's protocol: the first N bands; 0 or None = all)
    or an explicit list of 0-based indices.
    """
    if bands is None or (isinstance(bands, (int, np.integer)) and int(bands) == 0):
        return list(range(band_count))
    if isinstance(bands, (int, np.integer)):
        n = int(bands)
        if n < 0:
            raise InputError(f"BANDS must be ≥ 0 (0 = all bands), got {n}")
        if n > band_count:
            raise TooFewBandsError(f"BANDS={n} asks for the first {n} bands, but the raster has only {band_count}")
        return list(range(n))
    idx = [int(b) for b in bands]
    if not idx:
        raise InputError("the band list is empty")
    bad = [b + 1 for b in idx if b < 0 or b >= band_count]
    if bad:
        raise InputError(f"band(s) {', '.join(map(str, bad))} do not exist: the raster has bands 1–{band_count}")
    return idx


def scale_cube(cube: np.ndarray, valid: np.ndarray, minmax: Optional[tuple] = None) -> tuple:
    """Scale in place to [-0.1, 0.1] with one global min/max over valid pixels (SPEC §0.2).

    Returns ``(cube, (min, max))``. Invalid pixels are left at 0, which is the
    scaled mid-range: harmless to convolutions and excluded from every statistic.
    """
    if not valid.any():
        raise InputError("every pixel is nodata (or NaN/Inf) in the selected bands: nothing to process")
    if minmax is None:
        # band by band: cube[:, valid] would copy the whole cube
        lo = min(float(band[valid].min()) for band in cube)
        hi = max(float(band[valid].max()) for band in cube)
    else:
        lo, hi = minmax
    if not hi > lo:
        raise InputError(f"all valid pixels have the same value ({lo:g}) in the selected bands: nothing to detect")
    scale = np.float32(2.0 * SCALE_HALF_RANGE / (hi - lo))
    offset = np.float32(-SCALE_HALF_RANGE - lo * 2.0 * SCALE_HALF_RANGE / (hi - lo))
    cube *= scale
    cube += offset
    cube[:, ~valid] = 0.0
    return cube, (lo, hi)
