"""fers:train_spatial — stage 2: train the rebellious student (Spa-FEN) against a frozen Spe-FEN."""
from qgis.core import QgsProcessingParameterBoolean, QgsProcessingParameterDefinition, QgsProcessingParameterFile

from .base import FersAlgorithm
from .train_spectral import NODATA_HELP, add_training_parameters, training_arguments, training_results


class TrainSpatialAlgorithm(FersAlgorithm):
    NAME = "train_spatial"
    DISPLAY = "Train stage 2 (Spa-FEN)"
    GROUP = "Training"
    HELP = ("Stage 2 of FERS: trains the spatial feature-enhancement network (the 'rebellious student': spectral "
            "compression to a false-RGB image, frozen ResNet-34, LightSPP pyramid pooling, squeeze-excitation) to be "
            "decorrelated from a frozen spectral teacher while a restoration network (FRN) reconstructs the cube "
            "from both. The output holds teacher + student and enables every fusion strategy of 'Detect "
            "anomalies' (multiplicative = A, additive = B, auto). The band count is the teacher's.\n\n"
            "<b>Teacher</b>: a checkpoint from 'Train stage 1 (Spe-FEN)' or the FERS authors' checkpoint folder.\n"
            "<b>Backbone weights</b>: ResNet-34 — 'imagenet' (torchvision file via torch.hub, once), a local .pth "
            "file, or 'random'; recorded in the checkpoint. Resume, validation and logs as in stage 1.")

    PARAM_HELP = {
        "NODATA": NODATA_HELP,
        "OUTPUT": "The model file (.pt) to write: teacher (Spe-FEN) + student (Spa-FEN) + metadata; usable at "
                  "once as MODEL of 'Detect anomalies' with every strategy.",
        "ADAPT_BN": "On (the authors' reference): ResNet-34's BatchNorm running statistics adapt to the false-RGB "
                    "images during training, its weights stay frozen. Off: the ImageNet statistics are kept.",
    }

    def initAlgorithm(self, config=None):  # noqa: N802
        teacher = QgsProcessingParameterFile("TEACHER", "Spectral teacher (stage-1 model)",
                                             QgsProcessingParameterFile.File, "", None, False, "All files (*)")
        teacher.setHelp("Frozen during stage 2; its band count is the model's.")
        self.addParameter(teacher)
        add_training_parameters(self, default_bands=None)
        bn = QgsProcessingParameterBoolean("ADAPT_BN", "Adapt ResNet-34 BatchNorm (reference)", True)
        bn.setFlags(bn.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(bn)

    def run_engine(self, parameters, context, feedback):
        from fers.train.stage2 import train_spatial

        args = training_arguments(self, parameters, context)
        res = train_spatial(teacher=self.parameterAsFile(parameters, "TEACHER", context),
                            adapt_bn=self.parameterAsBoolean(parameters, "ADAPT_BN", context), feedback=feedback, **args)
        return training_results(res)
