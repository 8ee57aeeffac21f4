"""GDAL reading (by window, nodata-aware) and atomic GeoTIFF writing."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import Cancelled, InputError, OutputError
from .atomic import atomic_path
from .source import Georef, Source, finalize_cube  # noqa: F401  (Georef: also fers.io.raster.Georef)


def read_georef(ds) -> Georef:
    """A dataset's georeferencing: its geotransform and CRS, or, for a raster placed by GCPs alone (an unwarped
    scene), the GCPs and their CRS, which the outputs carry on so that QGIS places them as it places the input."""
    gt = ds.GetGeoTransform(can_return_null=True)
    gcps = tuple((g.GCPX, g.GCPY, g.GCPZ, g.GCPPixel, g.GCPLine) for g in ds.GetGCPs() or ()) if gt is None else ()
    return Georef(ds.GetProjection() or None, tuple(gt) if gt else None, gcps,
                  (ds.GetGCPProjection() or None) if gcps else None)


def apply_georef(gdal, ds, georef: Optional[Georef]) -> None:
    """Write ``georef`` on a new dataset: the geotransform and CRS, or the GCPs and their CRS."""
    if georef is None:
        return
    if georef.geotransform is not None:
        ds.SetGeoTransform(georef.geotransform)
    if georef.crs_wkt:
        ds.SetProjection(georef.crs_wkt)
    if georef.gcps and georef.geotransform is None:
        ds.SetGCPs([gdal.GCP(*g) for g in georef.gcps], georef.gcp_wkt or "")


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
        if georef is not None and georef.gcps:
            raise InputError(f"{what} is placed by ground control points only (not warped): an extent cannot select "
                             "a window of it; warp it first (gdalwarp, or Raster ▸ Projections ▸ Warp)")
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
        return georef  # (GCPs alone: extent_window refuses a window)
    gt, (x0, y0) = georef.geotransform, window[:2]
    return Georef(georef.crs_wkt, (gt[0] + x0 * gt[1] + y0 * gt[2], gt[1], gt[2],
                                   gt[3] + x0 * gt[4] + y0 * gt[5], gt[4], gt[5]))


@contextlib.contextmanager
def gdal_exceptions():
    """GDAL exceptions on, for this block only: QGIS and other plugins share the module; and GDAL's switches that
    keep a file from running code or reaching the network (``io.guard.gdal_guard``), for this thread."""
    from osgeo import gdal

    from .guard import gdal_guard

    was = gdal.GetUseExceptions()
    gdal.UseExceptions()
    try:
        with gdal_guard(gdal):
            yield gdal
    finally:
        if not was:
            gdal.DontUseExceptions()


def open_dataset(gdal, path: str):
    """``gdal.OpenEx`` read-only on a raster driver, the drivers of remote services left out unless the network
    is allowed (``io.guard``); the caller has checked the path (``guard.check_input``). A GeoTIFF whose blocks
    are worth decoding on several threads is opened again with them (``threaded_decoding``)."""
    from .guard import allowed_drivers

    drivers = allowed_drivers(gdal)

    def open_():
        if drivers is None:
            return gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
        return gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY, allowed_drivers=drivers)

    ds = open_()
    threads = threaded_decoding(gdal, ds)
    if threads is None:
        return ds
    ds = None
    before = gdal.GetThreadLocalConfigOption("GDAL_NUM_THREADS", None)
    gdal.SetThreadLocalConfigOption("GDAL_NUM_THREADS", threads)
    try:
        return open_()
    finally:
        gdal.SetThreadLocalConfigOption("GDAL_NUM_THREADS", before)


def threaded_decoding(gdal, ds) -> Optional[str]:
    """GDAL_NUM_THREADS for a GeoTIFF that gains from decoding a read's blocks on several threads, else None.

    GDAL's GeoTIFF driver (>= 3.6) takes NUM_THREADS from GDAL_NUM_THREADS when it opens a file; unset, a
    read decodes its blocks one after the other. Measured on 2 cores (GDAL 3.6, 512²×200 float32, our reader):
    tiled DEFLATE, pixel-interleaved 0.73 → 0.40 s and uncompressed pixel-interleaved strips 0.36 → 0.20 s,
    but uncompressed band-interleaved strips 0.20 → 0.75 s (thousands of 8 KB blocks, each a task). So: when
    the file is compressed or pixel-interleaved. Set for this thread and only while opening, so QGIS's own
    settings and other threads are untouched; a GDAL_NUM_THREADS the user set wins (None: theirs applies),
    and OMP_NUM_THREADS (what a Dask nanny or a job scheduler gives a worker) caps it, so a batch of workers
    does not oversubscribe the cores."""
    if ds is None or ds.GetDriver().ShortName != "GTiff" or gdal.GetConfigOption("GDAL_NUM_THREADS"):
        return None
    compression = (ds.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") or "NONE").upper()
    interleave = (ds.GetMetadataItem("INTERLEAVE", "IMAGE_STRUCTURE") or "").upper()
    if compression == "NONE" and not (interleave == "PIXEL" and ds.RasterCount > 1):
        return None
    threads = os.environ.get("OMP_NUM_THREADS", "").strip()
    if threads.isdigit():
        return threads if int(threads) > 1 else None
    return "ALL_CPUS"


def decoding_thread_count(gdal, ds) -> int:
    """How many blocks GDAL decodes at once for reads of ``ds`` (the user's GDAL_NUM_THREADS, else
    ``threaded_decoding``'s choice, else 1): a read window should span at least that many blocks, since the
    threads share out the blocks of one call."""
    value = (gdal.GetConfigOption("GDAL_NUM_THREADS") or threaded_decoding(gdal, ds) or "1").strip().upper()
    if value == "ALL_CPUS":
        return os.cpu_count() or 1
    return int(value) if value.isdigit() and int(value) > 0 else 1


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


COMPLEX_TYPES = ("CInt16", "CInt32", "CFloat32", "CFloat64")
# drivers that read pixels straight from a raw file at offsets the header gives: a file shorter than the header
# says reads as zeros past its end, without an error, so its size is checked against the header's
RAW_DRIVERS = ("ENVI", "EHdr", "GenBin", "PAux", "ISCE", "ROI_PAC", "LAN", "MFF", "BT", "GSC", "NDF", "DOQ1", "DOQ2")


def check_samples(gdal, ds, path: str) -> None:
    """Refuse at opening what would read wrong: complex samples (SAR; the engine reads real values) and a raw file
    holding fewer bytes than its header declares."""
    types = {gdal.GetDataTypeName(ds.GetRasterBand(i).DataType) for i in range(1, ds.RasterCount + 1)}
    cplx = sorted(types & set(COMPLEX_TYPES))
    if cplx:
        raise InputError(f"{path} holds complex samples ({', '.join(cplx)}): FERS reads real values; take their "
                         "amplitude first (e.g. gdal_translate, or QGIS's Raster calculator)")
    if ds.GetDriver().ShortName not in RAW_DRIVERS:
        return
    files = ds.GetFileList() or []
    data = next((f for f in files if os.path.isfile(f) and not f.lower().endswith((".hdr", ".xml", ".aux"))), None)
    if data is None:
        return
    band = ds.GetRasterBand(1)
    item = gdal.GetDataTypeSize(band.DataType) // 8
    offset = 0
    try:
        offset = int(float((ds.GetMetadata("ENVI") or {}).get("header_offset", 0)))
    except ValueError:
        pass
    need = offset + ds.RasterXSize * ds.RasterYSize * ds.RasterCount * item
    size = os.path.getsize(data)
    if size < need:
        raise InputError(f"{path} is truncated: its header declares {ds.RasterXSize}×{ds.RasterYSize} px × "
                         f"{ds.RasterCount} bands ({need} bytes), but {os.path.basename(data)} holds {size} bytes")


def signed_byte_bands(gdal, ds) -> set:
    """0-based bands of GDAL's Byte type flagged signed (``PIXELTYPE=SIGNEDBYTE``, GDAL < 3.7's Int8), which QGIS
    shows as -128..127. GDAL >= 3.7 still flags such files so but prints a deprecation warning on stderr when
    PIXELTYPE is asked for, which would break the one-line output: asked for quietly."""
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        return {i for i in range(ds.RasterCount)
                if ds.GetRasterBand(i + 1).DataType == gdal.GDT_Byte
                and ds.GetRasterBand(i + 1).GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE"}
    finally:
        gdal.PopErrorHandler()


def as_signed_bytes(band: np.ndarray) -> None:
    """Stored bytes 128..255 of a signed-byte band are -128..-1 (in place, before nodata and scale/offset)."""
    band[band >= 128] -= 256


class GdalSource(Source):
    """Any raster GDAL can open (GeoTIFF, ENVI, HDF, VRT, ...). Values are read as QGIS shows them: with each
    band's scale and offset applied (``band_scale_offset``); nodata is matched on the stored values."""

    def __init__(self, path: str):
        self.path = path
        from .guard import check_input

        check_input(path)
        with gdal_exceptions() as gdal:
            try:
                ds = open_dataset(gdal, path)
            except RuntimeError as e:
                raise InputError(f"{path} is not a raster GDAL can read ({gdal_message(e)})") from None
            if ds is not None and ds.RasterCount == 0 and ds.GetSubDatasets():
                raise InputError(container_message(path, ds.GetSubDatasets()))
            if ds is None or ds.RasterCount == 0:
                raise InputError(f"{path} has no raster bands")
            self.width, self.height, self.band_count = ds.RasterXSize, ds.RasterYSize, ds.RasterCount
            check_samples(gdal, ds, path)
            self.georef = read_georef(ds)
            self._signed = signed_byte_bands(gdal, ds)
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

            self._ds = open_dataset(gdal, self.path)
        return self._ds

    def read(self, bands: Sequence[int], window=None):
        """The bands' values in ``window`` (x0, y0, w, h), read at the file's own grain (``read_windows``): each
        GDAL call fills one window of every selected band straight into the cube, so a pixel-interleaved,
        tiled or compressed file decodes each block once instead of once per band; the values are finished
        window by window while they are in the CPU's cache."""
        x0, y0, w, h = window or (0, 0, self.width, self.height)
        bands = [int(b) for b in bands]
        cube = np.empty((len(bands), h, w), dtype=np.float32)
        valid = np.ones((h, w), dtype=bool)
        with gdal_exceptions() as gdal:
            ds = self._dataset()
            if not hasattr(self, "_container"):
                self._container = _container_array(ds, gdal)
            container = self._container
            block = _source_block(ds, bands, container)
            whole = container is not None and _one_run(bands)
            if whole:  # one array read of the whole window straight into the cube (see _read_container)
                self._read_or_refuse(lambda: _read_container(container, cube, bands, x0, y0, self.height), y0, h)
            # a container's other band lists are read as the span of bands they cover (_read_container)
            span = (max(bands) - min(bands) + 1 if container is not None and bands and not whole
                    and _read_span(container, bands) else len(bands))
            for x, y, cw, ch in read_windows(block, (x0, y0, w, h), span, min_blocks=decoding_thread_count(gdal, ds)):
                part, ok = cube[:, y - y0:y - y0 + ch, x - x0:x - x0 + cw], valid[y - y0:y - y0 + ch, x - x0:x - x0 + cw]
                try:
                    if whole:
                        pass  # read above; finished here window by window, while in the CPU's caches
                    elif container is not None:
                        _read_container(container, part, bands, x, y, self.height)
                    else:
                        ds.ReadAsArray(x, y, cw, ch, buf_obj=part, band_list=[b + 1 for b in bands],
                                       buf_type=gdal.GDT_Float32)
                    if self._dataset_mask:
                        ok &= ds.GetRasterBand(1).GetMaskBand().ReadAsArray(x, y, cw, ch) > 0
                except (RuntimeError, TypeError, AttributeError, ValueError) as e:
                    raise InputError(
                        f"could not read rows {y + 1}–{y + ch} of {self.path}: the file is truncated or corrupt "
                        f"(GDAL: {gdal_message(e) or 'no data returned'})") from None
                self._stored_to_values(part, ok, bands)
                finalize_cube(part, ok, self.extra_nodata)
                if container is None:
                    ds.FlushCache()  # each block is read once: GDAL's cache need not keep a second copy of the cube
        return cube, valid

    def _read_or_refuse(self, read, y, h) -> None:
        try:
            read()
        except (RuntimeError, TypeError, AttributeError, ValueError) as e:
            raise InputError(
                f"could not read rows {y + 1}–{y + h} of {self.path}: the file is truncated or corrupt "
                f"(GDAL: {gdal_message(e) or 'no data returned'})") from None

    def _stored_to_values(self, part, ok, bands) -> None:
        """Signed bytes as QGIS shows them, nodata matched on the stored values, then each band's scale and offset (in float64, as QGIS does,
        rounded once to float32), in place on a window of the cube."""
        for k, b in enumerate(bands):
            if b in self._signed:  # GDAL < 3.7 reads a PIXELTYPE=SIGNEDBYTE band as 0..255
                as_signed_bytes(part[k])
            nd = self.nodata_per_band[b]
            if nd is not None and np.isfinite(nd):
                ok &= part[k] != np.float32(nd)
            if self.scale_offset[b] is not None:
                scale, offset = self.scale_offset[b]
                part[k] = part[k].astype(np.float64) * scale + offset


# Bytes of float32 values (all selected bands) one read call fills: big enough that a call's fixed cost is
# nothing, small enough that the blocks GDAL decodes for it stay in its block cache and in the CPU's caches.
READ_BUDGET = 64 * 2 ** 20


def read_windows(block, window, bands: int, budget: Optional[int] = None, min_blocks: int = 1) -> list:
    """The windows (x, y, w, h) that cover ``window`` (x0, y0, w, h) along the file's own blocks ``block``
    (width, height): row strips whose height is a multiple of the block height, as many block rows as
    ``budget`` bytes of ``bands`` float32 values allow (at least one); where one block row is already over
    it (wide tiles, many bands), the strip is cut into runs of whole block columns too. Edges fall on the
    file's block boundaries, so no block is needed by two windows and each is decoded once. ``min_blocks``:
    a window that has to be cut holds at least that many block columns (GDAL's decoding threads work on the
    blocks of one call; ``decoding_thread_count``)."""
    bw, bh = max(1, int(block[0])), max(1, int(block[1]))
    x0, y0, w, h = window
    budget = READ_BUDGET if budget is None else budget
    per_px = 4 * max(1, bands)
    rows = max(1, budget // (per_px * w * bh)) * bh
    cols = w if per_px * w * bh <= budget else max(1, min_blocks, budget // (per_px * bh * bw)) * bw
    return [(x, y, cw, ch) for y, ch in _aligned(y0, h, rows, bh) for x, cw in _aligned(x0, w, cols, bw)]


def _aligned(start: int, length: int, step: int, grain: int) -> list:
    """(start, length) pieces of [start, start + length) of at most ``step``, cut on multiples of ``grain``."""
    out, pos, end = [], start, start + length
    step = max(grain, -(-step // grain) * grain)  # whole blocks: every cut falls on a boundary, and moves on
    while pos < end:
        nxt = min(end, (pos // grain) * grain + step)
        out.append((pos, nxt - pos))
        pos = nxt
    return out


def _source_block(ds, bands, container) -> tuple:
    """The (width, height) of the blocks the file stores the selected bands in: GDAL's block size, and for a
    container's cube its chunk's."""
    if container is not None:
        chunk = container.array.GetBlockSize()
        if chunk and all(chunk[1:]):
            return int(chunk[2]), int(chunk[1])
    return tuple(ds.GetRasterBand(bands[0] + 1 if bands else 1).GetBlockSize())


@dataclass
class _ContainerCube:
    array: object  # gdal.MDArray (bands, rows, columns)
    flipped: bool  # GDAL's raster view shows the rows bottom-up (netCDF with an increasing y)
    dataset: object  # keeps the array's dataset open


def _container_array(ds, gdal) -> Optional[_ContainerCube]:
    """A netCDF or HDF5 cube (bands, rows, columns) as GDAL's multidimensional array, else None. GDAL's
    raster view of these reads band by band, each through the library's chunk cache (HDF5's is 1 MB): a
    chunk that holds many bands (64×64 pixels of 200 float32 bands is 3.3 MB) is then decompressed once per
    band. One read of the array takes every band of a window in a single call (one H5Dread), which decodes
    each chunk once. Used only when the array is exactly the raster GDAL shows (same shape; the first and
    last rows of band 1 equal, straight or flipped), else the raster view is read."""
    import re

    driver = ds.GetDriver().ShortName
    if driver not in ("HDF5Image", "netCDF"):
        return None
    desc = ds.GetDescription()
    m = re.match(r'^(?:HDF5|NETCDF):"(.*)":(.+)$', desc) or re.match(r"^(?:HDF5|NETCDF):([^\":]+):(.+)$", desc)
    path, name = (m.group(1), "/" + m.group(2).lstrip("/")) if m else (desc, None)
    shape = [ds.RasterCount, ds.RasterYSize, ds.RasterXSize]
    try:
        md = gdal.OpenEx(path, gdal.OF_MULTIDIM_RASTER | gdal.OF_READONLY)
        if md is None:
            return None
        root = md.GetRootGroup()
        if name is None:  # a plain file GDAL opened as its one cube
            names = [n for n in (root.GetMDArrayNames() or ())
                     if [d.GetSize() for d in root.OpenMDArray(n).GetDimensions()] == shape]
            if len(names) != 1:
                return None
            name = "/" + names[0]
        arr = root.OpenMDArrayFromFullname(name)
        if arr is None or [d.GetSize() for d in arr.GetDimensions()] != shape:
            return None
        n = min(ds.RasterXSize, 64)
        first, last = (ds.GetRasterBand(1).ReadAsArray(0, r, n, 1, buf_type=gdal.GDT_Float64)[0]
                       for r in (0, ds.RasterYSize - 1))
        rows = [arr.ReadAsArray(array_start_idx=[0, r, 0], count=[1, 1, n],
                                buffer_datatype=gdal.ExtendedDataType.Create(gdal.GDT_Float64))[0, 0]
                for r in (0, ds.RasterYSize - 1)]
    except (RuntimeError, TypeError, ValueError, AttributeError):
        return None
    same = lambda u, v: np.array_equal(u, v, equal_nan=True)  # noqa: E731
    if same(first, rows[0]) and same(last, rows[1]):
        return _ContainerCube(arr, False, md)
    if same(first, rows[1]) and same(last, rows[0]):
        return _ContainerCube(arr, True, md)
    return None


def _one_run(bands) -> bool:
    """Whether ``bands`` are consecutive and ascending (the first N bands, a band range): one array read."""
    return len(bands) > 0 and list(bands) == list(range(bands[0], bands[0] + len(bands)))


def _read_container(cc: _ContainerCube, part, bands, x, y, height) -> None:
    """A window of the selected bands of a container's cube into ``part`` (bands, rows, columns), rows counted
    from the top of GDAL's raster view of ``height`` rows.

    Consecutive bands into a contiguous ``part`` (the whole cube: ``GdalSource.read`` reads a container so)
    are one array read straight into it, one H5Dread that decodes each chunk once in the library's own order
    and needs no second buffer: read in windows through a buffer, the copy alone cost ~10 % of the read
    (GDAL 3.6's NumPy binding of multidimensional reads ignores a view's strides, so a window of the cube
    cannot be read into directly). Other band lists (out of order, with gaps) read the span of bands from
    the lowest to the highest selected through a window-sized buffer, then take the selected ones: chunks
    that hold many bands are still decoded once per window, not once per run of bands (``_read_span``);
    else one read per run of consecutive bands."""
    n, rows, cols = part.shape
    start = [bands[0], height - y - rows if cc.flipped else y, x]
    # bottom-up rows are read forwards and mirrored here: a negative step makes GDAL's netCDF driver
    # read value by value (minutes for a window)
    if _one_run(bands) and part.flags.c_contiguous:
        cc.array.ReadAsArray(array_start_idx=start, count=[n, rows, cols], buf_obj=part)
        if cc.flipped:
            for band in part:
                band[...] = band[::-1].copy()  # one band's copy at a time
        return
    lo, hi = min(bands), max(bands)
    if _read_span(cc, bands):
        buf = np.empty((hi - lo + 1) * rows * cols, dtype=np.float32).reshape(hi - lo + 1, rows, cols)
        cc.array.ReadAsArray(array_start_idx=[lo] + start[1:], count=list(buf.shape), buf_obj=buf)
        sel = buf[[b - lo for b in bands]]
        part[...] = sel[:, ::-1] if cc.flipped else sel
        return
    buf, k = np.empty(part.size, dtype=np.float32), 0
    while k < n:  # one read per run of consecutive bands
        m = 1
        while k + m < n and bands[k + m] == bands[k] + m:
            m += 1
        out = buf[:m * rows * cols].reshape(m, rows, cols)
        cc.array.ReadAsArray(array_start_idx=[bands[k]] + start[1:], count=[m, rows, cols], buf_obj=out)
        part[k:k + m] = out[:, ::-1] if cc.flipped else out
        k += m


def _read_span(cc: _ContainerCube, bands) -> bool:
    """Whether to read a band list as the span from its lowest to its highest band: where a chunk holds
    several bands (each is then decoded once, not once per run of bands); where the chunking is not known
    (GDAL 3.6 does not report an HDF5 array's), only while at most half the span is bands not asked for."""
    span = max(bands) - min(bands) + 1
    try:
        chunk = cc.array.GetBlockSize()
        per_chunk = int(chunk[0]) if chunk else 0
    except (RuntimeError, AttributeError, TypeError):
        per_chunk = 0
    return per_chunk > 1 or (per_chunk == 0 and 2 * len(bands) >= span)


def check_output_path(path: str, inputs: Sequence[str] = ()) -> str:
    """Fail early (before any computation) if the GeoTIFF ``path`` cannot be written."""
    path = os.path.abspath(os.fspath(path))
    if not path.lower().endswith((".tif", ".tiff")):
        raise OutputError(f"output must be a GeoTIFF (.tif or .tiff): {path}")
    return check_writable(path, inputs)


def check_writable(path: str, inputs: Sequence[str] = ()) -> str:
    """Fail early if ``path`` (absolute) is an input, or its folder is missing or read-only, or it is a folder."""
    if inputs:
        from .paths import check_outputs

        check_outputs(inputs, [path])
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise OutputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")
    if os.path.isdir(path):
        raise OutputError(f"output path is a folder: {path}")
    return path


@contextlib.contextmanager
def collected_errors(gdal):
    """GDAL's errors in this block kept (a list of messages) instead of printed: those of closing a dataset (its
    last writes) come from no call that could raise them, and would otherwise reach stderr as raw 'ERROR 1: …'
    lines, several per failed write."""
    errors = []

    def handler(err_class, err_no, message):
        if err_class >= gdal.CE_Failure:
            errors.append(str(message))

    gdal.PushErrorHandler(handler)
    try:
        yield errors
    finally:
        gdal.PopErrorHandler()


def write_error(path: str, error, errors=(), what: str = "writing") -> OutputError:
    """One line for a failed write: a full disk said as such (GDAL's text carries no errno), else GDAL's first
    message."""
    from ..errors import disk_full_message, is_disk_full

    texts = [str(error)] + [str(e) for e in errors]
    if any(is_disk_full(t) for t in texts):
        return OutputError(disk_full_message(path=path))
    return OutputError(f"{what} {path} failed: {str(error).strip() or 'GDAL gave no reason'}")


def write_raster(path: str, bands: Sequence[np.ndarray], georef: Optional[Georef], nodata: Optional[float],
                 band_names: Sequence[str] = (), metadata: Optional[dict] = None,
                 band_metadata: Optional[Sequence[dict]] = None, feedback=None, overview: Optional[str] = None) -> str:
    """Write float32 bands as a tiled, compressed GeoTIFF, atomically.

    The file appears under ``path`` only once complete: it is written to a hidden
    temporary name in the same folder and renamed, so an error or cancel never
    leaves a half-written map that QGIS would happily display.

    With ``overview`` ("max" or "average"), a raster of ``OVERVIEW_MIN_SIDE`` px or more on a side gets
    internal overviews (``overview_factors``), written into the temporary before the rename like the rest
    (QGIS draws a 2048² map without them slowly, reading every pixel at every zoom): "max" for score maps
    (each overview pixel the highest valid score it covers, so an anomaly of one pixel stays visible zoomed
    out; ``max_pool2``), "average" GDAL's nodata-aware average. None (enhanced cubes): none, as before.
    """
    path = check_output_path(path)
    with atomic_path(path, ".partial.tif") as tmp, gdal_exceptions() as gdal, collected_errors(gdal) as errors:
        h, w = bands[0].shape
        opts = ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=3", "BIGTIFF=IF_SAFER"]
        ds = band = failure = None
        with NativeStderr() as native:
            # no raise inside an except block here: GDAL's exception keeps the binding's frame, and with it the
            # dataset, alive until the error is printed, and the dataset's close then prints raw 'ERROR 1:' lines
            try:
                ds = gdal.GetDriverByName("GTiff").Create(tmp, w, h, len(bands), gdal.GDT_Float32, opts)
            except RuntimeError as e:
                failure = write_error(path, e, errors, "creating")
            if failure is None:
                apply_georef(gdal, ds, georef)
                for key, value in (metadata or {}).items():
                    ds.SetMetadataItem(str(key), str(value))
            for i, arr in enumerate(bands if failure is None else ()):
                if feedback is not None and feedback.cancelled():
                    failure = Cancelled()
                    break
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
                    failure = write_error(path, e, errors)
                    break
            if failure is None and overview and overview_factors(w, h):
                try:
                    write_overviews(gdal, ds, bands, nodata, overview)
                except RuntimeError as e:
                    failure = write_error(path, e, errors)
            if failure is None:
                try:
                    ds.FlushCache()
                except RuntimeError as e:
                    failure = write_error(path, e, errors)
            with exceptions_off(gdal):
                ds = band = None
        raise_write_failure(path, failure, errors, native)
    return path


# rasters this large on a side get overviews; smaller ones draw fast enough from their full resolution
OVERVIEW_MIN_SIDE = 1024


def overview_factors(width: int, height: int) -> list:
    """Overview levels (2, 4, 8, ...) of a raster of ``OVERVIEW_MIN_SIDE`` px or more on a side, down to the
    first whose longer side is at most 256 px (one tile), as ``gdaladdo`` chooses by default; [] below."""
    if max(width, height) < OVERVIEW_MIN_SIDE:
        return []
    out, f = [], 2
    while True:
        out.append(f)
        if -(-max(width, height) // f) <= 256:
            return out
        f *= 2


def max_pool2(a: np.ndarray, nodata: Optional[float]) -> np.ndarray:
    """The next overview level of ``a``: each pixel the largest valid value of its 2×2 block (GDAL's own
    overview sizes, ceil(n / 2), the last row and column alone where odd); nodata where none is valid. GDAL
    3.6's overview resamplings have no maximum (nearest drops most one-pixel anomalies, average dilutes
    them)."""
    h, w = a.shape
    bad = ~np.isfinite(a) if nodata is None or np.isnan(nodata) else (a == np.float32(nodata)) | ~np.isfinite(a)
    m = np.full((h + h % 2, w + w % 2), -np.inf, dtype=np.float32)
    m[:h, :w] = np.where(bad, -np.inf, a)
    out = m.reshape(m.shape[0] // 2, 2, m.shape[1] // 2, 2).max(axis=(1, 3))
    out[out == -np.inf] = np.nan if nodata is None else nodata
    return out


def write_overviews(gdal, ds, bands, nodata, overview: str) -> None:
    """Internal overviews of a dataset being written (``write_raster``): "max" pooled here from the bands in
    memory and written into overview levels GDAL creates empty ("NONE"), else GDAL's nodata-aware average."""
    factors = overview_factors(ds.RasterXSize, ds.RasterYSize)
    if overview != "max":
        ds.BuildOverviews("AVERAGE", factors)
        return
    ds.BuildOverviews("NONE", factors)
    for i, arr in enumerate(bands):
        level = np.asarray(arr, dtype=np.float32)
        band = ds.GetRasterBand(i + 1)
        for k in range(len(factors)):
            level = max_pool2(level, nodata)
            band.GetOverview(k).WriteArray(level)


@contextlib.contextmanager
def exceptions_off(gdal):
    """Close and flush a written dataset (drop its last references inside this block; a band keeps its dataset
    open) with GDAL's exceptions off: the binding would raise in the destructor, which Python can only print;
    the errors go to ``collected_errors`` instead."""
    gdal.DontUseExceptions()
    try:
        yield
    finally:
        gdal.UseExceptions()


class NativeStderr:
    """What C libraries print straight on the process's stderr (fd 2) inside a ``with`` block, kept aside.

    GDAL routes most of libtiff's messages through its error handler (``collected_errors``), but not all: with
    the system libtiff of current distributions (GDAL 3.10 on Debian 13) a failed write also prints
    ``_tiffWriteProc: File too large.`` (or ``No space left on device.``) itself, a second raw line beside
    our one-line error, and that line is the only one that says why. The block's fd-2 output goes to a
    temporary file; ``raise_write_failure`` reads it for the reason and drops it when the write failed, and
    replays it on stderr when the write succeeded (nothing printed is lost, only delayed). One capture at a
    time (fd 2 is the process's): a concurrent writer, or a process without a usable fd 2 (a GUI on
    Windows), writes uncaptured."""

    _busy = __import__("threading").Lock()

    def __init__(self):
        self.lines: list = []
        self._saved = self._file = None
        self._held = False

    def __enter__(self):
        import sys
        import tempfile

        self._held = NativeStderr._busy.acquire(blocking=False)
        if not self._held:
            return self
        try:
            sys.stderr.flush()
            self._file = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._file.fileno(), 2)
        except (OSError, ValueError, AttributeError):
            self._close()
        return self

    def __exit__(self, exc_type, exc, tb):
        import sys

        if self._saved is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(self._saved, 2)
            self._file.seek(0)
            self.lines = self._file.read().decode("utf-8", "replace").splitlines()
        self._close()
        if exc_type is not None:  # not a failed write that we report: nothing printed is lost
            self.replay()
        return False

    def _close(self):
        if self._saved is not None:
            os.close(self._saved)
        if self._file is not None:
            self._file.close()
        if self._held:
            NativeStderr._busy.release()
        self._saved = self._file = None
        self._held = False

    def replay(self) -> None:
        import sys

        for line in self.lines:
            print(line, file=sys.stderr)


def raise_write_failure(path: str, failure, errors, native: Optional[NativeStderr] = None) -> None:
    """Raise the failure of a write, or the first error GDAL reported while closing it, if any. What the C
    libraries printed meanwhile (``native``) gives the reason when GDAL's own text does not (a full disk), and is
    otherwise dropped on failure and replayed on success."""
    from ..errors import disk_full_message, is_disk_full

    if failure is None and errors:
        failure = write_error(path, errors[0], errors)
    if failure is None:
        if native is not None:
            native.replay()
        return
    if native is not None and isinstance(failure, OutputError) and any(is_disk_full(t) for t in native.lines):
        failure = OutputError(disk_full_message(path=path))
    raise failure
