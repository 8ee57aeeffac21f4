"""How FERS outputs look when QGIS loads them: post-processors that style and name the layers.

QGIS calls a ``QgsProcessingLayerPostProcessorInterface`` once the output layer is loaded
(Processing dialog, ``processing.runAndLoadResults``, the modeler). The context holds only a
pointer, and ``QgsProcessingAlgorithm.run`` executes a temporary copy of the algorithm that is
deleted before the layers are loaded, so the post-processors live here, at module level (as in
the PyQGIS cookbook), in a bounded queue.

* score maps: a singleband pseudocolour renderer on a perceptual ramp (Magma) stretched
  between the 2nd and 98th percentiles of the valid scores (computed by the engine,
  ``fers.objects.display_range``), named "<input> — anomaly (<strategy>)";
* anomaly masks: ``resources/styles/anomaly_mask.qml`` (anomalies red, the rest transparent);
* anomaly objects: ``resources/styles/anomaly_objects.qml`` (red outlines labelled with the id).
"""
import os
from collections import deque

from qgis.core import (QgsColorRampShader, QgsGradientColorRamp, QgsProcessingLayerPostProcessorInterface,
                       QgsRasterLayer, QgsRasterMinMaxOrigin, QgsSingleBandPseudoColorRenderer, QgsStyle)
from qgis.PyQt.QtGui import QColor

from .paths import RESOURCES

STYLES = os.path.join(RESOURCES, "styles")
SCORE_RAMP = "Magma"
STRETCH = (2.0, 98.0)  # percentiles of the valid scores
# far more than one run's outputs can be waiting for QGIS to load them at once
_ALIVE = deque(maxlen=256)


def score_ramp(name=SCORE_RAMP):
    ramp = QgsStyle.defaultStyle().colorRamp(name)
    if ramp is None:  # a profile without QGIS's default ramps: magma's end points
        ramp = QgsGradientColorRamp(QColor(0, 0, 4), QColor(252, 253, 191))
    return ramp


def style_score_layer(layer, minimum, maximum, name=None):
    """Pseudocolour (Magma, continuous) from ``minimum`` to ``maximum``; values beyond keep the end colours."""
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1)
    renderer.setClassificationMin(float(minimum))
    renderer.setClassificationMax(float(maximum))
    renderer.createShader(score_ramp(), QgsColorRampShader.Interpolated, QgsColorRampShader.Continuous, 0, False)
    origin = renderer.minMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.CumulativeCut)
    origin.setCumulativeCutLower(STRETCH[0] / 100.0)
    origin.setCumulativeCutUpper(STRETCH[1] / 100.0)
    renderer.setMinMaxOrigin(origin)
    layer.setRenderer(renderer)
    if name:
        layer.setName(name)
    layer.triggerRepaint()
    return renderer


def apply_qml(layer, qml, name=None):
    msg, ok = layer.loadNamedStyle(os.path.join(STYLES, qml))
    if name:
        layer.setName(name)
    layer.triggerRepaint()
    return ok


class ScoreStyler(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, name, minimum, maximum):
        super().__init__()
        self.name, self.minimum, self.maximum = name, minimum, maximum

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            style_score_layer(layer, self.minimum, self.maximum, self.name)


class QmlStyler(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, name, qml):
        super().__init__()
        self.name, self.qml = name, qml

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        apply_qml(layer, self.qml, self.name)


def on_load(context, path, styler):
    """Attach ``styler`` to the output ``path`` if QGIS will load it, and keep it alive until then."""
    if not path or not context.willLoadLayerOnCompletion(path):
        return None
    _ALIVE.append(styler)
    details = context.layerToLoadOnCompletionDetails(path)
    details.name = styler.name
    details.setPostProcessor(styler)
    return styler
