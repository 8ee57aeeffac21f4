"""FERS engine: hyperspectral anomaly detection with spectral/spatial feature enhancement.

Plain Python + numpy + torch + GDAL. Never imports qgis: the QGIS plugin and the
``fers`` command line are both thin adapters over the functions here.
"""
import warnings

__version__ = "0.1.0"

# GDAL >= 3.9's Python bindings warn once per process on stderr ("Neither gdal.UseExceptions() nor
# gdal.DontUseExceptions() has been explicitly called") when a call comes before either: the engine chooses
# exceptions explicitly around every GDAL use (io.raster.gdal_exceptions) and never changes the process-wide
# setting QGIS relies on, so the warning says nothing to an analyst and would break the one-line error.
warnings.filterwarnings("ignore", message="Neither gdal.UseExceptions", category=FutureWarning)
