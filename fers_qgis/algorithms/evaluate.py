"""fers:evaluate — ROC AUC of a score map against ground truth."""
from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterRasterLayer)

from .base import FersAlgorithm, add_file_destination
from .detect import raster_source


# 3D-ROC areas (fers.metrics.roc3d), as the outputs are named
ROC3D_OUTPUTS = {"AUC_DT": "AUC(D,τ): detectability", "AUC_FT": "AUC(F,τ): background (lower = better suppressed)",
                 "AUC_TD": "AUC_TD = AUC(D,F) + AUC(D,τ)", "AUC_BS": "AUC_BS = AUC(D,F) − AUC(F,τ)",
                 "AUC_TDBS": "AUC_TDBS = AUC(D,τ) − AUC(F,τ)", "AUC_SNPR": "AUC_SNPR = AUC(D,τ) / AUC(F,τ)",
                 "AUC_OD": "AUC_OD = AUC(D,F) + AUC(D,τ) − AUC(F,τ)",
                 "AUC_ODP": "AUC_ODP = AUC(D,τ) + 1 − AUC(F,τ)"}


class EvaluateAlgorithm(FersAlgorithm):
    NAME = "evaluate"
    DISPLAY = "Evaluate score map (ROC AUC)"
    GROUP = "Evaluation"
    HELP = ("ROC AUC of an anomaly score map against a binary ground-truth raster of the same size "
            "(any value > 0 = anomaly), over pixels valid in both. Optionally writes the ROC curve as a "
            "PNG or a self-contained HTML page.\n\n"
            "Also the 3D-ROC areas other anomaly-detection papers report (Chang 2021), on the scores min–max "
            "normalised to τ ∈ [0, 1]: AUC(D,τ) (mean normalised score of the anomalies), AUC(F,τ) (of the "
            "background; lower = better suppressed) and from them AUC_TD = AUC(D,F) + AUC(D,τ), AUC_BS = AUC(D,F) − "
            "AUC(F,τ), AUC_TDBS = AUC(D,τ) − AUC(F,τ), AUC_SNPR = AUC(D,τ) / AUC(F,τ), AUC_OD = AUC(D,F) + "
            "AUC(D,τ) − AUC(F,τ) and AUC_ODP = AUC(D,τ) + 1 − AUC(F,τ).")
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
        # declared a plain file output: QGIS (3.22 and later) turns a file destination whose filter mentions
        # "htm" into an HTML output, and the dialog then ends with "HTML output has been generated" for a PNG
        add_file_destination(self, QgsProcessingParameterFileDestination(
            "ROC", "ROC curve", "PNG files (*.png);;HTML files (*.html)", None, True, False))
        self.addOutput(QgsProcessingOutputNumber("AUC", "ROC AUC"))
        for name, label in ROC3D_OUTPUTS.items():
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def run_engine(self, parameters, context, feedback):
        from fers.pipeline import evaluate

        roc = self.parameterAsFileOutput(parameters, "ROC", context) or None
        res = evaluate(raster_source(self, parameters, "SCORE", context),
                       raster_source(self, parameters, "GROUND_TRUTH", context), roc=roc, feedback=feedback)
        out = {"AUC": res.auc, "VALID_PIXELS": res.valid_pixels, "ANOMALIES": res.anomalies}
        out.update({name: res.roc3d[name.lower()] for name in ROC3D_OUTPUTS})
        if res.roc:
            out["ROC"] = res.roc
        return out
