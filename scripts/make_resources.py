"""Regenerate the QGIS resources that are built with PyQGIS rather than written by hand:

    resources/styles/anomaly_mask.qml              anomalies red, the rest transparent
    resources/styles/anomaly_objects.qml           red outlines, labelled with the object id
    resources/modeler/detect_and_evaluate.model3   fers:detect → fers:evaluate (graphical modeler)

Run with QGIS's Python, offscreen:  QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/make_resources.py
Re-run it when fers:detect or fers:evaluate gain a mandatory parameter (the model sets each of them).
"""
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "engine"), "/usr/share/qgis/python/plugins"]

from qgis.core import (QgsApplication, QgsFillSymbol, QgsPalettedRasterRenderer, QgsPalLayerSettings,  # noqa: E402
                       QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                       QgsProcessingModelChildParameterSource, QgsProcessingModelOutput, QgsProcessingModelParameter,
                       QgsProcessingParameterEnum, QgsProcessingParameterFile, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer, QgsRasterLayer, QgsTextBufferSettings, QgsTextFormat,
                       QgsVectorLayer, QgsVectorLayerSimpleLabeling)
from qgis.PyQt.QtCore import QPointF  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402

STYLES = os.path.join(REPO, "resources", "styles")
MODELER = os.path.join(REPO, "resources", "modeler")


def mask_style(path):
    from osgeo import gdal

    tmp = os.path.join(tempfile.mkdtemp(), "mask.tif")
    ds = gdal.GetDriverByName("GTiff").Create(tmp, 2, 2, 1, gdal.GDT_Byte)
    ds.GetRasterBand(1).SetNoDataValue(255)
    ds = None
    layer = QgsRasterLayer(tmp, "mask")
    renderer = QgsPalettedRasterRenderer(layer.dataProvider(), 1,
                                         [QgsPalettedRasterRenderer.Class(1, QColor(230, 30, 30), "anomaly")])
    layer.setRenderer(renderer)
    msg, ok = layer.saveNamedStyle(path)
    assert ok, msg


def objects_style(path):
    layer = QgsVectorLayer("MultiPolygon?field=id:integer&field=pixels:integer&field=area:double"
                           "&field=peak_score:double&field=mean_score:double", "objects", "memory")
    symbol = QgsFillSymbol.createSimple({"color": "230,30,30,50", "outline_color": "230,30,30,255",
                                         "outline_width": "0.6", "outline_width_unit": "MM"})
    layer.renderer().setSymbol(symbol)
    settings = QgsPalLayerSettings()
    settings.fieldName = "id"
    fmt = QgsTextFormat()
    fmt.setSize(9)
    fmt.setColor(QColor(120, 0, 0))
    buffer = QgsTextBufferSettings()
    buffer.setEnabled(True)
    buffer.setSize(1)
    buffer.setColor(QColor(255, 255, 255))
    fmt.setBuffer(buffer)
    settings.setFormat(fmt)
    settings.placement = QgsPalLayerSettings.OverPoint
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)
    msg, ok = layer.saveNamedStyle(path)
    assert ok, msg


def detect_and_evaluate(path):
    from processing.core.Processing import Processing

    from fers_qgis.algorithms.detect import STRATEGIES
    from fers_qgis.paths import bundled_models
    from fers_qgis.provider import FersProvider

    Processing.initialize()
    global PROVIDER  # the registry does not keep the Python object alive
    PROVIDER = FersProvider()
    QgsApplication.processingRegistry().addProvider(PROVIDER)
    m = QgsProcessingModelAlgorithm("Detect and evaluate", "FERS", "fers")
    m.setHelpContent({
        "ALG_DESC": "Anomaly map of a hyperspectral raster (fers:detect) and its ROC AUC against a ground-truth "
                    "raster (fers:evaluate), in one run. Outputs: the score map and the AUC.",
        "raster": "The hyperspectral raster to score.",
        "ground_truth": "Raster of the same size, > 0 = anomaly.",
        "bands": "The first N bands (0 = all, or the model's bands).",
        "strategy": "Fusion strategy of fers:detect: auto (the default) = fusion A for ≤ 50 bands, else B; "
                    "none = plain RX on the raw bands, no model. Every strategy except 'none' needs a model: "
                    "without one, the bundled model that matches the raster is used.",
        "model": "Optional model checkpoint (.pt), authors' folder or bundled model name.",
        "bundled_model": "Optional: one of the models shipped with the plugin; empty = the one that matches the "
                         "raster (fers:detect's help).",
        "ALG_CREATOR": "FERS for QGIS"})
    # in the order an analyst fills them in (QgsProcessingModelAlgorithm.setParameterOrder below; without it QGIS
    # lists a model's inputs by name: the raster 4th, after the ground truth)
    inputs = [
        (QgsProcessingParameterRasterLayer("raster", "Hyperspectral raster"), 60),
        (QgsProcessingParameterRasterLayer("ground_truth", "Ground truth (> 0 = anomaly)"), 140),
        (QgsProcessingParameterEnum("strategy", "Fusion strategy", list(STRATEGIES), False, "auto", False, True), 220),
        (QgsProcessingParameterEnum("bundled_model", "Bundled model (empty = automatic)",
                                    [m.name for m in bundled_models()], False, None, True, True), 300),
        (QgsProcessingParameterFile("model", "…or a model file (.pt) or folder", QgsProcessingParameterFile.File, "",
                                    None, True, "All files (*)"), 380),
        (QgsProcessingParameterNumber("bands", "Use the first N bands (0 = automatic)",
                                      QgsProcessingParameterNumber.Integer, 0, False, 0), 460),
    ]
    helps = m.helpContent()
    for d, y in inputs:
        d.setHelp(helps[d.name()])
        p = QgsProcessingModelParameter(d.name())
        p.setPosition(QPointF(120, y))
        p.setDescription(d.description())
        m.addModelParameter(d, p)
    m.setParameterOrder([d.name() for d, _ in inputs])

    detect = QgsProcessingModelChildAlgorithm("fers:detect")
    detect.setChildId("detect")
    detect.setDescription("Detect anomalies")
    detect.setPosition(QPointF(420, 180))
    src = QgsProcessingModelChildParameterSource
    sources = {"INPUT": src.fromModelParameter("raster"), "BANDS": src.fromModelParameter("bands"),
               "STRATEGY": src.fromModelParameter("strategy"), "MODEL": src.fromModelParameter("model"),
               "BUNDLED_MODEL": src.fromModelParameter("bundled_model")}
    alg = QgsApplication.processingRegistry().algorithmById("fers:detect")
    for d in alg.parameterDefinitions():  # every other mandatory parameter at its default
        if d.name() not in sources and not d.isDestination() and not (d.flags() & d.FlagOptional):
            sources[d.name()] = src.fromStaticValue(d.defaultValue())
    for name, s in sources.items():
        detect.addParameterSources(name, [s])
    out = QgsProcessingModelOutput("map", "Anomaly score map")
    out.setChildId("detect")
    out.setChildOutputName("OUTPUT")
    out.setPosition(QPointF(640, 120))
    detect.setModelOutputs({"map": out})
    m.addChildAlgorithm(detect)

    evaluate = QgsProcessingModelChildAlgorithm("fers:evaluate")
    evaluate.setChildId("evaluate")
    evaluate.setDescription("Evaluate score map (ROC AUC)")
    evaluate.setPosition(QPointF(640, 300))
    evaluate.addParameterSources("SCORE", [src.fromChildOutput("detect", "OUTPUT")])
    evaluate.addParameterSources("GROUND_TRUTH", [src.fromModelParameter("ground_truth")])
    auc = QgsProcessingModelOutput("AUC", "ROC AUC")
    auc.setChildId("evaluate")
    auc.setChildOutputName("AUC")
    auc.setPosition(QPointF(860, 340))
    evaluate.setModelOutputs({"AUC": auc})
    m.addChildAlgorithm(evaluate)

    ok, errors = m.validate()
    assert ok, errors
    assert m.toFile(path), path


def main():
    app = QgsApplication([], False)
    app.initQgis()
    os.makedirs(STYLES, exist_ok=True)
    os.makedirs(MODELER, exist_ok=True)
    mask_style(os.path.join(STYLES, "anomaly_mask.qml"))
    objects_style(os.path.join(STYLES, "anomaly_objects.qml"))
    detect_and_evaluate(os.path.join(MODELER, "detect_and_evaluate.model3"))
    print("wrote", STYLES, MODELER)


if __name__ == "__main__":
    main()
