"""fers:benchmark — the paper's evaluation protocol over many scenes (adapter over fers.benchmark)."""
from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputFile, QgsProcessingOutputNumber,
                       QgsProcessingOutputString, QgsProcessingParameterDefinition, QgsProcessingParameterEnum,
                       QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterFolderDestination, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber, QgsProcessingParameterString)

from ..paths import bundled_models
from .base import FersAlgorithm, add_file_destination
from .detect import DETECTORS, DEVICES, STRATEGIES

SENSORS = ("aviris_ng", "aviris")


class BenchmarkAlgorithm(FersAlgorithm):
    NAME = "benchmark"
    DISPLAY = "Benchmark (paper protocol)"
    GROUP = "Evaluation"
    HELP = ("Runs every scene × band count × strategy, as in the paper's evaluation: the first N bands, the "
            "per-scene scaling, the detector, the ROC AUC over valid pixels and the seconds per scene. Writes "
            "results.csv, results.md, results.json, ROC curves (roc/) and score-map galleries to the output "
            "folder, and an HTML report page. Nothing is trained; ground truth is only used for the AUC.\n\n"
            "<b>Scenes</b>: raster layers whose ground truth lies beside them as NAME_gt.tif (or NAME_mask.tif), "
            "and/or a <b>folder</b> of such rasters and of ABU-style .mat files (data and ground truth inside, or "
            "RCRD-style dataNAME.mat + maskNAME.mat), or a HAD100 root (test/&lt;sensor&gt;/*.npy + "
            "ground_truth/&lt;sensor&gt;/*.png).\n"
            "<b>Bands</b>: one or more band counts, e.g. 100 or 50,100,200; scenes with fewer bands are skipped "
            "(the reason is recorded).\n"
            "<b>Models</b>: needed by every strategy but 'none'; each is used for the band count it was trained on: "
            "tick bundled models, give a model file, and more (one per band count) in the advanced 'More models' "
            "field. Strategies without a "
            "fitting model are skipped and listed in the report.")

    PARAM_HELP = {
        "SCENES": "Raster layers to score; each needs its ground truth beside it as NAME_gt.tif or NAME_mask.tif "
                  "(1 or > 0 = anomaly).",
        "SCENE_FOLDER": "A folder of .mat scenes (data and ground truth auto-detected), of rasters with NAME_gt "
                        "beside them, or the root of a HAD100 copy (test/<sensor>, ground_truth/<sensor>).",
        "BANDS": "One or more band counts, separated by commas: each scene is run with its first N bands.",
        "STRATEGIES": "Every strategy to run per scene and band count; all but 'none' need a model of that band "
                      "count.",
        "BUNDLED_MODELS": "Models shipped with the plugin (their cards are in 'Detect anomalies' help), e.g. both "
                          "for 100 and 200 bands; each is used for the band count it was trained on.",
        "MORE_MODELS": "Further checkpoints (paths or bundled names, separated by ;), one per band count, so a "
                       "single run covers 50, 100 and 200 bands.",
        "SENSOR": "Which HAD100 test folder to read when SCENE_FOLDER is a HAD100 root.",
        "RX_TRIM": "RX only. Share of the pixels (the highest of a first pass) left out of the background mean and "
                   "covariance. 0 (default) = the paper's plain RX, as in its tables; empty = what fers:detect does "
                   "(0.01 for the strategies with a model, 0 for 'none').",
        "OUTPUT_FOLDER": "Where results.csv, results.md, results.json, roc/*.png and the galleries are written.",
        "OUTPUT_HTML": "One HTML page with the tables, ROC curves and score maps beside their ground truth.",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "SCENES", "Scene rasters (with NAME_gt.tif)", QgsProcessing.TypeRaster,
            optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "SCENE_FOLDER", "…or a folder of scenes (or HAD100)",
            QgsProcessingParameterFile.Folder, optional=True))
        bands = QgsProcessingParameterString("BANDS", "Band counts (e.g. 100 or 50,100,200)", "100")
        self.addParameter(bands)
        strategies = QgsProcessingParameterEnum("STRATEGIES", "Strategies", options=list(STRATEGIES),
                                                allowMultiple=True, defaultValue=["none"], usesStaticStrings=True)
        self.addParameter(strategies)
        self.add_enum("DETECTOR", "Detector", DETECTORS, "rx")
        names = [m.name for m in bundled_models()]
        bundled = QgsProcessingParameterEnum("BUNDLED_MODELS", "Bundled models", options=names, allowMultiple=True,
                                             defaultValue=None, optional=True, usesStaticStrings=True)
        if not names:
            bundled.setFlags(bundled.flags() | QgsProcessingParameterDefinition.FlagHidden)
        self.addParameter(bundled)
        model = QgsProcessingParameterFile("MODEL", "…or a model file (.pt) or folder",
                                           QgsProcessingParameterFile.File, "", None, True, "All files (*)")
        model.setHelp("Used for the band count it was trained on; strategies that need a model are skipped at "
                      "other band counts.")
        self.addParameter(model)
        more = QgsProcessingParameterString("MORE_MODELS", "More models (paths separated by ;)",
                                            None, False, True)
        more.setFlags(more.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(more)
        self.add_enum("SENSOR", "HAD100 sensor folder", SENSORS, "aviris_ng", advanced=True)
        self.add_enum("DEVICE", "Device", DEVICES, "auto", advanced=True)
        trim = QgsProcessingParameterNumber("RX_TRIM", "RX trim (0 = the paper's plain RX)",
                                            QgsProcessingParameterNumber.Double, 0.0, True, 0.0, 0.49)
        trim.setFlags(trim.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(trim)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Results folder"))
        # a file output, not QGIS's HTML output (base.add_file_destination): the page links the PNGs beside it
        add_file_destination(self, QgsProcessingParameterFileDestination("OUTPUT_HTML", "Report",
                                                                         "HTML files (*.html)"))
        self.addOutput(QgsProcessingOutputFile("RESULTS_CSV", "Results table (CSV)"))
        self.addOutput(QgsProcessingOutputString("MEAN_AUC", "Mean AUC per strategy and band count"))
        for s in STRATEGIES:
            self.addOutput(QgsProcessingOutputNumber(f"MEAN_AUC_{s.upper()}",
                                                     f"Mean AUC, {s}, first band count"))
        self.addOutput(QgsProcessingOutputNumber("RUNS", "Runs completed"))
        self.addOutput(QgsProcessingOutputNumber("NOT_RUN", "Runs skipped (reasons in the report)"))

    def run_engine(self, parameters, context, feedback):
        from fers.benchmark import parse_band_counts, run_benchmark

        scenes = [lyr.source() for lyr in self.parameterAsLayerList(parameters, "SCENES", context)]
        folder = self.parameterAsFile(parameters, "SCENE_FOLDER", context)
        if folder:
            scenes.append(folder)
        if not scenes:
            raise QgsProcessingException("give scene layers (SCENES) or a folder of scenes / a HAD100 root (SCENE_FOLDER)")
        chosen = set(self.parameterAsEnumStrings(parameters, "BUNDLED_MODELS", context))
        models = [m.path for m in bundled_models() if m.name in chosen]
        models.append(self.parameterAsFile(parameters, "MODEL", context))
        models += [m.strip() for m in (self.parameterAsString(parameters, "MORE_MODELS", context) or "").split(";")]
        bands = parse_band_counts(self.parameterAsString(parameters, "BANDS", context))
        trim = self.optional_double(parameters, "RX_TRIM", context, default=0.0)
        res = run_benchmark(scenes, self.parameterAsString(parameters, "OUTPUT_FOLDER", context), bands=bands,
                            strategies=self.parameterAsEnumStrings(parameters, "STRATEGIES", context),
                            detectors=[self.parameterAsEnumString(parameters, "DETECTOR", context)],
                            models=[m for m in models if m],
                            device=self.parameterAsEnumString(parameters, "DEVICE", context),
                            sensor=self.parameterAsEnumString(parameters, "SENSOR", context),
                            html=self.parameterAsFileOutput(parameters, "OUTPUT_HTML", context), feedback=feedback,
                            rx_trim=trim)
        out = {"OUTPUT_FOLDER": res.out_dir, "OUTPUT_HTML": res.files["html"], "RESULTS_CSV": res.files["csv"],
               "RUNS": sum(r["status"] == "ok" for r in res.rows),
               "NOT_RUN": sum(r["status"] != "ok" for r in res.rows),
               "MEAN_AUC": "; ".join(f"{s['strategy']}@{s['bands_requested'] or 'all'}="
                                     + (f"{s['mean_auc']:.6f}" if s["mean_auc"] is not None else "not run")
                                     + f" ({s['scenes']} scenes)" for s in res.summary)}
        for s in res.summary:
            if s["bands_requested"] == bands[0] and s["mean_auc"] is not None:
                out[f"MEAN_AUC_{s['strategy'].upper()}"] = s["mean_auc"]
        feedback.info(res.markdown)
        return out
