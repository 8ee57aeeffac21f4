"""GDAL reading (by window, nodata-aware) and atomic GeoTIFF writing."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import Cancelled, InputError, OutputError
from .atomic import atomic_path
from .source import Source, finalize_cube


@dataclass
class Georef:
    """Where the pixels are: CRS as WKT and the GDAL geotransform (None if unknown)."""

    crs_wkt: Optional[str] = None
    geotransform: Optional[tuple] = None

    @property
    def known(self) -> bool:
        return bool(self.crs_wkt) or self.geotransform is not None


def raster_extent(georef: Optional[Georef], width: int, height: int) -> Optional[tuple]:
    """(xmin, ymin, xmax, ymax) of a north-up raster in its CRS; None without a geotransform or on a rotated grid."""
    gt = georef.geotransform if georef is not None else None
    if gt is None or gt[2] or gt[4]:
        return None
    xs, ys = sorted((gt[0], gt[0] + width * gt[1])), sorted((gt[3], gt[3] + height * gt[5]))
    return xs[0], ys[0], xs[1], ys[1]


def extent_window(georef: Optional[Georef], size: tuple, extent, what: str = "the raster") -> tuple:
    """The pixel window (x0, y0, w, h) of ``size`` (width, height) that covers ``extent`` (xmin, ymin, xmax,
    ymax, in the raster's CRS): every pixel the extent touches, clipped to the raster."""
    xmin, ymin, xmax, ymax = map(float, extent)
    if not (xmax > xmin and ymax > ymin):
        raise InputError(f"the extent must run from low to high: got x {xmin:.10g} to {xmax:.10g}, "
                         f"y {ymin:.10g} to {ymax:.10g}")
    gt = georef.geotransform if georef is not None else None
    if gt is None:
        raise InputError(f"{what} carries no georeferencing: an extent cannot be placed on it")
    if gt[2] or gt[4]:
        raise InputError(f"{what} is on a rotated grid: an extent cannot select a window of it; clip it first")
    width, height = size
    cols = sorted(((xmin - gt[0]) / gt[1], (xmax - gt[0]) / gt[1]))
    rows = sorted(((ymax - gt[3]) / gt[5], (ymin - gt[3]) / gt[5]))
    x0, x1 = max(0, int(np.floor(cols[0] + 1e-9))), min(width, int(np.ceil(cols[1] - 1e-9)))
    y0, y1 = max(0, int(np.floor(rows[0] + 1e-9))), min(height, int(np.ceil(rows[1] - 1e-9)))
    if x1 <= x0 or y1 <= y0:
        own = ", ".join(f"{v:.10g}" for v in raster_extent(georef, width, height))
        raise InputError(f"the extent {xmin:.10g}, {ymin:.10g}, {xmax:.10g}, {ymax:.10g} does not overlap {what} "
                         f"(its extent: {own}, in its CRS)")
    return x0, y0, x1 - x0, y1 - y0


def window_georef(georef: Georef, window) -> Georef:
    """The georeferencing of a pixel window of a raster (the origin moved to its first pixel)."""
    if window is None or georef.geotransform is None:
        return georef
    gt, (x0, y0) = georef.geotransform, window[:2]
    return Georef(georef.crs_wkt, (gt[0] + x0 * gt[1] + y0 * gt[2], gt[1], gt[2],
                                   gt[3] + x0 * gt[4] + y0 * gt[5], gt[4], gt[5]))


@contextlib.contextmanager
def gdal_exceptions():
    """GDAL exceptions on, for this block only: QGIS and other plugins share the module."""
    from osgeo import gdal

    was = gdal.GetUseExceptions()
    gdal.UseExceptions()
    try:
        yield gdal
    finally:
        if not was:
            gdal.DontUseExceptions()


def gdal_message(error) -> str:
    """GDAL's text of an error on one line. GDAL >= 3.10 spreads many messages over several lines ("...\nMay be
    caused by: ..."), and every error of ours is one line on stderr, so GDAL's text is folded where it enters one."""
    return " ".join(str(error).split())


def band_scale_offset(band):
    """(scale, offset) that turn a band's stored values into its values (value = raw × scale + offset), or None
    when there are none. GDAL leaves applying them to its callers; QGIS applies them when it reads a layer (and
    ignores both when the scale is 0, an artefact of GDAL 2.3-2.4), so the analyst's layer shows the scaled
    values and the engine must read those too: products that store integers with per-band factors (Hyperion's
    VNIR and SWIR, netCDF/HDF scale_factor and add_offset) would otherwise reach the networks with their bands
    in the wrong proportions, and the map would be silently wrong (RX alone is unaffected: it is affine-invariant)."""
    scale, offset = band.GetScale(), band.GetOffset()
    scale = 1.0 if scale is None else float(scale)
    offset = 0.0 if offset is None else float(offset)
    if scale == 0.0 or (scale == 1.0 and offset == 0.0):
        return None
    return scale, offset


def container_message(path, subdatasets):
    """What to say of a container (HDF5, netCDF: EMIT, PRISMA, EnMAP's HDF products) whose rasters are
    subdatasets: name the one that looks like the cube (three dimensions, the most values), and the rest."""
    import re

    def size(desc):
        dims = [int(d) for d in re.findall(r"\d+", (re.search(r"\[([\dx]+)\]", desc) or [None, ""])[1])]
        return (len(dims) >= 3, int(np.prod(dims)) if dims else 0)

    best = max(subdatasets, key=lambda s: size(s[1]))[0]
    shown = "; ".join(f"{n} ({d})" for n, d in subdatasets[:8]) + (
        f"; and {len(subdatasets) - 8} more" if len(subdatasets) > 8 else "")
    return (f"{path} is a container of {len(subdatasets)} datasets, not one raster: give one of them as the "
            f"input, e.g. {best} (in QGIS, add the file as a layer and pick that dataset). Datasets: {shown}")


class GdalSource(Source):
    """Any raster GDAL can open (GeoTIFF, ENVI, HDF, VRT, ...). Values are read as QGIS shows them: with each
    band's scale and offset applied (``band_scale_offset``); nodata is matched on the stored values."""

    def __init__(self, path: str):
        self.path = path
        with gdal_exceptions() as gdal:
            try:
                ds = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
            except RuntimeError as e:
                raise InputError(f"{path} is not a raster GDAL can read ({gdal_message(e)})") from None
            if ds is not None and ds.RasterCount == 0 and ds.GetSubDatasets():
                raise InputError(container_message(path, ds.GetSubDatasets()))
            if ds is None or ds.RasterCount == 0:
                raise InputError(f"{path} has no raster bands")
            self.width, self.height, self.band_count = ds.RasterXSize, ds.RasterYSize, ds.RasterCount
            gt = ds.GetGeoTransform(can_return_null=True)
            self.georef = Georef(ds.GetProjection() or None, tuple(gt) if gt else None)
            self.nodata_per_band = [ds.GetRasterBand(i).GetNoDataValue() for i in range(1, ds.RasterCount + 1)]
            self.nodata = self.nodata_per_band[0]
            self.scale_offset = [band_scale_offset(ds.GetRasterBand(i)) for i in range(1, ds.RasterCount + 1)]
            flags = ds.GetRasterBand(1).GetMaskFlags()
            self._dataset_mask = bool(flags & gdal.GMF_PER_DATASET) and not (flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA))
            from ..wavelengths import read_spectral_info

            spectral = read_spectral_info(ds)  # nm; FWHM and the ENVI bad-band list too
            self.wavelengths, self.fwhm, self.bad_bands = spectral.wavelengths, spectral.fwhm, spectral.bad_bands
            self.band_names = [ds.GetRasterBand(i).GetDescription() for i in range(1, ds.RasterCount + 1)]
            self.driver = ds.GetDriver().ShortName
        self._ds = None

    def ignore_file_nodata(self) -> None:
        declared = [v for v in self.nodata_per_band if v is not None]
        self.ignored_nodata = declared[0] if declared else None
        self.nodata_per_band = [None] * self.band_count
        self.nodata = None

    def describe(self) -> str:
        scaled = sum(so is not None for so in self.scale_offset)
        return super().describe() + (f"; band scale/offset applied to {scaled} band(s) (value = stored × scale "
                                     "+ offset, as QGIS shows them)" if scaled else "")

    def _dataset(self):
        # one handle kept open for windowed reads; GDAL caches blocks per handle
        if self._ds is None:
            from osgeo import gdal

            self._ds = gdal.OpenEx(self.path, gdal.OF_RASTER | gdal.OF_READONLY)
        return self._ds

    def read(self, bands: Sequence[int], window=None):
        x0, y0, w, h = window or (0, 0, self.width, self.height)
        with gdal_exceptions() as gdal:
            ds = self._dataset()
            cube = np.empty((len(bands), h, w), dtype=np.float32)
            valid = np.ones((h, w), dtype=bool)
            for k, b in enumerate(bands):
                try:
                    cube[k] = ds.GetRasterBand(b + 1).ReadAsArray(x0, y0, w, h, buf_type=gdal.GDT_Float32)
                except (RuntimeError, TypeError, AttributeError) as e:
                    raise InputError(
                        f"could not read band {b + 1} of {self.path}: the file is truncated or corrupt "
                        f"(GDAL: {gdal_message(e) or 'no data returned'})") from None
                nd = self.nodata_per_band[b]
                if nd is not None and np.isfinite(nd):
                    valid &= cube[k] != np.float32(nd)
                if self.scale_offset[b] is not None:
                    scale, offset = self.scale_offset[b]  # in float64, as QGIS does, then rounded once
                    cube[k] = cube[k].astype(np.float64) * scale + offset
            if self._dataset_mask:
                valid &= ds.GetRasterBand(1).GetMaskBand().ReadAsArray(x0, y0, w, h) > 0
        return finalize_cube(cube, valid, self.extra_nodata)


def check_output_path(path: str, inputs: Sequence[str] = ()) -> str:
    """Fail early (before any computation) if the GeoTIFF ``path`` cannot be written."""
    path = os.path.abspath(os.fspath(path))
    if not path.lower().endswith((".tif", ".tiff")):
        raise OutputError(f"output must be a GeoTIFF (.tif or .tiff): {path}")
    return check_writable(path, inputs)


def check_writable(path: str, inputs: Sequence[str] = ()) -> str:
    """Fail early if ``path`` (absolute) is an input, or its folder is missing or read-only, or it is a folder."""
    for src in inputs:
        if src and os.path.exists(src) and os.path.realpath(src) == os.path.realpath(path):
            raise OutputError(f"output path is the input itself ({path}); choose another file name")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise OutputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")
    if os.path.isdir(path):
        raise OutputError(f"output path is a folder: {path}")
    return path


def write_raster(path: str, bands: Sequence[np.ndarray], georef: Optional[Georef], nodata: Optional[float],
                 band_names: Sequence[str] = (), metadata: Optional[dict] = None,
                 band_metadata: Optional[Sequence[dict]] = None, feedback=None) -> str:
    """Write float32 bands as a tiled, compressed GeoTIFF, atomically.

    The file appears under ``path`` only once complete: it is written to a hidden
    temporary name in the same folder and renamed, so an error or cancel never
    leaves a half-written map that QGIS would happily display.
    """
    path = check_output_path(path)
    with atomic_path(path, ".partial.tif") as tmp, gdal_exceptions() as gdal:
        h, w = bands[0].shape
        opts = ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=3", "BIGTIFF=IF_SAFER"]
        try:
            ds = gdal.GetDriverByName("GTiff").Create(tmp, w, h, len(bands), gdal.GDT_Float32, opts)
        except RuntimeError as e:
            raise OutputError(f"cannot create {path}: {gdal_message(e)}") from None
        if georef is not None:
            if georef.geotransform is not None:
                ds.SetGeoTransform(georef.geotransform)
            if georef.crs_wkt:
                ds.SetProjection(georef.crs_wkt)
        for key, value in (metadata or {}).items():
            ds.SetMetadataItem(str(key), str(value))
        for i, arr in enumerate(bands):
            if feedback is not None and feedback.cancelled():
                raise Cancelled()
            band = ds.GetRasterBand(i + 1)
            if nodata is not None:
                band.SetNoDataValue(float(nodata))
            if i < len(band_names):
                band.SetDescription(band_names[i])
            if band_metadata and i < len(band_metadata):
                for key, value in band_metadata[i].items():
                    band.SetMetadataItem(str(key), str(value))
            try:
                band.WriteArray(np.ascontiguousarray(arr, dtype=np.float32))
            except RuntimeError as e:
                raise OutputError(f"writing {path} failed: {gdal_message(e)}") from None
        try:
            ds.FlushCache()
            ds = None  # closes and flushes
        except RuntimeError as e:
            raise OutputError(f"writing {path} failed (disk full?): {gdal_message(e)}") from None
    return path
