"""Registers the Processing provider; the plugin adds no GUI of its own beyond the Toolbox."""
from qgis.core import QgsApplication


class FersPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None

    def initProcessing(self):  # noqa: N802 (called by qgis_process and by initGui)
        from .provider import FersProvider

        if self.provider is None:
            self.provider = FersProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
