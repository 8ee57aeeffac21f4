"""FERS engine: hyperspectral anomaly detection with spectral/spatial feature enhancement.

Plain Python + numpy + torch + GDAL. Never imports qgis: the QGIS plugin and the
``fers`` command line are both thin adapters over the functions here.
"""
__version__ = "0.1.0"
