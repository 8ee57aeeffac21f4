"""Where the plugin finds the engine and its resources, in a checkout and in the packaged ZIP.

In a checkout the plugin folder is ``<repo>/fers_qgis`` next to ``<repo>/engine`` and
``<repo>/resources``; in the ZIP built by ``make package`` both are copied inside the
plugin folder. The first that exists wins.
"""
import os
import sys

PLUGIN_DIR = os.path.dirname(os.path.realpath(__file__))


def _first(*candidates):
    for c in candidates:
        if os.path.exists(c):
            return c
    return candidates[0]


RESOURCES = _first(os.path.join(PLUGIN_DIR, "resources"), os.path.join(os.path.dirname(PLUGIN_DIR), "resources"))
ENGINE = _first(os.path.join(PLUGIN_DIR, "engine"), os.path.join(os.path.dirname(PLUGIN_DIR), "engine"))


def ensure_engine_on_path():
    """Make ``import fers`` work when the engine is not pip-installed in QGIS's Python."""
    try:
        import fers  # noqa: F401
    except ImportError:
        if os.path.isdir(os.path.join(ENGINE, "fers")) and ENGINE not in sys.path:
            sys.path.append(ENGINE)


def icon():
    from qgis.PyQt.QtGui import QIcon

    return QIcon(os.path.join(RESOURCES, "icons", "fers.svg"))


def models_dir():
    """Bundled models: $FERS_MODELS_DIR, else resources/models (the engine's fers.bundled agrees)."""
    return os.path.abspath(os.environ.get("FERS_MODELS_DIR") or os.path.join(RESOURCES, "models"))


def bundled_models():
    """[fers.bundled.BundledModel] without importing torch; [] if the engine cannot be found at all."""
    ensure_engine_on_path()
    try:
        from fers.bundled import list_models
    except ImportError:
        return []
    return list_models(models_dir())
