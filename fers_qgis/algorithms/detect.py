"""fers:detect — anomaly map of a hyperspectral raster."""
from qgis.core import (QgsProcessingException, QgsProcessingParameterDefinition, QgsProcessingParameterFile,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterString)

from .base import FersAlgorithm

STRATEGIES = ("none", "spectral", "spatial", "multiplicative", "additive", "auto")
DETECTORS = ("rx",)
DEVICES = ("auto", "cpu", "cuda")


def raster_source(alg, parameters, name, context):
    """GDAL path of a raster parameter; .mat/.npy research files pass through as paths."""
    raw = parameters.get(name)
    if isinstance(raw, str) and raw.lower().endswith((".mat", ".npy")):
        return raw
    layer = alg.parameterAsRasterLayer(parameters, name, context)
    if layer is None:
        raise QgsProcessingException(alg.invalidRasterError(parameters, name))
    if layer.providerType() != "gdal":
        raise QgsProcessingException(f"{layer.name()} is a {layer.providerType()} layer; FERS reads files GDAL can open")
    return layer.source()


class DetectAlgorithm(FersAlgorithm):
    NAME = "detect"
    DISPLAY = "Detect anomalies"
    HELP = ("Scores every pixel of a hyperspectral raster for how anomalous its spectrum is, and writes the "
            "score map as a float32 GeoTIFF on the input's grid and CRS (nodata pixels stay nodata).\n\n"
            "<b>Bands</b>: the first N bands (the paper's protocol; 0 = all), or an explicit band list (advanced).\n"
            "<b>Strategy</b>: none = plain global RX on the selected bands; spectral = RX(H + F_spe) (FERD); "
            "spatial = RX(H + F_spa); multiplicative = fusion A; additive = fusion B; auto = A for ≤ 50 bands, else B.\n"
            "<b>Detector</b>: rx = global Reed–Xiaoli (Mahalanobis distance to the scene's background statistics).\n"
            "<b>Device</b>: auto uses CUDA when available.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Hyperspectral raster"))
        bands = QgsProcessingParameterNumber("BANDS", "Use the first N bands (0 = all)",
                                             QgsProcessingParameterNumber.Integer, 0, False, 0)
        bands.setHelp("The paper evaluates with the first 50, 100 or 200 bands; a model fixes its own band count.")
        self.addParameter(bands)
        self.add_enum("STRATEGY", "Fusion strategy", STRATEGIES, "none")
        self.add_enum("DETECTOR", "Detector", DETECTORS, "rx")
        # "All files (*)": any other filter makes QGIS append an extension to the value and reject the
        # authors' checkpoint folders (convh.pt, enc.pt, pc.pt), which are valid models too
        model = QgsProcessingParameterFile("MODEL", "Model checkpoint (.pt file, or the authors' checkpoint folder)",
                                           QgsProcessingParameterFile.File, "", None, True, "All files (*)")
        model.setHelp("Needed by every strategy except 'none'. A FERS checkpoint from the training algorithms, "
                      "or a folder holding the FERS authors' convh.pt, enc.pt and pc.pt.")
        self.addParameter(model)
        self.add_enum("DEVICE", "Device", DEVICES, "auto", advanced=True)
        band_list = QgsProcessingParameterString("BAND_LIST", "Explicit band list (1-based, e.g. 1-100,120)",
                                                 None, False, True)
        band_list.setFlags(band_list.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(band_list)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Anomaly score map"))

    def run(self, parameters, context, feedback):
        from fers.pipeline import detect
        from fers.preprocess import parse_band_list

        src = raster_source(self, parameters, "INPUT", context)
        band_list = self.parameterAsString(parameters, "BAND_LIST", context)
        bands = parse_band_list(band_list) if band_list.strip() else self.parameterAsInt(parameters, "BANDS", context)
        model = self.parameterAsFile(parameters, "MODEL", context) or None
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        res = detect(src, out, bands=bands,
                     strategy=self.parameterAsEnumString(parameters, "STRATEGY", context),
                     detector=self.parameterAsEnumString(parameters, "DETECTOR", context),
                     model=model, device=self.parameterAsEnumString(parameters, "DEVICE", context),
                     feedback=feedback)
        feedback.info(f"{len(res.bands)} bands, {res.seconds:.2f} s on {res.device}")
        return {"OUTPUT": res.output}
