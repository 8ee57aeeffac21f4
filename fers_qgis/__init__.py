"""QGIS plugin entry point. Nothing heavy is imported here: QGIS must load the plugin even when the engine's
dependencies (torch) are missing; the plugin then offers to install them (deps_dialog.py) and each algorithm
says what is missing."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    from . import deps

    deps.activate()  # the packages the plugin installed for this profile, ahead of the engine's first import
    from .plugin import FersPlugin

    return FersPlugin(iface)
