"""Registers the Processing provider, and Plugins ▸ FERS: Install dependencies…, Copy diagnostics.

When the engine's packages are missing (a fresh QGIS has no torch), the plugin still loads, and once per session
offers the dependencies dialog when the desktop is ready (not under qgis_process, which has no GUI)."""
from qgis.core import QgsApplication

from . import deps

MENU = "&FERS"


class FersPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions = []
        self.dialog = None
        deps.activate()  # the managed folder, before anything imports the engine (fers_qgis/__init__ did too)

    def initProcessing(self):  # noqa: N802 (called by qgis_process and by initGui)
        from .provider import FersProvider

        if self.provider is None:
            self.provider = FersProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()
        deps.clean_staging()
        from qgis.PyQt.QtWidgets import QAction

        from .paths import icon

        for text, slot in (("Install dependencies…", self.show_dialog), ("Copy diagnostics", self.copy_diagnostics)):
            action = QAction(icon(), text, self.iface.mainWindow())
            action.setObjectName("fers_" + text.split()[0].lower())
            action.triggered.connect(slot)
            self.iface.addPluginToMenu(MENU, action)
            self.actions.append(action)
        # the offer waits for the main window: at initGui QGIS is still loading plugins and the project
        if getattr(self.iface, "initializationCompleted", None) is not None and not _desktop_ready(self.iface):
            self.iface.initializationCompleted.connect(self.offer)
        else:
            from qgis.PyQt.QtCore import QTimer

            QTimer.singleShot(0, self.offer)

    def offer(self):
        """Show the dialog once per session, when something the engine needs is missing, unless the analyst said not
        to or an install already failed this session (no loop: the menu still opens it)."""
        from qgis.core import QgsSettings

        if deps.SESSION["offered"] or deps.SESSION["failed"]:
            return
        if str(QgsSettings().value("fers/deps/offer_at_startup", True)).lower() in ("false", "0"):
            return
        if not deps.blocking(deps.check()):  # no import: QGIS's start is not slowed by torch
            return
        deps.SESSION["offered"] = True
        self.show_dialog(startup=True)

    def show_dialog(self, checked=False, startup=False):
        from .deps_dialog import DepsDialog

        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.raise_()
            return
        self.dialog = DepsDialog(self.iface.mainWindow(), startup=startup)
        self.dialog.show()

    def copy_diagnostics(self):
        from qgis.core import Qgis

        from .deps_dialog import copy_diagnostics

        copy_diagnostics()
        self.iface.messageBar().pushMessage("FERS", "Diagnostics copied to the clipboard.", Qgis.MessageLevel.Info, 5)

    def unload(self):
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
        self.actions = []
        if self.dialog is not None:
            self.dialog.close()
            self.dialog = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None


def _desktop_ready(iface):
    """True when QGIS has finished starting (the plugin was enabled later, from the Plugin Manager)."""
    window = iface.mainWindow()
    return window is None or window.isVisible()
