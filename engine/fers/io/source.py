"""The common interface of every hyperspectral source."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError


@dataclass
class Georef:
    """Where the pixels are: CRS as WKT and the GDAL geotransform (None if unknown)."""

    crs_wkt: Optional[str] = None
    geotransform: Optional[tuple] = None
    # a raster placed by ground control points alone (no geotransform): (x, y, z, pixel, line) each, and their CRS
    gcps: tuple = ()
    gcp_wkt: Optional[str] = None

    @property
    def known(self) -> bool:
        return bool(self.crs_wkt) or self.geotransform is not None or bool(self.gcps)


class Source:
    """A band-sequential view of a scene: shape, georeferencing, per-window reads.

    ``read`` returns ``(cube, valid)``: ``cube`` is float32 ``(bands, rows, cols)``
    holding the raw values of the requested bands (0-based indices), with invalid
    pixels set to 0 so that no NaN can leak into a convolution; ``valid`` is a bool
    ``(rows, cols)`` mask that is False wherever any requested band is nodata,
    NaN or Inf (SPEC §0.3).
    """

    path: str
    width: int
    height: int
    band_count: int
    georef: "Georef"  # noqa: F821 (io.raster)
    wavelengths: Optional[list]  # nanometres, one per band, or None
    fwhm: Optional[list] = None  # nanometres, one per band, or None
    bad_bands: Sequence[int] = ()  # 0-based bands flagged bad (ENVI bbl = 0)
    nodata: Optional[float]  # the input's declared nodata value (first band), if any
    # more no-data values or ranges than the file declares: ((lo, hi), ...) inclusive, on the values as read
    # (after a band's scale/offset), e.g. the zero fill around a flight line that carries no nodata tag
    extra_nodata: tuple = ()
    # per band, (scale, offset) applied on reading or None (GDAL rasters; io.raster.band_scale_offset)
    scale_offset: Sequence = ()
    # the file's nodata value when the caller asked to read it as data (QGIS: the layer's "No data value"
    # unticked in Properties ▸ Transparency), else None
    ignored_nodata: Optional[float] = None

    def read(self, bands: Sequence[int], window=None):
        raise NotImplementedError

    def ground_truth(self):
        """Anomaly mask shipped inside the source (research formats), else None."""
        return None

    def ignore_file_nodata(self) -> None:
        """Read the file's nodata value as data (research files declare none)."""

    def describe(self) -> str:
        extra = describe_nodata(self.extra_nodata)
        return (f"{os.path.basename(self.path)}: {self.width}×{self.height} px, {self.band_count} bands"
                + (f"; the file's nodata value {self.ignored_nodata:g} read as data, as asked"
                   if self.ignored_nodata is not None else "")
                + (f"; no data also where a band reads {extra}" if extra else ""))


def describe_nodata(ranges) -> str:
    """((0, 0), (10, 20)) → '0, 10 to 20': no-data values and ranges as the logs say them."""
    return ", ".join(f"{lo:g}" if lo == hi else f"{lo:g} to {hi:g}" for lo, hi in ranges)


def finalize_cube(cube: np.ndarray, valid: np.ndarray, extra_nodata=()) -> tuple:
    """Mask NaN/Inf and the ``extra_nodata`` ranges (in any band, as the file's nodata), zero invalid pixels
    in place; shared by every reader."""
    for band in cube:  # band by band: np.isfinite(cube) would allocate a cube-sized mask
        valid &= np.isfinite(band)
        for lo, hi in extra_nodata:
            valid &= ~((band >= np.float32(lo)) & (band <= np.float32(hi)))
    if not valid.all():
        cube[:, ~valid] = 0.0
    return cube, valid


def require_valid(src: Source, bands: Sequence[int], valid: np.ndarray, window=None) -> None:
    """Refuse a read in which no pixel is valid, saying why: the selected bands that are no data in every pixel
    on their own (typically a bad band filled with the nodata value, which voids every pixel since a pixel is
    valid only where all its bands are), else that the bands' no data covers different pixels. Each band is
    read alone only then: the diagnosis costs nothing on a good read."""
    if valid.any():
        return
    from ..preprocess import band_ranges

    head = "every pixel is nodata (or NaN/Inf) in the selected bands: "
    empty = [b for b in dict.fromkeys(bands) if not src.read([b], window)[1].any()]
    if not empty:
        raise InputError(head + f"each of the {len(set(bands))} bands has valid pixels, but no pixel is valid in all "
                                "of them at once; check the nodata values and the band range")
    why = [f"the file's nodata value {src.nodata:g}"] if src.nodata is not None else []
    if src.extra_nodata:
        why.append(f"the no-data values given ({describe_nodata(src.extra_nodata)})")
    why.append("NaN/Inf")
    flagged = sorted(set(empty) & set(src.bad_bands or ()))
    flag = f"; {band_ranges(flagged)} flagged bad in the file (ENVI bbl)" if flagged else ""
    keep = sorted(set(bands) - set(empty))
    advice = (f"leave them out (band list {band_ranges(keep)}: BAND_LIST / --band-list)" if keep else
              "check the nodata value and the band range")
    why = " or ".join([", ".join(why[:-1]), why[-1]]) if len(why) > 1 else why[0]
    raise InputError(head + f"band(s) {band_ranges(sorted(empty))} are no data in every pixel ({why}{flag}); {advice}")


def nodata_ranges(values) -> tuple:
    """No-data values or ranges as ((lo, hi), ...): a number is (v, v); a (lo, hi) pair is a range. NaN needs
    none (NaN and Inf are always nodata)."""
    out = []
    for v in values or ():
        try:
            lo, hi = (v, v) if np.isscalar(v) else tuple(v)
            lo, hi = float(lo), float(hi)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"'{str(v)[:40]}' is not a no-data value or range (e.g. 0, -9999 or 0:10)") from None
        if np.isnan(lo) or np.isnan(hi):
            if np.isscalar(v):
                continue  # the value NaN: NaN pixels are no data anyway
            raise InputError(f"a no-data range needs two numbers, got {lo:g} to {hi:g} (NaN is always no data)")
        if lo > hi:
            raise InputError(f"a no-data range must run from low to high, got {lo:g} to {hi:g}")
        out.append((lo, hi))
    return tuple(out)


def parse_nodata(text) -> tuple:
    """'0', '0, -9999', '0;-9999' or '-10:-5' (a range, both ends included), or a list of such tokens →
    ``nodata_ranges``. The NODATA parameter's and --nodata's syntax."""
    tokens = text if isinstance(text, (list, tuple)) else [text]
    out = []
    for tok in tokens:
        for part in str(tok).replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            lo, sep, hi = part.partition(":") if ":" in part[1:] else (part, "", "")
            try:
                out.append((float(lo), float(hi)) if sep else float(lo))
            except ValueError:
                raise InputError(f"'{part}' is not a no-data value or range (e.g. 0, -9999 or 0:10)") from None
    return nodata_ranges(out)
