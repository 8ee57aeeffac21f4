"""Regenerate resources/sample/ from ../shared/data: a real ABU scene as a GeoTIFF.

The published ABU .mat files carry no georeferencing. The sample gets a nominal
one (WGS 84 / UTM 11N around Los Angeles airport, 7.1 m pixels — the ABU airport
scenes' nominal AVIRIS resolution) so that the demo exercises CRS propagation;
the coordinates are illustrative, not surveyed.

Usage: python scripts/make_sample.py [DATA_DIR] [OUT_DIR]
"""
import os
import sys

import numpy as np
import scipy.io
from osgeo import gdal, osr

gdal.UseExceptions()
data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "resources", "sample")
name = "abu-airport-2"
m = scipy.io.loadmat(os.path.join(data, "raw", name + ".mat"))
cube, gt = m["data"], m["map"]
h, w, b = cube.shape
srs = osr.SpatialReference()
srs.ImportFromEPSG(32611)
geotransform = (371000.0, 7.1, 0.0, 3757000.0, 0.0, -7.1)
opts = ["COMPRESS=DEFLATE", "PREDICTOR=2", "TILED=YES", "INTERLEAVE=BAND"]
os.makedirs(out, exist_ok=True)
for fname, arrays, dtype in ((name + ".tif", [cube[:, :, i] for i in range(b)], gdal.GDT_UInt16),
                             (name + "_gt.tif", [gt], gdal.GDT_Byte)):
    ds = gdal.GetDriverByName("GTiff").Create(os.path.join(out, fname), w, h, len(arrays), dtype, opts)
    ds.SetProjection(srs.ExportToWkt())
    ds.SetGeoTransform(geotransform)
    ds.SetMetadataItem("SOURCE", f"ABU {name} (AVIRIS), from {name}.mat; nominal georeferencing")
    for i, a in enumerate(arrays):
        ds.GetRasterBand(i + 1).WriteArray(np.asarray(a))
    ds = None
print("wrote", out)
