"""fers:enhance — the enhanced cube H + F_spe (+ F_spa) as a multi-band raster."""
from qgis.core import (QgsProcessingParameterFile, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer)

from .base import FersAlgorithm
from .detect import (DEVICES, add_extent_parameter, add_nodata_parameter, extent_argument, nodata_arguments,
                     raster_source)

BRANCHES = ("both", "spectral", "spatial")


class EnhanceAlgorithm(FersAlgorithm):
    NAME = "enhance"
    DISPLAY = "Enhance hyperspectral cube"
    HELP = ("Writes the cube the detectors see — H + F_spe (+ F_spa): the selected bands scaled to [-0.1, 0.1] "
            "(SPEC §0) plus the learned spectral and spatial features — as a float32 multi-band GeoTIFF on the "
            "input grid, with wavelengths carried over when the input has them. Use it as input to other "
            "detectors or classifiers (e.g. EnMAP-Box).")

    PARAM_HELP = {
        "INPUT": "A hyperspectral raster GDAL reads (GeoTIFF, ENVI, …); nodata, NaN and Inf pixels stay nodata.",
        "OUTPUT": "Float32 GeoTIFF, one band per selected input band, on the input's grid and CRS; the scaling "
                  "min/max and the model are in its metadata.",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Hyperspectral raster"))
        model = QgsProcessingParameterFile("MODEL", "Model file (.pt) or folder",
                                           QgsProcessingParameterFile.File, "", None, False, "All files (*)")
        self.addParameter(model)
        bands = QgsProcessingParameterNumber("BANDS", "Use the first N bands (0 = the model's)",
                                             QgsProcessingParameterNumber.Integer, 0, False, 0)
        self.addParameter(bands)
        self.add_enum("BRANCHES", "Features to add", BRANCHES, "both",
                      help_text="both = H + F_spe + F_spa (fusion B's cube); spectral = H + F_spe (FERD); "
                                "spatial = H + F_spa")
        self.add_enum("DEVICE", "Device", DEVICES, "auto", advanced=True)
        add_nodata_parameter(self)
        add_extent_parameter(self)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Enhanced cube"))

    def run_engine(self, parameters, context, feedback):
        from fers.enhance import enhance

        res = enhance(raster_source(self, parameters, "INPUT", context),
                      self.parameterAsOutputLayer(parameters, "OUTPUT", context),
                      self.parameterAsFile(parameters, "MODEL", context),
                      bands=self.parameterAsInt(parameters, "BANDS", context),
                      branches=self.parameterAsEnumString(parameters, "BRANCHES", context),
                      device=self.parameterAsEnumString(parameters, "DEVICE", context), feedback=feedback,
                      extent=extent_argument(self, parameters, context),
                      **nodata_arguments(self, parameters, context, feedback))
        feedback.info(f"{res['cube']}, {res['bands']} bands, {res['seconds']:.2f} s on {res['device']}")
        return {"OUTPUT": res["output"]}
