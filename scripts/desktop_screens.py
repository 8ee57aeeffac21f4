"""Screenshots of the FERS dialogs in the real QGIS desktop (`make screens`), to check what an analyst sees.

Run by QGIS itself, after it has started with the plugin enabled:

    xvfb-run -a -s "-screen 0 1600x1000x24" qgis --nologo --noversioncheck --profiles-path PROFILE \\
        --code scripts/desktop_screens.py

with FERS_SCREENS (the folder for the PNGs), FERS_SAMPLE (the sample raster) and FERS_MODEL3 (the shipped
.model3) in the environment (the Makefile sets them). For each FERS algorithm: its dialog as Processing opens it
(`processing.createAlgorithmDialog`, default size), grabbed as `dialog-<alg>.png`; then fers:detect run from its
dialog with only the sample as INPUT (the log tab after the run, and the layer tree with the layer it loaded);
fers:evaluate run from its dialog with a ROC PNG (what the dialog says at the end); the shipped model's dialog; the
Processing toolbox with the FERS provider expanded. Then QGIS quits. Prints one line per PNG.
"""
import os
import sys
import tempfile
import traceback

from qgis.core import QgsApplication, QgsProcessingModelAlgorithm, QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QDockWidget, QTreeView
from qgis.utils import iface

OUT = os.environ.get("FERS_SCREENS") or tempfile.mkdtemp(prefix="fers-screens-")
SAMPLE = os.environ["FERS_SAMPLE"]
MODEL3 = os.environ.get("FERS_MODEL3", "")
os.makedirs(OUT, exist_ok=True)
STEPS = []


def pump(ms=300):
    """Let Qt lay out and paint (and finish background tasks) for about ``ms``."""
    import time

    end = time.time() + ms / 1000.0
    while time.time() < end:
        QgsApplication.processEvents()
        time.sleep(0.02)


def save(widget, name):
    path = os.path.join(OUT, name + ".png")
    widget.grab().save(path)
    print("screen:", path, flush=True)


def dialogs():
    import processing

    provider = QgsApplication.processingRegistry().providerById("fers")
    for alg in provider.algorithms():
        dlg = processing.createAlgorithmDialog(alg.id())
        dlg.show()
        pump()
        save(dlg, "dialog-" + alg.name())
        dlg.close()


def run_dialog(alg_id, params, name, wait_s=600):
    """Fill a dialog with ``params``, press Run, wait for the end, grab it (the log tab)."""
    import processing

    dlg = processing.createAlgorithmDialog(alg_id, params)
    dlg.show()
    pump()
    save(dlg, name + "-filled")
    done = []
    dlg.algorithmFinished.connect(lambda ok, res: done.append(ok))
    dlg.runAlgorithm()
    for _ in range(wait_s * 5):
        if done:
            break
        pump(200)
    pump(500)
    save(dlg, name + "-finished")
    print(f"{alg_id}: finished={done}", flush=True)
    return dlg


def detect_with_defaults():
    dlg = run_dialog("fers:detect", {"INPUT": SAMPLE}, "run-detect-defaults")
    dlg.close()
    names = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    print("layers:", names, flush=True)
    iface.mainWindow().resize(1400, 900)
    pump(1500)
    save(iface.mainWindow(), "desktop-after-detect")


def evaluate_with_png():
    score = next((lyr for lyr in QgsProject.instance().mapLayers().values() if "anomaly" in lyr.name()), None)
    if score is None:
        print("evaluate: no score layer to evaluate", flush=True)
        return
    gt = os.path.join(os.path.dirname(SAMPLE), "abu-airport-2_gt.tif")
    dlg = run_dialog("fers:evaluate", {"SCORE": score.source(), "GROUND_TRUTH": gt,
                                       "ROC": os.path.join(OUT, "roc.png")}, "run-evaluate-png")
    dlg.close()


def model_dialog():
    if not MODEL3:
        return
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    model = QgsProcessingModelAlgorithm()
    if not model.fromFile(MODEL3):
        print("could not read", MODEL3, flush=True)
        return
    model.setProvider(QgsApplication.processingRegistry().providerById("model"))
    dlg = AlgorithmDialog(model.create(), parent=iface.mainWindow())
    dlg.show()
    pump()
    save(dlg, "dialog-model3-detect_and_evaluate")
    dlg.close()


def toolbox():
    dock = iface.mainWindow().findChild(QDockWidget, "ProcessingToolbox")
    dock.setFloating(False)
    dock.show()
    dock.raise_()
    box = dock.widget() if dock.widget() is not None else dock
    tree = dock.findChild(QTreeView)
    model = tree.model()
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        if "FERS" in str(model.data(index)):
            tree.expand(index)
            for sub in range(model.rowCount(index)):
                tree.expand(model.index(sub, 0, index))
            tree.scrollTo(index, QTreeView.PositionAtTop)
    iface.mainWindow().resize(1400, 900)
    pump(800)
    save(box, "toolbox")
    save(iface.mainWindow(), "desktop-toolbox")


def main():
    for step in (dialogs, model_dialog, toolbox, detect_with_defaults, evaluate_with_png):
        try:
            step()
        except Exception:  # one broken step must not hide the others' screens
            traceback.print_exc()
            print(f"step {step.__name__} failed", flush=True)
    sys.stdout.flush()
    QgsApplication.exit(0)


QTimer.singleShot(2000, main)
