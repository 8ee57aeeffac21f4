"""What every FERS algorithm shares: engine loading, feedback adaptation, error translation."""
import os
import shutil
import sys

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterEnum,
                       QgsProcessingParameterDefinition)

from ..paths import ensure_engine_on_path, icon

ENGINE_PACKAGES = (("numpy", "numpy"), ("scipy", "scipy"), ("torch", "torch==2.13.0"), ("osgeo", "GDAL (python3-gdal)"))


def install_command(missing):
    py = sys.executable if os.path.basename(sys.executable).startswith("python") else (shutil.which("python3") or "python3")
    pip_names = " ".join(p for m, p in missing if m not in ("osgeo",))
    return f"{py} -m pip install --user --break-system-packages {pip_names}"


def load_engine():
    """Import the engine or explain, in one message, what is missing and how to install it."""
    ensure_engine_on_path()
    missing = []
    for module, package in ENGINE_PACKAGES:
        try:
            __import__(module)
        except ImportError:
            missing.append((module, package))
    if missing:
        names = ", ".join(p for _, p in missing)
        raise QgsProcessingException(
            f"FERS needs {names} in QGIS's Python ({sys.version.split()[0]}), which cannot import them. "
            f"Install with: {install_command(missing)} — or run `make setup` in the plugin checkout and "
            "start QGIS through .venv/bin/fers-qgis-process / with that venv on PYTHONPATH.")
    try:
        import fers  # noqa: F401
    except ImportError as e:
        raise QgsProcessingException(f"the FERS engine could not be imported: {e}")


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


class FersAlgorithm(QgsProcessingAlgorithm):
    """Subclasses define NAME, DISPLAY, GROUP, HELP, initAlgorithm and run()."""

    NAME = DISPLAY = HELP = ""
    GROUP = "Anomaly detection"

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

        try:
            return self.run(parameters, context, EngineFeedback(feedback))
        except FersError as e:
            raise QgsProcessingException(str(e))
        except MemoryError:
            raise QgsProcessingException("out of memory: use fewer bands, a smaller extent or a smaller tile size")

    def run(self, parameters, context, feedback):
        raise NotImplementedError
