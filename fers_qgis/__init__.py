"""QGIS plugin entry point. Nothing heavy is imported here: QGIS must load the plugin
even when the engine's dependencies (torch) are missing, and say so per algorithm."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    from .plugin import FersPlugin

    return FersPlugin(iface)
