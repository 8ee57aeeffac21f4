"""From a score map to what an analyst triages: a threshold, a binary mask, anomaly objects.

Threshold, over the valid pixels' scores (one of):

* percentile ``p`` — ``t = np.percentile(valid scores, p)`` (linear interpolation);
* false-alarm rate ``f`` — with the n valid scores sorted ascending ``s[0] ≤ … ≤ s[n-1]``
  and ``k = floor(f·n)``: ``t = s[n-1-k]`` (``t = s[n-1]`` if k = 0), so the fraction of
  valid pixels above ``t`` is at most ``f`` (exactly k/n without ties).

A pixel is anomalous when it is valid and its score is strictly greater than ``t``.

Objects are the connected components of the anomalous pixels with **8-connectivity**
(pixels touching by an edge or a corner belong to the same object; ``scipy.ndimage.label``
with a 3×3 structuring element), numbered 1, 2, … in raster order of their first pixel.
Objects of fewer than ``min_pixels`` pixels (default 1: none) are dropped from the objects
and from the mask alike (isolated noisy pixels; the threshold itself is unchanged); the
ones kept are numbered afresh. Each becomes one feature (a MultiPolygon: GDAL polygonizes
the pixels, pieces that touch only at a corner are kept as parts of the one object) with:

    id          the component number
    pixels      its pixel count
    area        pixels × |pixel area| in map units² (the CRS's units; pixel² without georeferencing)
    peak_score  the highest score in it
    mean_score  the mean score over its pixels
    centroid_x, centroid_y   mean of its pixel centres, in map coordinates

Without georeferencing the pixel grid is mapped as QGIS shows such rasters: x = column,
y = −row. Files are written atomically (hidden temporary file, then rename).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .errors import InputError, OutputError
from .io.atomic import atomic_path

# chosen by research/threshold.py's rule on the selection groups (docs/REPRODUCING.md): the mask's mean F1 against
# the background scenes' own anomalies and the implanted targets is highest at 98.5 (99.5, by hand before)
DEFAULT_PERCENTILE = 98.5
OBJECT_FIELDS = ("id", "pixels", "area", "peak_score", "mean_score", "centroid_x", "centroid_y")
VECTOR_DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".fgb": "FlatGeobuf"}
PIXEL_GRID = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # how QGIS places a raster that has no geotransform
MASK_NODATA = 255
CONNECTIVITY = np.ones((3, 3), dtype=bool)  # 8-connectivity


@dataclass
class Threshold:
    value: float
    rule: str  # human-readable, e.g. "score > 812.3 (98.5th percentile of 10000 valid pixels)"
    percentile: Optional[float] = None
    false_alarm_rate: Optional[float] = None


@dataclass
class ObjectsResult:
    threshold: Threshold
    mask: np.ndarray  # bool (H, W)
    labels: np.ndarray  # int32 (H, W), 0 = background
    table: list  # one dict per object, keys OBJECT_FIELDS
    mask_path: Optional[str] = None
    objects_path: Optional[str] = None
    anomalous_pixels: int = 0
    info: dict = field(default_factory=dict)


def threshold(scores: np.ndarray, valid: np.ndarray, percentile: Optional[float] = None,
              false_alarm_rate: Optional[float] = None) -> Threshold:
    """The score threshold (see the module docstring). Neither given: the DEFAULT_PERCENTILE-th percentile."""
    from .params import thresholds

    percentile, false_alarm_rate, _ = thresholds(percentile, false_alarm_rate)
    v = np.asarray(scores, dtype=np.float64)[np.asarray(valid, bool) & np.isfinite(scores)]
    if v.size == 0:
        raise InputError("the score map has no valid pixel: nothing to threshold")
    if false_alarm_rate is not None:
        f = false_alarm_rate
        s = np.sort(v)
        k = int(math.floor(f * s.size + 1e-9))
        t = float(s[s.size - 1 - k]) if k < s.size else float(s[0])
        return Threshold(t, f"score > {t:.6g} (false-alarm rate {f:g}: at most {k} of {s.size} valid pixels above)",
                         false_alarm_rate=f)
    p = DEFAULT_PERCENTILE if percentile is None else percentile
    t = float(np.percentile(v, p))
    return Threshold(t, f"score > {t:.6g} ({p:g}th percentile of {v.size} valid pixels)", percentile=p)


def display_range(scores: np.ndarray, valid: np.ndarray, low: float = 2.0, high: float = 98.0) -> tuple:
    """(min, max) for a colour stretch: the low/high percentiles of the valid scores."""
    v = np.asarray(scores, dtype=np.float64)[np.asarray(valid, bool) & np.isfinite(scores)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, [low, high]))
    if not hi > lo:
        lo, hi = float(v.min()), float(v.max())
        if not hi > lo:
            hi = lo + 1.0
    return lo, hi


def label_objects(mask: np.ndarray) -> tuple:
    """(labels int32, count): 8-connected components of ``mask``."""
    from scipy import ndimage

    labels, n = ndimage.label(np.asarray(mask, bool), structure=CONNECTIVITY)
    return labels.astype(np.int32), int(n)


def object_table(labels: np.ndarray, n: int, scores: np.ndarray, geotransform: Optional[Sequence[float]]) -> list:
    """One dict per component (keys OBJECT_FIELDS), in id order."""
    if n == 0:
        return []
    gt = tuple(geotransform) if geotransform is not None else PIXEL_GRID
    flat = labels.ravel()
    ids = np.arange(1, n + 1)
    pixels = np.bincount(flat, minlength=n + 1)[1:]
    s = np.asarray(scores, dtype=np.float64).ravel()
    on = flat > 0
    sums = np.bincount(flat[on], weights=s[on], minlength=n + 1)[1:]
    peak = np.full(n + 1, -np.inf)
    np.maximum.at(peak, flat[on], s[on])
    rows, cols = np.indices(labels.shape)
    cx = np.bincount(flat[on], weights=cols.ravel()[on] + 0.5, minlength=n + 1)[1:] / pixels
    cy = np.bincount(flat[on], weights=rows.ravel()[on] + 0.5, minlength=n + 1)[1:] / pixels
    pixel_area = abs(gt[1] * gt[5] - gt[2] * gt[4])
    out = []
    for i, k in enumerate(ids):
        out.append({"id": int(k), "pixels": int(pixels[i]), "area": float(pixels[i] * pixel_area),
                    "peak_score": float(peak[k]), "mean_score": float(sums[i] / pixels[i]),
                    "centroid_x": float(gt[0] + cx[i] * gt[1] + cy[i] * gt[2]),
                    "centroid_y": float(gt[3] + cx[i] * gt[4] + cy[i] * gt[5])})
    return out


# ---------------------------------------------------------------- paths

def check_mask_path(path: str) -> str:
    """The mask's format and folder (whether it is an input: ``fers.io.paths.check_outputs``)."""
    from .io import check_output_path

    return check_output_path(path)


def check_objects_path(path: str) -> str:
    """The objects' format and folder (whether it is an input: ``fers.io.paths.check_outputs``)."""
    path = os.path.abspath(os.fspath(path))
    ext = os.path.splitext(path)[1].lower()
    if ext not in VECTOR_DRIVERS:
        raise OutputError(f"anomaly objects are written as GeoPackage (.gpkg), GeoJSON (.geojson) or "
                          f"FlatGeobuf (.fgb), not '{ext or 'no extension'}': {path}")
    from .io.raster import check_writable

    return check_writable(path)


# ---------------------------------------------------------------- writers

def write_mask(path: str, mask: np.ndarray, valid: np.ndarray, georef, th: Threshold, metadata: Optional[dict] = None) -> str:
    """Byte GeoTIFF: 1 = anomalous, 0 = not, 255 = nodata; a colour table shows anomalies in red."""
    from .io.raster import (NativeStderr, apply_georef, collected_errors, exceptions_off, gdal_exceptions,
                            gdal_message, raise_write_failure, write_error)

    path = check_mask_path(path)
    arr = np.where(valid, mask.astype(np.uint8), np.uint8(MASK_NODATA)).astype(np.uint8)
    with atomic_path(path, ".partial.tif") as tmp, gdal_exceptions() as gdal:
        h, w = arr.shape
        try:
            ds = gdal.GetDriverByName("GTiff").Create(tmp, w, h, 1, gdal.GDT_Byte, ["TILED=YES", "COMPRESS=DEFLATE"])
        except RuntimeError as e:
            raise OutputError(f"cannot create {path}: {gdal_message(e)}") from None
        apply_georef(gdal, ds, georef)
        meta = dict(metadata or {}, FERS_THRESHOLD=repr(th.value), FERS_THRESHOLD_RULE=th.rule)
        for k, v in meta.items():
            ds.SetMetadataItem(str(k), str(v))
        band = ds.GetRasterBand(1)
        band.SetNoDataValue(MASK_NODATA)
        band.SetDescription(f"anomaly mask ({th.rule})")
        ct = gdal.ColorTable()
        ct.SetColorEntry(0, (0, 0, 0, 0))
        ct.SetColorEntry(1, (230, 30, 30, 255))
        band.SetRasterColorTable(ct)
        band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
        failure = None
        with collected_errors(gdal) as errors, NativeStderr() as native:
            try:
                band.WriteArray(arr)
                ds.FlushCache()
            except RuntimeError as e:  # not raised here: the exception would keep the dataset open (io.raster)
                failure = write_error(path, e, errors)
            with exceptions_off(gdal):
                ds = band = None
        raise_write_failure(path, failure, errors, native)
    return path


def _polygons_by_id(labels: np.ndarray, gt: tuple, srs) -> dict:
    """{id: ogr MultiPolygon} through gdal.Polygonize on the label raster (4-connected pieces, merged per id)."""
    from osgeo import gdal, ogr

    h, w = labels.shape
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Int32)
    mem.SetGeoTransform(gt)
    if srs is not None:
        mem.SetSpatialRef(srs)
    band = mem.GetRasterBand(1)
    band.WriteArray(labels)
    mask_ds = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Byte)
    mask_band = mask_ds.GetRasterBand(1)
    mask_band.WriteArray((labels > 0).astype(np.uint8))
    vds = ogr.GetDriverByName("Memory").CreateDataSource("polygons")
    lyr = vds.CreateLayer("p", srs=srs, geom_type=ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("id", ogr.OFTInteger))
    gdal.Polygonize(band, mask_band, lyr, 0, [], callback=None)
    out = {}
    for f in lyr:
        k = f.GetField(0)
        g = out.setdefault(k, ogr.Geometry(ogr.wkbMultiPolygon))
        g.AddGeometry(f.GetGeometryRef().Clone())
    return out


def write_objects(path: str, labels: np.ndarray, table: list, georef, th: Threshold,
                  metadata: Optional[dict] = None, layer_name: str = "anomaly_objects") -> str:
    """One MultiPolygon feature per object with the attributes of ``object_table``."""
    from osgeo import ogr, osr

    from .io.raster import gdal_exceptions, gdal_message

    path = check_objects_path(path)
    driver_name = VECTOR_DRIVERS[os.path.splitext(path)[1].lower()]
    gt = tuple(georef.geotransform) if georef is not None and georef.geotransform is not None else PIXEL_GRID
    srs = None
    if georef is not None and georef.crs_wkt:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(georef.crs_wkt)
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    suffix = ".partial" + os.path.splitext(path)[1].lower()
    with atomic_path(path, suffix) as tmp, gdal_exceptions() as gdal:
        gdal_err = gdal.GetLastErrorMsg
        os.remove(tmp)  # the vector drivers create their file themselves
        polys = _polygons_by_id(labels, gt, srs)
        drv = ogr.GetDriverByName(driver_name)
        ds = drv.CreateDataSource(tmp)
        if ds is None:
            raise OutputError(f"cannot create {path}: {gdal_message(gdal_err()) or 'the driver refused'}")
        lyr = ds.CreateLayer(layer_name, srs=srs, geom_type=ogr.wkbMultiPolygon)
        for name, kind in (("id", ogr.OFTInteger), ("pixels", ogr.OFTInteger), ("area", ogr.OFTReal),
                           ("peak_score", ogr.OFTReal), ("mean_score", ogr.OFTReal),
                           ("centroid_x", ogr.OFTReal), ("centroid_y", ogr.OFTReal)):
            lyr.CreateField(ogr.FieldDefn(name, kind))
        meta = dict(metadata or {}, FERS_THRESHOLD=repr(th.value), FERS_THRESHOLD_RULE=th.rule,
                    FERS_CONNECTIVITY="8")
        if driver_name == "GPKG":
            for k, v in meta.items():
                lyr.SetMetadataItem(str(k), str(v))
        lyr.StartTransaction()
        defn = lyr.GetLayerDefn()
        for row in table:
            f = ogr.Feature(defn)
            for k in OBJECT_FIELDS:
                f.SetField(k, row[k])
            f.SetGeometry(polys[row["id"]])
            lyr.CreateFeature(f)
        lyr.CommitTransaction()
        ds = None  # closes, flushes
    return path


# ---------------------------------------------------------------- one call

def anomaly_products(scores: np.ndarray, valid: np.ndarray, georef=None, mask: Optional[str] = None,
                     objects: Optional[str] = None, percentile: Optional[float] = None,
                     false_alarm_rate: Optional[float] = None, metadata: Optional[dict] = None,
                     feedback=None, min_pixels: int = 1) -> ObjectsResult:
    """Threshold a score map, label its 8-connected anomalies (dropping those under ``min_pixels``), write the
    mask and/or objects (optional)."""
    from .feedback import Feedback

    from .params import thresholds

    fb = feedback or Feedback()
    percentile, false_alarm_rate, min_pixels = thresholds(percentile, false_alarm_rate, min_pixels)
    valid = np.asarray(valid, bool) & np.isfinite(scores)
    th = threshold(scores, valid, percentile, false_alarm_rate)
    m = valid & (np.where(valid, scores, -np.inf) > th.value)
    labels, n = label_objects(m)
    dropped = ""
    if int(min_pixels) > 1:
        small = np.bincount(labels.ravel(), minlength=n + 1) < int(min_pixels)
        small[0] = False
        if small.any():
            m &= ~small[labels]
            dropped = (f"; {int(small.sum())} object(s) of fewer than {int(min_pixels)} pixels dropped "
                       f"({n} before)")
            labels, n = label_objects(m)
    gt = georef.geotransform if georef is not None and georef.geotransform is not None else None
    table = object_table(labels, n, scores, gt)
    res = ObjectsResult(th, m, labels, table, anomalous_pixels=int(m.sum()))
    fb.info(f"threshold {th.rule}: {res.anomalous_pixels} anomalous pixel(s) in {n} object(s) (8-connected)"
            f"{dropped}")
    if mask:
        fb.check()
        res.mask_path = write_mask(mask, m, valid, georef, th, metadata)
    if objects:
        fb.check()
        res.objects_path = write_objects(objects, labels, table, georef, th, metadata)
    return res


def products_for_detection(res, input: str, mask: Optional[str] = None, objects: Optional[str] = None,
                           percentile: Optional[float] = None, false_alarm_rate: Optional[float] = None,
                           variable: Optional[str] = None, feedback=None, min_pixels: int = 1) -> ObjectsResult:
    """``anomaly_products`` for a ``pipeline.detect`` result, on the input's grid and CRS."""
    from . import __version__
    from .io import open_source

    georef = res.georef if res.georef is not None else open_source(input, variable).georef
    meta = {"FERS_VERSION": __version__, "FERS_SOURCE": os.path.basename(input), "FERS_STRATEGY": res.strategy,
            "FERS_DETECTOR": res.detector}
    if "rx_trim" in res.info:
        meta["FERS_RX_TRIM"] = f"{res.info['rx_trim']:g}"
    if int(min_pixels) > 1:
        meta["FERS_MIN_OBJECT_PIXELS"] = str(int(min_pixels))
    return anomaly_products(res.scores, res.valid, georef, mask, objects, percentile, false_alarm_rate, meta, feedback,
                            min_pixels)
