"""fers:train_spectral — stage 1: train FERD / Spe-FEN on anomaly-free background rasters."""
from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputNumber, QgsProcessingOutputString,
                       QgsProcessingParameterDefinition, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber, QgsProcessingParameterString)

from .base import FersAlgorithm
from .detect import DEVICES, add_nodata_parameter, user_nodata

TRUNKS = ("wide_resnet50_2", "wide_resnet101_2")
NODATA_HELP = ("Values, or LO:HI ranges, that are no data in every background raster besides its own nodata, e.g. "
               "0 for the zero fill around a flight line that carries no nodata tag: such pixels (a value in any "
               "band used) are never cut into a training patch and do not shape the scaling. Each layer's own "
               "additional no-data values (Properties ▸ Transparency) are always used. Recorded in the checkpoint.")


def layer_sources(alg, parameters, name, context):
    return [lyr.source() for lyr in alg.parameterAsLayerList(parameters, name, context)]


def layers_nodata(alg, parameters, names, context):
    """{source: ((lo, hi), ...)}: each layer's additional no-data values (Properties ▸ Transparency), which QGIS
    hides and training must not sample either (fers:detect's layer_nodata, per layer)."""
    found = {lyr.source(): user_nodata(lyr) for name in names for lyr in alg.parameterAsLayerList(parameters, name,
                                                                                                  context)}
    return {source: ranges for source, ranges in found.items() if ranges}


def add_training_parameters(alg, default_bands=100):
    """Parameters both training stages share, in the same order and with the same names."""
    alg.addParameter(QgsProcessingParameterMultipleLayers(
        "SOURCES", "Background rasters (anomaly-free)", QgsProcessing.TypeRaster, optional=True))
    alg.addParameter(QgsProcessingParameterFile(
        "SOURCE_FOLDER", "…or a folder of background rasters",
        QgsProcessingParameterFile.Folder, optional=True))
    if default_bands is not None:
        alg.addParameter(QgsProcessingParameterNumber("BANDS", "Bands (the first N)",
                                                      QgsProcessingParameterNumber.Integer, default_bands, False, 1))
    for name, label, default in (("EPOCHS", "Epochs", 60), ("BATCH", "Batch size", 16), ("SEED", "Random seed", 10)):
        alg.addParameter(QgsProcessingParameterNumber(name, label, QgsProcessingParameterNumber.Integer, default, False, 0 if name == "SEED" else 1))
    alg.addParameter(QgsProcessingParameterNumber("LR", "Learning rate (Adam)", QgsProcessingParameterNumber.Double, 0.005, False, 0.0))
    advanced = [
        QgsProcessingParameterNumber("PATCH", "Patch size (pixels, multiple of 8)", QgsProcessingParameterNumber.Integer, 64, False, 8),
        QgsProcessingParameterNumber("STEPS", "Steps per epoch (0 = one pass)",
                                     QgsProcessingParameterNumber.Integer, 0, False, 0),
        QgsProcessingParameterMultipleLayers("VALIDATION", "Validation rasters (held out)",
                                             QgsProcessing.TypeRaster, optional=True),
        QgsProcessingParameterString("BACKBONE_WEIGHTS", "Backbone weights (imagenet, .pth, random)",
                                     "imagenet"),
        QgsProcessingParameterNumber("BAND_STRETCH", "Band stretch (rasters short of the bands)",
                                     QgsProcessingParameterNumber.Double, 0.0, False, 0.0, 0.5),
    ]
    for p in advanced:
        p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        alg.addParameter(p)
    add_nodata_parameter(alg, file_switch=False)
    alg.add_enum("DEVICE", "Device", DEVICES, "auto", advanced=True)
    alg.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Model checkpoint", "FERS checkpoint (*.pt)"))
    alg.addOutput(QgsProcessingOutputNumber("BEST_EPOCH", "Selected epoch (lowest validation loss)"))
    alg.addOutput(QgsProcessingOutputNumber("BEST_VAL_LOSS", "Validation loss of the selected epoch"))
    alg.addOutput(QgsProcessingOutputString("LOG", "Training log (JSON lines)"))


def training_arguments(alg, parameters, context):
    from fers.io.source import parse_nodata

    sources = layer_sources(alg, parameters, "SOURCES", context)
    folder = alg.parameterAsFile(parameters, "SOURCE_FOLDER", context)
    if folder:
        sources.append(folder)
    if not sources:
        raise QgsProcessingException("give background rasters (SOURCES) or a folder of them (SOURCE_FOLDER)")
    num = lambda n: alg.parameterAsInt(parameters, n, context)  # noqa: E731
    return dict(sources=sources, output=alg.parameterAsFileOutput(parameters, "OUTPUT", context),
                epochs=num("EPOCHS"), batch=num("BATCH"), seed=num("SEED"), patch=num("PATCH"),
                steps_per_epoch=num("STEPS"), lr=alg.parameterAsDouble(parameters, "LR", context),
                backbone_weights=alg.parameterAsString(parameters, "BACKBONE_WEIGHTS", context).strip() or "imagenet",
                val_sources=layer_sources(alg, parameters, "VALIDATION", context) or None,
                band_stretch=alg.parameterAsDouble(parameters, "BAND_STRETCH", context),
                nodata=parse_nodata(alg.parameterAsString(parameters, "NODATA", context) or ""),
                source_nodata=layers_nodata(alg, parameters, ("SOURCES", "VALIDATION"), context),
                device=alg.parameterAsEnumString(parameters, "DEVICE", context))


def training_results(res):
    h = res["history"]
    return {"OUTPUT": res["output"], "BEST_EPOCH": h["best_epoch"], "BEST_VAL_LOSS": h["best_val"], "LOG": res["log"]}


class TrainSpectralAlgorithm(FersAlgorithm):
    NAME = "train_spectral"
    DISPLAY = "Train stage 1 (Spe-FEN)"
    GROUP = "Training"
    HELP = ("Stage 1 of FERS (FERD reverse distillation): trains the spectral feature-enhancement network on "
            "anomaly-free background scenes. Patches (64×64) are cut at random with flips and rotations; the "
            "last background raster (or the VALIDATION rasters) is held out and the epoch with the lowest "
            "validation loss is kept — never test ground truth. The output checkpoint works at once as MODEL of "
            "'Detect anomalies' with strategy 'spectral'. Cancel any time: running it again with the same "
            "settings resumes from the last finished epoch.\n\n"
            "<b>Trunk</b>: wide_resnet101_2 (paper) or wide_resnet50_2 (same layer1, lighter on CPU).\n"
            "<b>Backbone weights</b>: 'imagenet' downloads torchvision's file once (torch.hub cache); offline, "
            "give a local .pth, 'partial:FILE' (e.g. the authors' enc.pt, which holds layer1 only; other stages "
            "stay random) or 'random'. The choice is recorded in the checkpoint.")
    PARAM_HELP = {
        "NODATA": NODATA_HELP,
        "BANDS": "The model's band count: the first N bands of every background raster (the paper: 50, 100 or 200). "
                 "Detection later uses the same bands.",
        "OUTPUT": "The checkpoint file (.pt) to write; usable at once as MODEL of 'Detect anomalies' (strategy "
                  "'spectral'), or as a bundled model when copied into resources/models with a NAME.md card. "
                  "A resume file and a JSON-lines log are kept beside it.",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        add_training_parameters(self)
        self.add_enum("TRUNK", "Frozen encoder trunk", TRUNKS, "wide_resnet50_2", advanced=True)

    def run_engine(self, parameters, context, feedback):
        from fers.train.stage1 import train_spectral

        args = training_arguments(self, parameters, context)
        res = train_spectral(bands=self.parameterAsInt(parameters, "BANDS", context),
                             trunk=self.parameterAsEnumString(parameters, "TRUNK", context), feedback=feedback, **args)
        return training_results(res)
