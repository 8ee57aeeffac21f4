"""Band selection and the per-scene scaling of SPEC §0 (identical at training and inference)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from .errors import InputError, TooFewBandsError

# SPEC §0.2: x = ((x - min) / (max - min) * 2 - 1) * 0.1 → values in [-0.1, 0.1]
SCALE_HALF_RANGE = 0.1


MAX_BAND_NUMBER = 100_000  # a band list is bounded before it is expanded (GDAL's GeoTIFF stops at 65535 bands)
_NUMBERS = re.compile(r"(\d+)(?:-(\d+))?")
_WAVELENGTHS = re.compile(r"(\d+(?:\.\d*)?)(?:-(\d+(?:\.\d*)?))?(nm|um|µm)")


def parse_band_list(text: str):
    """'1,3,10-20' (1-based, inclusive ranges, as GDAL numbers bands) → sorted unique 0-based list.

    Items may also be wavelengths, as an analyst thinks of bands: '400-1340nm' (every band whose centre lies
    in the range, ends included), '2.2um' (the band nearest that wavelength). A list with any such item comes
    back as a ``BandList``, resolved against the raster's band centres once it is open (``BandList.resolve``).
    """
    numbers, wavelengths = [], []
    for part in str(text).replace(" ", "").lower().split(","):
        if not part:
            continue
        m, w = _NUMBERS.fullmatch(part), _WAVELENGTHS.fullmatch(part)
        if m:
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            if a < 1 or b < a:
                raise InputError(f"band list item '{part[:40]}': band numbers start at 1 and ranges must increase")
            if b > MAX_BAND_NUMBER:  # before the range is expanded: '1-20000000' would be 20 million numbers
                raise InputError(f"band list item '{part[:40]}' goes past band {MAX_BAND_NUMBER}, more than any "
                                 "raster has")
            numbers.extend(range(a - 1, b))
        elif w:
            factor = 1.0 if w.group(3) == "nm" else 1000.0
            lo, hi = float(w.group(1)) * factor, float(w.group(2) or w.group(1)) * factor
            if hi < lo:
                raise InputError(f"band list item '{part}': a wavelength range must increase")
            wavelengths.append((part, lo, hi))
        else:
            raise InputError(f"band list item '{part[:40]}' is not a band number or a range like 10-20, nor a "
                             "wavelength or a range like 400-1340nm")
    if not numbers and not wavelengths:
        raise InputError("the band list is empty")
    if wavelengths:
        return BandList(str(text).strip(), tuple(sorted(set(numbers))), tuple(wavelengths))
    return sorted(set(numbers))


@dataclass(frozen=True)
class BandList:
    """A band list with wavelength items (``parse_band_list``): band numbers (0-based) and (item, lo, hi) in nm,
    lo == hi meaning the band nearest that wavelength."""
    text: str
    numbers: tuple
    wavelengths: tuple

    def resolve(self, centres: Optional[Sequence[float]], band_count: int) -> list:
        if centres is None:
            raise InputError(f"the band list '{self.text}' selects bands by wavelength, but the raster carries no "
                             "wavelengths; give band numbers (e.g. 1-100)")
        c = np.asarray(centres, dtype=float)
        step = float(np.median(np.diff(np.sort(c)))) if len(c) > 1 else 0.0
        out = list(self.numbers)
        for item, lo, hi in self.wavelengths:
            if lo == hi:  # the nearest band, if the wavelength lies within the sensor's range (one band's step)
                hit = [int(np.argmin(np.abs(c - lo)))] if c.min() - step <= lo <= c.max() + step else []
            else:
                hit = np.flatnonzero((c >= lo) & (c <= hi)).tolist()
            if not hit:
                raise InputError(f"band list item '{item}' selects no band: the raster's band centres run from "
                                 f"{c.min():.1f} to {c.max():.1f} nm")
            out.extend(hit)
        return select_bands(band_count, sorted(set(out)))


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
    bad = sorted({b for b in idx if b < 0 or b >= band_count})
    if bad:
        shown = band_ranges([b for b in bad if b >= 0]).replace(",", ", ")
        raise InputError(f"band(s) {shown[:200]}{' …' if len(shown) > 200 else ''} do not exist: the raster has bands "
                         f"1–{band_count}")
    return idx


def scale_cube(cube: np.ndarray, valid: np.ndarray, minmax: Optional[tuple] = None) -> tuple:
    """Scale in place to [-0.1, 0.1] with one global min/max over valid pixels (SPEC §0.2).

    Returns ``(cube, (min, max))``. Invalid pixels are left at 0, which is the
    scaled mid-range: harmless to convolutions and excluded from every statistic.
    """
    if not valid.any():
        raise InputError("every pixel is nodata (or NaN/Inf) in the selected bands: nothing to process")
    every = bool(valid.all())
    if minmax is None:
        # band by band: cube[:, valid] would copy the whole cube (and so would band[valid], when no pixel is out)
        lo = min(float((band if every else band[valid]).min()) for band in cube)
        hi = max(float((band if every else band[valid]).max()) for band in cube)
    else:
        lo, hi = minmax
    if not hi > lo:
        raise InputError(f"all valid pixels have the same value ({lo:g}) in the selected bands: nothing to detect")
    scale = np.float32(2.0 * SCALE_HALF_RANGE / (hi - lo))
    offset = np.float32(-SCALE_HALF_RANGE - lo * 2.0 * SCALE_HALF_RANGE / (hi - lo))
    cube *= scale
    cube += offset
    if not every:
        cube[:, ~valid] = 0.0
    return cube, (lo, hi)
