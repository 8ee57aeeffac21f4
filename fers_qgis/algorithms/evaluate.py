"""fers:evaluate — ROC AUC of a score map against ground truth."""
from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterRasterLayer)

from .base import FersAlgorithm
from .detect import raster_source


class EvaluateAlgorithm(FersAlgorithm):
    NAME = "evaluate"
    DISPLAY = "Evaluate score map (ROC AUC)"
    GROUP = "Evaluation"
    HELP = ("ROC AUC of an anomaly score map against a binary ground-truth raster of the same size "
            "(any value > 0 = anomaly), over pixels valid in both. Optionally writes the ROC curve as a "
            "PNG or a self-contained HTML page.")
    PARAM_HELP = {
        "SCORE": "A one-band score map (higher = more anomalous), e.g. the output of 'Detect anomalies'; its "
                 "nodata pixels are left out.",
        "GROUND_TRUTH": "A raster of the same size: any value > 0 marks an anomaly, 0 background; nodata pixels "
                        "are left out. HAD100 .png masks and .mat/.npy files are read too.",
        "ROC": "Optional: the ROC curve (false-positive rate vs true-positive rate) as a .png image or a "
               "self-contained .html page.",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("SCORE", "Anomaly score map"))
        self.addParameter(QgsProcessingParameterRasterLayer("GROUND_TRUTH", "Ground truth (> 0 = anomaly)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            "ROC", "ROC curve", "PNG files (*.png);;HTML files (*.html)", None, True, False))
        self.addOutput(QgsProcessingOutputNumber("AUC", "ROC AUC"))

    def run_engine(self, parameters, context, feedback):
        from fers.pipeline import evaluate

        roc = self.parameterAsFileOutput(parameters, "ROC", context) or None
        res = evaluate(raster_source(self, parameters, "SCORE", context),
                       raster_source(self, parameters, "GROUND_TRUTH", context), roc=roc, feedback=feedback)
        out = {"AUC": res.auc, "VALID_PIXELS": res.valid_pixels, "ANOMALIES": res.anomalies}
        if res.roc:
            out["ROC"] = res.roc
        return out
