"""What every FERS algorithm shares: engine loading, feedback adaptation, error translation."""
import os
import time

from qgis.core import (QgsProcessing, QgsProcessingAlgorithm, QgsProcessingException,
                       QgsProcessingOutputLayerDefinition, QgsProcessingParameterDefinition, QgsProcessingParameterEnum,
                       QgsProperty)

from .. import deps
from ..deps import qgis_python  # noqa: F401 (kept importable from here: scripts and tests use it)
from ..paths import ensure_engine_on_path, icon


def install_command(found=None):
    """The commands that install what the engine lacks for this QGIS (the apt route first where the distribution
    packages it), one per line; the same the dependencies dialog runs (fers_qgis/deps.py)."""
    return "\n".join(deps.manual_commands(deps.check() if found is None else found))


def load_engine():
    """Import the engine or explain, in one message, what is missing and how to install it (deps.missing_message:
    the dialog route, Plugins ▸ FERS ▸ Install dependencies…, and the manual commands for this platform)."""
    deps.activate()  # a folder the dialog created after the plugin loaded
    ensure_engine_on_path()
    found = deps.check(import_modules=True)
    if deps.blocking(found) or deps.gdal_missing():
        raise QgsProcessingException(deps.missing_message(found))
    try:
        import fers  # noqa: F401
    except ImportError as e:
        raise QgsProcessingException(f"the FERS engine could not be imported: {e}")


def log_device(alg, parameters, context, feedback):
    """Write the device an algorithm with a DEVICE parameter will use (and why) to the run log."""
    if alg.parameterDefinition("DEVICE") is None:
        return
    from fers.device import describe_device, resolve_device
    from fers.errors import FersError

    asked = alg.parameterAsEnumString(parameters, "DEVICE", context) or "auto"
    try:
        dev = resolve_device(asked)
    except FersError:
        return  # the engine reports it, once, as the run's error
    feedback.pushInfo(f"device: {describe_device(dev)}" + (f" (DEVICE={asked})" if asked != dev else ""))


# help for parameters several algorithms share (an algorithm's PARAM_HELP takes precedence)
COMMON_HELP = {
    "ALLOW_NETWORK": "Off: inputs are read from local files only, and a file that names a URL (/vsicurl/, http://, "
                     "also inside a VRT) is refused, so a downloaded file never makes FERS fetch anything. On: remote "
                     "layers (a cloud-optimised GeoTIFF over HTTP, S3) are read as QGIS reads them.",
    "DEVICE": "auto = CUDA when torch sees a GPU, else CPU; cpu; cuda (an error if no GPU is visible). "
              "The device used and the run time are written to the log.",
    "DETECTOR": "rx = global Reed–Xiaoli: the Mahalanobis distance of each pixel's (enhanced) spectrum to the "
                "scene's mean and covariance, over valid pixels.",
    "STRATEGY": "none = RX on the raw bands; spectral = RX(H + F_spe) (FERD); spatial = RX(H + F_spa); "
                "multiplicative = fusion A; additive = fusion B; auto = A for ≤ 50 bands, else B.",
    "BAND_LIST": "1-based bands and ranges, e.g. 1-100,120,130-140; overrides the band count.",
    "NODATA": "Values, or LO:HI ranges, that are no data besides the file's nodata, e.g. 0 for the zero fill "
              "around a flight line that carries no nodata tag: pixels with such a value in any selected band "
              "leave every statistic and stay nodata in the output. The layer's own additional no-data values "
              "(Properties ▸ Transparency) are always used, as QGIS hides those pixels.",
    "EXTENT": "Work in this extent only (drawn on the map canvas, a layer's extent or typed; any CRS, reprojected "
              "to the raster's): the pixels it touches are read and processed, so the background statistics and "
              "the scaling are the extent's, and the output covers just that window on the raster's own grid. "
              "Saves clipping a large scene first.",
    "IGNORE_FILE_NODATA": "Read the value the file declares as nodata as data, where that tag is wrong for this "
                          "file (e.g. nodata=0 on a product in which 0 is a real value). Also on when the layer's "
                          "'No data value' is unticked in Properties ▸ Transparency, as QGIS then shows those "
                          "pixels. NODATA and the layer's additional no-data values still count.",
    "MODEL": "A FERS checkpoint (.pt) from the training algorithms, a folder holding the FERS authors' convh.pt, "
             "enc.pt and pc.pt, or a bundled model's name.",
    "SOURCES": "Rasters of anomaly-free background scenes of the sensor the model will be used on; each must have "
               "at least the model's bands.",
    "SOURCE_FOLDER": "A folder whose .tif, .mat and .npy files are added to the background rasters.",
    "BANDS": "The first N bands (the paper's protocol).",
    "EPOCHS": "Passes over the training data; the epoch with the lowest validation loss is kept.",
    "BATCH": "Patches per optimisation step; lower it if memory runs out.",
    "SEED": "Random seed of the weights, patches and augmentations: the same seed gives the same model.",
    "LR": "Adam learning rate.",
    "PATCH": "Side of the square training patches in pixels (a multiple of 8).",
    "STEPS": "Optimisation steps per epoch; 0 = as many as needed to see each scene's pixels about once.",
    "BAND_STRETCH": "0 (the paper): a background raster with fewer bands than BANDS is skipped. F > 0: one at most "
                    "F × its band count short (e.g. 0.1: 188 bands for a 200-band model) trains too, its bands "
                    "resampled linearly onto BANDS positions. Recorded in the checkpoint.",
    "VALIDATION": "Background rasters held out to pick the best epoch (never test scenes); default: the last "
                  "background raster, or fixed patches of the training scenes when there are fewer than three.",
    "BACKBONE_WEIGHTS": "'imagenet' (torchvision's file, downloaded once), a local .pth, 'partial:FILE' (stages "
                        "missing from FILE stay random) or 'random'.",
    "TRUNK": "Frozen encoder trunk: wide_resnet101_2 (the paper) or wide_resnet50_2 (same layer1, lighter).",
}


def add_file_destination(alg, param):
    """A file destination whose output is a plain file (QgsProcessingOutputFile), whatever its filter says: QGIS
    makes an HTML output of any file destination whose filter mentions "htm" (QgsProcessingParameterFileDestination
    .toOutputDefinition), and the Processing dialog then ends with "HTML output has been generated by this
    algorithm. Open the results dialog to check it." — for a PNG as much as for a page."""
    from qgis.core import QgsProcessingOutputFile

    alg.addParameter(param, False)
    alg.addOutput(QgsProcessingOutputFile(param.name(), param.description()))
    return param



def is_temporary_output(value) -> bool:
    """Whether a destination parameter's value asks for a temporary output (the dialog's default), or none."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        value = value.staticValue()
    return value is None or value == "" or value == QgsProcessing.TEMPORARY_OUTPUT

class EngineFeedback:
    """Adapts QgsProcessingFeedback to the engine's Feedback protocol (see fers.feedback)."""

    def __new__(cls, qgis_feedback):
        from fers.feedback import Feedback

        class _Adapter(Feedback):
            def __init__(self, fb):
                self.fb = fb
                self.warnings = []

            def progress(self, fraction, message=""):
                if self.fb is not None:
                    self.fb.setProgress(100.0 * fraction)
                    if message:
                        self.fb.setProgressText(message)

            def info(self, message):
                if self.fb is not None:
                    self.fb.pushInfo(message)

            def warn(self, message):
                self.warnings.append(message)
                if self.fb is not None:
                    push = getattr(self.fb, "pushWarning", None)
                    if push is not None:
                        push(message)
                    else:
                        self.fb.reportError("warning: " + message, False)

            def cancelled(self):
                return self.fb is not None and self.fb.isCanceled()

        return _Adapter(qgis_feedback)


def research_path(parameters, name):
    """The value of a raster parameter when it is a research file's path (.mat / .npy), which QGIS cannot load
    as a layer and the engine reads itself; else None."""
    raw = parameters.get(name)
    return raw if isinstance(raw, str) and raw.lower().endswith((".mat", ".npy")) else None


class FersAlgorithm(QgsProcessingAlgorithm):
    """Subclasses define NAME, DISPLAY, GROUP, HELP, initAlgorithm and run_engine() (not run(): that is QgsProcessingAlgorithm.run, which the Processing dialog calls)."""

    NAME = DISPLAY = HELP = ""
    GROUP = "Anomaly detection"

    def __init_subclass__(cls, **kw):
        """Every algorithm's initAlgorithm ends with the advanced ALLOW_NETWORK parameter (``add_network``), so
        that no algorithm reads a remote layer without it."""
        super().__init_subclass__(**kw)
        own = cls.__dict__.get("initAlgorithm")
        if own is not None:
            def init(self, config=None, _own=own):
                _own(self, config)
                self.add_network()
            cls.initAlgorithm = init

    def add_network(self):
        from qgis.core import QgsProcessingParameterBoolean

        if self.parameterDefinition("ALLOW_NETWORK") is None:
            p = QgsProcessingParameterBoolean("ALLOW_NETWORK", "Read inputs over the network", defaultValue=False,
                                              optional=True)  # optional: models saved without it stay valid
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)

    def network_allowed(self, parameters) -> bool:
        v = parameters.get("ALLOW_NETWORK", False)
        return v is True or str(v).strip().lower() in ("1", "true", "yes")

    def unsafe_input(self, parameters):
        """The first input named by a path that is on the network (unless ALLOW_NETWORK), a FIFO or a device: QGIS
        loads a raster parameter itself, before the engine runs, and would fetch it, or block on it for ever."""
        ensure_engine_on_path()
        try:
            from fers.errors import FersError
            from fers.io.guard import allow_network, check_input
        except ImportError:
            return None  # processAlgorithm says what is missing
        for d in self.parameterDefinitions():
            if d.isDestination():
                continue
            values = parameters.get(d.name())
            for v in values if isinstance(values, (list, tuple)) else [values]:
                if isinstance(v, str) and (os.sep in v or "://" in v):
                    try:
                        with allow_network(self.network_allowed(parameters)):
                            check_input(v, d.name(), folder_ok=True)
                    except FersError as e:
                        return str(e)
        return None
    PARAM_HELP = {}  # parameter name → help text (setHelp), for parameters created without one

    def name(self):
        return self.NAME

    def displayName(self):  # noqa: N802
        return self.DISPLAY

    def group(self):
        return self.GROUP

    def groupId(self):  # noqa: N802
        return self.GROUP.lower().replace(" ", "_")

    def shortHelpString(self):  # noqa: N802
        return self.HELP

    def icon(self):
        return icon()

    def createInstance(self):  # noqa: N802
        return type(self)()

    def flags(self):
        # the engine uses torch threads; keep Processing from running it on the GUI thread only when safe
        return super().flags()

    def addParameter(self, definition, createOutput=True):  # noqa: N802 (QGIS API name)
        """Every parameter gets a help string: its own, else the algorithm's PARAM_HELP, else COMMON_HELP."""
        if not definition.help():
            text = self.PARAM_HELP.get(definition.name()) or COMMON_HELP.get(definition.name())
            if text:
                definition.setHelp(text)
        return super().addParameter(definition, createOutput)

    # raster parameters that also take a research file's path (.mat / .npy): QGIS cannot load those as layers
    RESEARCH_INPUTS = ("INPUT",)

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API name)
        """QGIS checks a raster parameter by loading it as a layer, which a .mat or .npy file is not (3.22 then
        says "Could not load source layer"); such a path is checked here instead, the rest as QGIS would."""
        unsafe = self.unsafe_input(parameters)
        if unsafe:
            return False, unsafe
        research = [n for n in self.RESEARCH_INPUTS if research_path(parameters, n)]
        if not research:
            return super().checkParameterValues(parameters, context)
        for name in research:
            if not os.path.isfile(parameters[name]):
                return False, f"{name}: {parameters[name]} not found"
        rest = {k: v for k, v in parameters.items() if k not in research}
        for d in self.parameterDefinitions():
            if d.name() in research or d.isDestination():
                continue
            if not d.checkValueIsAcceptable(rest.get(d.name()), context):
                return False, f"Incorrect parameter value for {d.name()}"
        return True, ""

    def optional_double(self, parameters, name, context, default=None):
        """An optional number parameter, None when left empty (``default`` when absent from ``parameters``):
        for the parameters where empty means "automatic" or "not this rule", unlike 0."""
        value = parameters.get(name, default)
        return None if value is None or value == "" else self.parameterAsDouble(parameters, name, context)

    def add_enum(self, name, description, options, default, advanced=False, help_text=""):
        p = QgsProcessingParameterEnum(name, description, options=list(options), allowMultiple=False,
                                       defaultValue=default, optional=False, usesStaticStrings=True)
        if help_text:
            p.setHelp(help_text)
        if advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(p)
        return p

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        load_engine()
        from fers.errors import FersError

        import fers

        feedback.pushInfo(f"FERS engine {fers.__version__} ({os.path.dirname(os.path.abspath(fers.__file__))})")
        log_device(self, parameters, context, feedback)
        t0 = time.perf_counter()
        from fers.io.guard import allow_network

        try:
            existing = self.existing_outputs(parameters, context)
            with allow_network(self.network_allowed(parameters)):
                out = self.run_engine(parameters, context, EngineFeedback(feedback))
            for name, path in existing:
                # QGIS's convention: an existing output file is overwritten; said here, once per file (the
                # engine refuses before any work when that file is one of the inputs)
                feedback.pushInfo(f"{name}: replaced the existing file {path} (Processing overwrites outputs)")
            feedback.pushInfo(f"{self.displayName()}: {time.perf_counter() - t0:.2f} s")
            return out
        except FersError as e:
            raise QgsProcessingException(str(e))
        except MemoryError:
            raise QgsProcessingException("out of memory: use fewer bands, a smaller extent or a smaller tile size")
        except QgsProcessingException:
            raise
        except Exception as e:  # a bug of ours: one clear line; FERS_DEBUG=1 lets the traceback through
            from fers.errors import DISK_FULL, disk_full_message, one_line

            if os.environ.get("FERS_DEBUG"):
                raise
            if isinstance(e, OSError) and e.errno in DISK_FULL:
                raise QgsProcessingException(disk_full_message(e))
            raise QgsProcessingException(f"internal error in FERS ({one_line(f'{type(e).__name__}: {e}')}); no output "
                                         "was written. Please report it with the log of this run (FERS_DEBUG=1 adds "
                                         "the traceback)")

    def existing_outputs(self, parameters, context):
        """[(parameter name, path)] of the output files that exist before the run (QGIS overwrites them)."""
        found = []
        for d in self.destinationParameterDefinitions():
            name, kind = d.name(), d.type()
            if is_temporary_output(parameters.get(name, d.defaultValue())):
                # a new file by definition; and asking QGIS for its path draws a new temporary name each time and
                # queues that name for loading, so the dialog then said "The following layers were not correctly
                # generated" about a file no run was ever asked to write
                continue
            if kind in ("rasterDestination", "vectorDestination"):
                path = self.parameterAsOutputLayer(parameters, name, context)
            elif kind == "fileDestination":
                path = self.parameterAsFileOutput(parameters, name, context)
            else:  # a folder: its files are the run's own (fers:benchmark's results.*)
                continue
            if path and os.path.isfile(path):
                found.append((name, path))
        return found

    def run_engine(self, parameters, context, feedback):
        raise NotImplementedError
