"""The common interface of every hyperspectral source."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError


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

    def read(self, bands: Sequence[int], window=None):
        raise NotImplementedError

    def ground_truth(self):
        """Anomaly mask shipped inside the source (research formats), else None."""
        return None

    def describe(self) -> str:
        return f"{os.path.basename(self.path)}: {self.width}×{self.height} px, {self.band_count} bands"


def finalize_cube(cube: np.ndarray, valid: np.ndarray) -> tuple:
    """Mask NaN/Inf, zero invalid pixels in place; shared by every reader."""
    for band in cube:  # band by band: np.isfinite(cube) would allocate a cube-sized mask
        valid &= np.isfinite(band)
    if not valid.all():
        cube[:, ~valid] = 0.0
    return cube, valid


def open_source(path: str, variable: Optional[str] = None) -> Source:
    """Open a hyperspectral scene from any supported format."""
    from .raster import GdalSource
    from .research import ArraySource, is_research_path

    path = os.fspath(path)
    if not os.path.exists(path) and "://" not in path and not path.startswith("/vsi") and ":" not in os.path.basename(path):
        raise InputError(f"input not found: {path}")
    if os.path.isdir(path):
        raise InputError(f"input is a folder, not a raster: {path}")
    if is_research_path(path):
        return ArraySource.from_file(path, variable)
    if variable:
        raise InputError("--variable only applies to .mat files")
    return GdalSource(path)
