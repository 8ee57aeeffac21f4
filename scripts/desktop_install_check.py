"""`make desktop-check`: the real QGIS desktop under Xvfb, a fresh profile, the plugin installed from the ZIP, QGIS's
Python without torch. The dependencies dialog must be offered at startup; Install is clicked, pip runs (on the
project's machines FERS_PIP_INDEX_URL=default and FERS_TORCH_SPEC=torch==2.13.0 point it at the local CPU wheel),
then fers:detect is opened in its Processing dialog with its defaults, run, and its styled layer loaded.
Screenshots of each step go to --out; the script exits non-zero when a step fails.

    python scripts/desktop_install_check.py --zip dist/fers_qgis-0.1.0.zip --out dist/screens-install
"""
import argparse
import configparser
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "resources", "sample", "abu-airport-2.tif")

# runs inside QGIS (qgis --code): drives the dialog and the algorithm from QGIS's event loop, never blocking it
INSIDE = r'''
import json, os, time, traceback
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtGui import QGuiApplication
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface, plugins

OUT = os.environ["FERS_CHECK_OUT"]
SAMPLE = os.environ["FERS_CHECK_SAMPLE"]
report = {"steps": [], "t0": time.time()}
state = {"phase": "wait_offer", "since": time.time(), "shots": 0, "alg": None}


def note(step, **kw):
    kw["step"], kw["t"] = step, round(time.time() - report["t0"], 1)
    report["steps"].append(kw)
    with open(os.path.join(OUT, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)


def shot(name, widget=None):
    QApplication.processEvents()
    screen = QGuiApplication.primaryScreen().grabWindow(0)
    screen.save(os.path.join(OUT, name + "-screen.png"))
    if widget is not None:
        widget.grab().save(os.path.join(OUT, name + ".png"))


def finish(ok):
    timer.stop()
    note("end", ok=ok)
    QgsProject.instance().setDirty(False)
    QTimer.singleShot(500, lambda: os._exit(0 if ok else 3))


def fers_dialog():
    for w in QApplication.topLevelWidgets():
        if w.objectName() == "FersDepsDialog" and w.isVisible():
            return w
    return None


def tick():
    try:
        step()
    except Exception:
        note("exception", error=traceback.format_exc())
        finish(False)


def step():
    phase, waited = state["phase"], time.time() - state["since"]

    def go(p):
        state["phase"], state["since"] = p, time.time()

    if phase == "wait_offer":
        dlg = fers_dialog()
        if dlg is None:
            if waited > 60:
                note("offer", ok=False, plugins=list(plugins))
                shot("01-no-offer")
                return finish(False)
            return
        iface.mainWindow().showMaximized()
        dlg.raise_()
        QApplication.processEvents()
        rows = [[dlg.table.item(r, c).text() for c in range(4)] for r in range(dlg.table.rowCount())]
        note("offer", ok=True, summary=dlg.summary.text(), table=rows, where=dlg.where.text(),
             cuda=dlg.cuda.text(), install_enabled=dlg.install_button.isEnabled())
        shot("01-offer", dlg)
        dlg.install_button.click()
        return go("installing")
    if phase == "installing":
        dlg = fers_dialog()
        if dlg.result is None:
            if state["shots"] == 0 and waited > 20:
                shot("02-installing", dlg)
                state["shots"] = 1
            if waited > 900:
                dlg.cancel()
                note("install", ok=False, error="timeout")
                return finish(False)
            return
        r = dlg.result
        note("install", ok=r.ok, message=r.message, kind=r.kind, seconds=round(waited), restart=r.restart,
             status=dlg.status.text(), log=r.log)
        shot("03-installed", dlg)
        if not r.ok:
            return finish(False)
        dlg.close()
        return go("menu")
    if phase == "menu":
        # Plugins ▸ FERS, opened as an analyst would see it, then its Copy diagnostics action
        from qgis.PyQt.QtCore import QPoint
        from qgis.PyQt.QtWidgets import QAction

        plugins_menu = iface.pluginMenu()
        fers = [a for a in plugins_menu.actions() if a.menu() is not None and "FERS" in a.text()]
        if fers:
            plugins_menu.popup(iface.mainWindow().mapToGlobal(QPoint(300, 30)))
            QApplication.processEvents()
            plugins_menu.setActiveAction(fers[0])
            fers[0].menu().popup(plugins_menu.mapToGlobal(plugins_menu.actionGeometry(fers[0]).topRight()))
            QApplication.processEvents()
            time.sleep(0.5)
            shot("03b-plugins-menu")
            fers[0].menu().hide()
            plugins_menu.hide()
        copy = [a for a in iface.mainWindow().findChildren(QAction) if a.objectName() == "fers_copy"]
        QApplication.clipboard().clear()
        if copy:
            copy[0].trigger()
        text = QApplication.clipboard().text()
        with open(os.path.join(OUT, "diagnostics.txt"), "w") as f:
            f.write(text)
        note("menu", ok=bool(fers) and bool(copy) and "torch: 2." in text,
             entries=[a.text() for a in fers[0].menu().actions()] if fers else [],
             diagnostics=text.splitlines()[:20])
        layer = QgsRasterLayer(SAMPLE, "abu-airport-2")
        QgsProject.instance().addMapLayer(layer)
        iface.mapCanvas().setExtent(layer.extent())
        import processing

        alg = processing.createAlgorithmDialog("fers:detect", {})  # the Toolbox's dialog, every parameter default
        alg.show()
        state["alg"] = alg
        return go("alg_open")
    if phase == "alg_open":
        if waited < 2:
            return
        alg = state["alg"]
        values = {k: str(v) for k, v in alg.getParameterValues().items()} if hasattr(alg, "getParameterValues") \
            else {}
        note("algorithm dialog", params=values)
        shot("04-detect-dialog", alg)
        state["layers_before"] = set(QgsProject.instance().mapLayers())
        alg.runButton().click()
        return go("running")
    if phase == "running":
        new = [l for i, l in QgsProject.instance().mapLayers().items() if i not in state["layers_before"]]
        if not new:
            if waited > 300:
                shot("05-detect-log", state["alg"])
                note("detect", ok=False, error="no layer after 300 s")
                return finish(False)
            return
        if waited < 3:  # let the post-processor style and rename it
            return
        alg = state["alg"]
        from qgis.PyQt.QtWidgets import QTextBrowser, QTextEdit

        logs = [w.toPlainText() for w in alg.findChildren(QTextEdit) + alg.findChildren(QTextBrowser)
                if "FERS engine" in w.toPlainText()]
        shot("05-detect-log", alg)
        layer = new[0]
        renderer = layer.renderer()
        note("detect", ok=True, layer=layer.name(), source=layer.source(),
             renderer=type(renderer).__name__ if renderer else None,
             ramp=getattr(getattr(renderer, "shader", lambda: None)(), "__class__", type(None)).__name__,
             log=logs[0][-3000:] if logs else "")
        alg.close()
        iface.setActiveLayer(layer)
        iface.mapCanvas().setExtent(layer.extent())
        iface.mapCanvas().refreshAllLayers()
        return go("map")
    if phase == "map":
        if waited < 4:
            return
        shot("06-map")
        iface.mainWindow().grab().save(os.path.join(OUT, "06-map.png"))
        return finish(True)


timer = QTimer()
timer.setInterval(500)
timer.timeout.connect(tick)
timer.start()
note("started", plugins=list(plugins))
'''


def clean_env(**extra):
    """A desktop session's environment: no venv, no PYTHONPATH, no user site; pip's own configuration stays."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
           and not k.startswith(("FERS_", "QGIS_"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra)
    return env


def install_from_zip(zip_path, profiles):
    """What QGIS's 'Install from ZIP' leaves: the plugin unpacked into the profile and enabled in QGIS3.ini."""
    plugins = os.path.join(profiles, "profiles", "default", "python", "plugins")
    os.makedirs(plugins)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(plugins)
    ini_dir = os.path.join(profiles, "profiles", "default", "QGIS")
    os.makedirs(ini_dir)
    cfg = configparser.RawConfigParser()
    cfg.optionxform = str
    cfg["PythonPlugins"] = {"fers_qgis": "true"}
    cfg["qgis"] = {"checkVersion": "false", "showTips": "false"}
    with open(os.path.join(ini_dir, "QGIS3.ini"), "w") as f:
        cfg.write(f)
    return plugins


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zip", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=int, default=1200)
    a = ap.parse_args()
    hidden = subprocess.run(["/usr/bin/python3", "-s", "-c", "import torch"], env=clean_env(), capture_output=True)
    if hidden.returncode == 0:
        print("torch is importable by the system's Python: nothing to install here", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="fers-desktop-")
    profiles = os.path.join(work, "qgis")
    install_from_zip(a.zip, profiles)
    out = os.path.abspath(a.out)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    script = os.path.join(work, "drive.py")
    with open(script, "w") as f:
        f.write(INSIDE)
    env = clean_env(FERS_CHECK_OUT=out, FERS_CHECK_SAMPLE=SAMPLE,
                    FERS_PIP_INDEX_URL=os.environ.get("FERS_PIP_INDEX_URL", "default"),
                    FERS_TORCH_SPEC=os.environ.get("FERS_TORCH_SPEC", "torch==2.13.0"),
                    XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}"))
    env.pop("QT_QPA_PLATFORM", None)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--nologo", "--noversioncheck",
           "--profiles-path", profiles, "--code", script]
    t0 = time.time()
    with open(os.path.join(out, "qgis.log"), "w") as log:
        try:
            code = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=a.timeout).returncode
        except subprocess.TimeoutExpired:
            code = 124
    report = json.load(open(os.path.join(out, "report.json"))) if os.path.exists(os.path.join(out, "report.json")) \
        else {"steps": []}
    for s in report["steps"]:
        print(json.dumps(s, default=str)[:600])
    ok = code == 0 and any(s["step"] == "end" and s.get("ok") for s in report["steps"])
    folder = os.path.join(profiles, "profiles", "default", "python", "fers-deps")
    print(f"QGIS exited {code} after {time.time() - t0:.0f} s; managed folder {folder}: "
          f"{sorted(os.listdir(folder)) if os.path.isdir(folder) else 'absent'}; screenshots in {out}")
    print("desktop check " + ("passed" if ok else "FAILED"))
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
