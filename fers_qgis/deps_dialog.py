"""Plugins ▸ FERS ▸ Install dependencies…: what the engine lacks, the routes to it, and pip run from QGIS.

The logic (what is missing, the pip commands, the managed folder, the log, failures) is fers_qgis/deps.py; this
is its face. pip runs in a worker thread (deps.run_install), its output streamed into the dialog.
"""
import sys
import time

from qgis.PyQt.QtCore import QObject, Qt, QThread, QTimer, pyqtSignal  # fully scoped enums: Qt 6 ready
from qgis.PyQt.QtGui import QFont, QGuiApplication
from qgis.PyQt.QtWidgets import (QAbstractItemView, QCheckBox, QDialog, QGroupBox, QHBoxLayout, QLabel,
                                 QPlainTextEdit, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem,
                                 QVBoxLayout)

from . import deps

STATE_TEXT = {"ok": "ok", "missing": "missing", "old": "too old", "broken": "does not load"}


class _Worker(QObject):
    line = pyqtSignal(str)
    finished = pyqtSignal(object)

    def __init__(self, found, cuda):
        super().__init__()
        self.found, self.cuda, self.cancel_requested = found, cuda, False

    def run(self):
        try:
            result = deps.run_install(self.found, cuda=self.cuda, on_output=self.line.emit,
                                      cancelled=lambda: self.cancel_requested)
        except Exception as e:  # a bug of ours must still end the run in the dialog
            result = deps.Result(False, False, f"internal error: {type(e).__name__}: {e}", "internal",
                                 deps.managed_dir(), deps.log_path(), False)
        self.finished.emit(result)


def copy_diagnostics(parent=None):
    text = deps.diagnostics_text()
    QGuiApplication.clipboard().setText(text)
    return text


class DepsDialog(QDialog):
    """One dialog: the packages and their state, the distribution's route where there is one, the pip route (CPU
    build by default, CUDA on request where nvidia-smi shows a GPU), the install's output, Cancel, diagnostics."""

    def __init__(self, parent=None, startup=False):
        super().__init__(parent)
        self.setWindowTitle("FERS — install dependencies")
        self.setObjectName("FersDepsDialog")
        self.resize(820, 640)
        self.thread = self.worker = None
        self.result = None
        self.started = None
        self.found = deps.check(import_modules=True)
        self.gpu = deps.nvidia_gpu()
        self.route = deps.os_packages_route(self.found)

        lay = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.summary)

        self.table = QTableWidget(len(self.found), 4)
        self.table.setHorizontalHeaderLabels(["package", "found", "needs", "state"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setMaximumHeight(150)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table)

        if self.route:
            box = QGroupBox("Your distribution packages them (recommended on Debian/Ubuntu)")
            b = QVBoxLayout(box)
            text = QLabel(f"In a terminal: <code>{self.route[0]}</code>, then restart QGIS."
                          + (f"<br><small>{self.route[1]}</small>" if self.route[1] else ""))
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            text.setWordWrap(True)
            b.addWidget(text)
            lay.addWidget(box)

        pipbox = QGroupBox("Or install them for this QGIS with pip" if self.route else "Install them for this QGIS")
        p = QVBoxLayout(pipbox)
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        p.addWidget(self.where)
        self.cuda = QCheckBox()
        if self.gpu and not deps.cuda_index(self.gpu[1]):
            self.cuda.setText(f"CUDA build of torch: the driver of {self.gpu[0]} (CUDA {self.gpu[1]}) is older than "
                              "every CUDA build PyTorch publishes; update it to use the GPU")
            self.gpu = None
        elif self.gpu:
            self.cuda.setText(f"CUDA build of torch for {self.gpu[0]} (about {deps.SIZE_CUDA_MB / 1000:.0f} GB to "
                              f"download, instead of {deps.SIZE_CPU_MB} MB for the CPU build)")
        else:
            self.cuda.setText("CUDA build of torch (no NVIDIA GPU found by nvidia-smi: the CPU build is the one "
                              "that runs here)")
            self.cuda.setEnabled(False)
        self.cuda.toggled.connect(self.refresh)
        p.addWidget(self.cuda)
        lay.addWidget(pipbox)

        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        lay.addWidget(self.progress)
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setMaximumBlockCount(5000)
        font = QFont("monospace")
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        self.output.setFont(font)
        lay.addWidget(self.output, 1)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)

        self.dont_offer = QCheckBox("Do not offer this when QGIS starts (Plugins ▸ FERS ▸ Install dependencies… "
                                    "still opens it)")
        self.dont_offer.setVisible(startup)
        lay.addWidget(self.dont_offer)

        buttons = QHBoxLayout()
        self.diag_button = QPushButton("Copy diagnostics")
        self.diag_button.clicked.connect(self.copy_diagnostics)
        self.commands_button = QPushButton("Copy commands")
        self.commands_button.clicked.connect(self.copy_commands)
        self.install_button = QPushButton("Install")
        self.install_button.setObjectName("install")
        self.install_button.setDefault(True)
        self.install_button.clicked.connect(self.install)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        for w in (self.diag_button, self.commands_button):
            buttons.addWidget(w)
        buttons.addStretch(1)
        for w in (self.install_button, self.cancel_button, self.close_button):
            buttons.addWidget(w)
        lay.addLayout(buttons)

        self.timer = QTimer(self)
        self.timer.setInterval(500)
        self.timer.timeout.connect(self.tick)
        self.refresh()

    # ------------------------------------------------------------------ state
    def refresh(self):
        for row, f in enumerate(self.found):
            for col, text in enumerate((f.req.dist, f.version or "—", f">= {f.req.minimum}"
                                        + ("" if f.req.required else " (optional)"), STATE_TEXT[f.state]
                                        + (f": {f.error}" if f.error else ""))):
                self.table.setItem(row, col, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        wanted = deps.to_install(self.found)
        bad = deps.blocking(self.found)
        py = f"QGIS's Python {sys.version.split()[0]}"
        if bad:
            self.summary.setText(f"<b>FERS needs packages that {py} does not have:</b> "
                                 + "; ".join(deps.describe(f) for f in bad) + ". The plugin is loaded; its "
                                 "algorithms run once these are installed.")
        elif wanted:
            self.summary.setText("FERS can run. Optional: " + "; ".join(deps.describe(f) for f in wanted) + ".")
        else:
            self.summary.setText(f"<b>Everything FERS needs is there</b> ({py}).")
        steps = deps.plan(self.found, deps.managed_dir(), cuda=self.cuda.isChecked())
        size = deps.SIZE_CUDA_MB if self.cuda.isChecked() else deps.SIZE_CPU_MB
        disk = deps.DISK_CUDA_GB if self.cuda.isChecked() else deps.DISK_CPU_GB
        numpy_old = next((f for f in self.found if f.req.module == "numpy" and f.state == "old"), None)
        notes = []
        if numpy_old:
            notes.append(f"numpy {numpy_old.version} belongs to QGIS (GDAL is built against it) and is not replaced: "
                         "update QGIS or your distribution's numpy.")
        if deps.gdal_missing():
            notes.append(deps.GDAL_ROUTE + ".")
        if steps:
            self.where.setText(
                f"pip, run by {py} ({deps.qgis_python()}), installs "
                + "; then ".join(s.title for s in steps)
                + (f" — about {size} MB to download, {disk} GB on disk" if any(
                    "torch" in s.packages for s in steps) else "")
                + f" — into <code>{deps.managed_dir()}</code>, a folder of this QGIS profile that FERS puts on "
                "Python's path. Nothing of QGIS's own installation is changed; delete that folder to undo."
                + ("<br>" + " ".join(notes) if notes else ""))
        else:
            self.where.setText("Nothing to install with pip." + (" " + " ".join(notes) if notes else ""))
        running = self.thread is not None
        self.install_button.setEnabled(bool(steps) and not running)
        self.commands_button.setEnabled(bool(steps) or bool(self.route))
        self.cuda.setEnabled(bool(self.gpu) and not running)

    def commands(self):
        return deps.manual_commands(self.found, cuda=self.cuda.isChecked())

    # ------------------------------------------------------------------ actions
    def copy_diagnostics(self):
        copy_diagnostics(self)
        self.status.setText("Diagnostics copied to the clipboard (paste them into a bug report).")

    def copy_commands(self):
        QGuiApplication.clipboard().setText("\n".join(self.commands()))
        self.status.setText("Commands copied to the clipboard.")

    def install(self):
        if self.thread is not None:
            return
        self.output.clear()
        self.status.setText("")
        self.progress.setRange(0, 0)  # pip tells no percentage without a terminal: busy until it ends
        self.started = time.time()
        self.step = "starting"
        self.timer.start()
        self.worker = _Worker(self.found, self.cuda.isChecked())
        self.thread = QThread(self)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.line.connect(self.append)
        self.worker.finished.connect(self.finish)
        self.install_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.close_button.setEnabled(False)
        self.cuda.setEnabled(False)
        self.thread.start()

    def append(self, line):
        self.output.appendPlainText(line)
        if line.startswith("---- step"):
            self.step = line.strip("- ")
            self.tick()

    def tick(self):
        # a busy bar shows no text: the step and the time go in the status line
        if self.started is not None and self.thread is not None:
            self.status.setText(f"pip is running — {self.step} — {time.time() - self.started:.0f} s "
                                "(Cancel stops it and installs nothing)")

    def cancel(self):
        if self.worker is not None:
            self.worker.cancel_requested = True
            self.cancel_button.setEnabled(False)
            self.status.setText("Stopping pip…")

    def finish(self, result):
        self.timer.stop()
        self.thread.quit()
        self.thread.wait()
        self.thread = self.worker = None
        self.result = result
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if result.ok else 0)
        elapsed = time.time() - self.started
        self.progress.setFormat(("done" if result.ok else "cancelled" if result.cancelled else "failed")
                                + f" after {elapsed:.0f} s")
        self.cancel_button.setEnabled(False)
        self.close_button.setEnabled(True)
        self.found = deps.check(import_modules=not result.restart)
        if result.ok:
            self.status.setText(f"<b>{result.message}</b>" + ("" if result.restart else
                                " Run FERS from the Processing Toolbox.") + f"<br>Log: {result.log}")
        elif result.cancelled:
            self.status.setText(f"{result.message} Log: {result.log}")
        else:
            commands = "<br>".join(f"<code>{c}</code>" for c in self.commands())
            self.status.setText(f"<b>{result.message}</b><br>By hand:<br>{commands}<br>Log: {result.log}")
        self.refresh()

    def closeEvent(self, event):  # noqa: N802
        if self.thread is not None:  # pip still running: Cancel first, so nothing half-installed stays
            self.cancel()
            event.ignore()
            return
        super().closeEvent(event)

    def reject(self):  # Esc
        if self.thread is not None:
            self.cancel()
            return
        super().reject()

    def hideEvent(self, event):  # noqa: N802
        if self.dont_offer.isVisible() and self.dont_offer.isChecked():
            from qgis.core import QgsSettings

            QgsSettings().setValue("fers/deps/offer_at_startup", False)
        super().hideEvent(event)
