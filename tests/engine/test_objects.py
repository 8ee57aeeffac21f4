"""Threshold, anomaly mask and anomaly objects (fers.objects), checked against independent numpy/scipy/OGR code."""
import json
import os

import numpy as np
import pytest
from scipy import ndimage

from conftest import REPO, fers, read_geotiff

from fers.errors import Cancelled, InputError, OutputError
from fers.feedback import Feedback
from fers.io.raster import Georef

SAMPLE = os.path.join(REPO, "resources", "sample", "abu-airport-2.tif")


@pytest.fixture(scope="module")
def sample_scores():
    from fers.io import open_source
    from fers.pipeline import detect

    res = detect(SAMPLE, None, bands=200, device="cpu")
    return res.scores, res.valid, open_source(SAMPLE).georef


def independent_objects(scores, mask, gt):
    """{id: (pixels, area, peak, mean, cx, cy)} by scipy.ndimage.label (8-connected) and plain numpy loops."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    out = {}
    for k in range(1, n + 1):
        rows, cols = np.nonzero(labels == k)
        s = scores[rows, cols].astype(np.float64)
        x = gt[0] + (cols + 0.5) * gt[1] + (rows + 0.5) * gt[2]
        y = gt[3] + (cols + 0.5) * gt[4] + (rows + 0.5) * gt[5]
        out[k] = (rows.size, rows.size * abs(gt[1] * gt[5] - gt[2] * gt[4]), s.max(), s.mean(), x.mean(), y.mean())
    return labels, out


def read_features(path):
    from osgeo import ogr

    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    feats = [(f.items(), f.GetGeometryRef().Clone()) for f in lyr]
    return feats, lyr.GetSpatialRef(), lyr.GetGeomType()


def test_thresholds_percentile_and_false_alarm_rate(sample_scores):
    from fers.objects import threshold

    s, valid, _ = sample_scores
    v = s[valid].astype(np.float64)
    assert threshold(s, valid, percentile=99.5).value == np.percentile(v, 99.5)
    srt = np.sort(v)
    for f in (0.001, 0.0137, 0.2):
        t = threshold(s, valid, false_alarm_rate=f).value
        k = int(np.floor(f * v.size + 1e-9))
        # the lowest score leaving at most k valid pixels above it (float32 RX scores do tie)
        u = np.unique(v)
        ok = u[(v.size - np.searchsorted(srt, u, side="right")) <= k]
        assert t == ok.min() and (v > t).sum() <= k, f
    assert (v > threshold(s, valid, false_alarm_rate=0.0).value).sum() == 0
    with pytest.raises(InputError, match="not both"):
        threshold(s, valid, 99, 0.01)
    with pytest.raises(InputError, match=r"\[0, 100\)"):
        threshold(s, valid, percentile=100)


def test_objects_on_the_real_sample_match_an_independent_computation(sample_scores, tmp_path):
    from osgeo import ogr

    from fers.objects import anomaly_products

    s, valid, georef = sample_scores
    res = anomaly_products(s, valid, georef, mask=str(tmp_path / "m.tif"), objects=str(tmp_path / "o.gpkg"),
                           percentile=99.0)
    t = np.percentile(s[valid].astype(np.float64), 99.0)
    mask = valid & (s > t)
    labels, ref = independent_objects(s, mask, georef.geotransform)
    assert len(ref) > 5 and len(res.table) == len(ref)
    np.testing.assert_array_equal(res.labels, labels)
    feats, srs, gtype = read_features(tmp_path / "o.gpkg")
    assert len(feats) == len(ref) and gtype == ogr.wkbMultiPolygon and "UTM zone 11N" in srs.ExportToWkt()
    pix_area = abs(georef.geotransform[1] * georef.geotransform[5])
    for attrs, geom in feats:
        pixels, area, peak, mean, cx, cy = ref[attrs["id"]]
        assert attrs["pixels"] == pixels and attrs["area"] == pytest.approx(area, rel=1e-12)
        assert attrs["peak_score"] == pytest.approx(peak, rel=1e-6)
        assert attrs["mean_score"] == pytest.approx(mean, rel=1e-6)
        assert (attrs["centroid_x"], attrs["centroid_y"]) == (pytest.approx(cx, abs=1e-6), pytest.approx(cy, abs=1e-6))
        assert geom.IsValid() and geom.GetArea() == pytest.approx(pixels * pix_area, rel=1e-9)
        rows, cols = np.nonzero(labels == attrs["id"])  # every pixel centre of the object lies in its polygon
        gt = georef.geotransform
        for r, c in zip(rows, cols):
            p = ogr.Geometry(ogr.wkbPoint)
            p.AddPoint_2D(gt[0] + (c + 0.5) * gt[1], gt[3] + (r + 0.5) * gt[5])
            assert geom.Contains(p)
    m, _, gt, nodata = read_geotiff(tmp_path / "m.tif")
    np.testing.assert_array_equal(m[0], mask.astype(float))
    assert gt == georef.geotransform and nodata == 255


def test_eight_connectivity_and_pixel_grid_without_georeferencing(tmp_path):
    from fers.objects import anomaly_products

    s = np.zeros((6, 7), np.float32)
    s[1, 1] = s[2, 2] = 5.0  # diagonal neighbours: one object
    s[1, 4] = 3.0  # a gap of one pixel from (2, 2)... and from (1, 1): separate
    s[4, 5] = s[4, 6] = s[5, 6] = 4.0
    res = anomaly_products(s, np.ones(s.shape, bool), Georef(), objects=str(tmp_path / "o.geojson"),
                           false_alarm_rate=6 / 42)
    assert [(r["id"], r["pixels"]) for r in res.table] == [(1, 2), (2, 1), (3, 3)]
    first = res.table[0]
    assert (first["centroid_x"], first["centroid_y"], first["area"]) == (2.0, -2.0, 2.0)  # x = col, y = −row
    feats, srs, _ = read_features(tmp_path / "o.geojson")
    assert len(feats) == 3 and feats[0][1].GetGeometryCount() == 2  # two squares touching at a corner
    assert feats[0][1].GetArea() == 2.0


def test_no_anomaly_gives_an_empty_layer_and_errors_leave_no_file(sample_scores, tmp_path):
    from fers.objects import anomaly_products

    s, valid, georef = sample_scores
    res = anomaly_products(s, valid, georef, objects=str(tmp_path / "none.gpkg"), false_alarm_rate=0.0)
    assert res.table == [] and read_features(tmp_path / "none.gpkg")[0] == []
    with pytest.raises(OutputError, match="GeoPackage"):
        anomaly_products(s, valid, georef, objects=str(tmp_path / "o.shp"))
    with pytest.raises(OutputError, match="does not exist"):
        anomaly_products(s, valid, georef, mask=str(tmp_path / "nope" / "m.tif"))

    class Stop(Feedback):
        def cancelled(self):
            return True

    with pytest.raises(Cancelled):
        anomaly_products(s, valid, georef, objects=str(tmp_path / "c.gpkg"), feedback=Stop())
    assert sorted(os.listdir(tmp_path)) == ["none.gpkg"]  # no partial or hidden temporary file


def test_cli_mask_and_objects(tmp_path):
    r = fers("-q", "detect", SAMPLE, tmp_path / "s.tif", "--bands", "200", "--mask", tmp_path / "m.tif",
             "--objects", tmp_path / "o.gpkg", "--false-alarm-rate", "0.001", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    feats, _, _ = read_features(tmp_path / "o.gpkg")
    assert out["anomalous_pixels"] == 10 and out["objects"] == len(feats) > 0
    assert sum(a["pixels"] for a, _ in feats) == 10
    r = fers("detect", SAMPLE, tmp_path / "t.tif", "--objects", tmp_path / "o.txt")
    assert r.returncode == 2 and "GeoPackage" in r.stderr and not (tmp_path / "t.tif").exists()


def test_objects_under_min_pixels_leave_the_objects_and_the_mask(sample_scores, tmp_path):
    """min_pixels 3 keeps exactly the independent components of 3 or more pixels (same order, sizes, peaks),
    and the mask holds their pixels alone; the threshold is the same. Through the engine, the CLI and QGIS."""
    from conftest import qgis_process
    from fers.objects import anomaly_products

    s, valid, georef = sample_scores
    t = np.percentile(s[valid].astype(np.float64), 99.0)
    labels, ref = independent_objects(s, valid & (s > t), georef.geotransform)
    kept = [k for k in sorted(ref) if ref[k][0] >= 3]
    assert 0 < len(kept) < len(ref)  # the sample has both kinds at this threshold
    mask = np.isin(labels, kept)
    res = anomaly_products(s, valid, georef, percentile=99.0, min_pixels=3)
    assert res.threshold.value == pytest.approx(t)
    assert [(o["pixels"], o["peak_score"]) for o in res.table] == [(ref[k][0], pytest.approx(ref[k][2])) for k in kept]
    np.testing.assert_array_equal(res.mask, mask)
    assert res.anomalous_pixels == int(mask.sum())
    r = fers("-q", "detect", SAMPLE, tmp_path / "s.tif", "--bands", "200", "--mask", tmp_path / "m.tif",
             "--objects", tmp_path / "o.gpkg", "--threshold-percentile", "99", "--min-pixels", "3", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["objects"] == len(read_features(tmp_path / "o.gpkg")[0]) == len(kept)
    np.testing.assert_array_equal(read_geotiff(tmp_path / "m.tif")[0][0], mask.astype(float))
    r = qgis_process("run", "fers:detect", "--", f"INPUT={SAMPLE}", "BANDS=200", "STRATEGY=none",
                     "THRESHOLD_PERCENTILE=99",
                     "MIN_PIXELS=3", f"OBJECTS={tmp_path / 'q.gpkg'}", f"OUTPUT={tmp_path / 'q.tif'}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(read_features(tmp_path / "q.gpkg")[0]) == len(kept)
    with pytest.raises(InputError, match="at least 1"):
        anomaly_products(s, valid, georef, min_pixels=0)
