"""The `fers` Processing provider."""
from qgis.core import QgsProcessingProvider

from .algorithms import all_algorithms
from .paths import icon


class FersProvider(QgsProcessingProvider):
    def id(self):
        return "fers"

    def name(self):
        # what the toolbox shows: short, as the toolbox's default width cut the long name ("FERS hyperspectral
        # anomaly detect…"); the long one is the tooltip and the help's
        return "FERS"

    def longName(self):  # noqa: N802
        return "FERS hyperspectral anomaly detection"

    def icon(self):
        return icon()

    # the engine writes GeoTIFF rasters and single-file vector formats (atomically): offer only those
    def supportedOutputRasterLayerExtensions(self):  # noqa: N802
        return ["tif", "tiff"]

    def defaultRasterFileExtension(self):  # noqa: N802
        return "tif"

    def supportedOutputVectorLayerExtensions(self):  # noqa: N802
        return ["gpkg", "geojson", "fgb"]

    def defaultVectorFileExtension(self, hasGeometry=True):  # noqa: N802
        return "gpkg"

    def loadAlgorithms(self):  # noqa: N802
        for alg in all_algorithms():
            self.addAlgorithm(alg)
