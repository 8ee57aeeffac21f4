"""Progress, messages and cancellation, decoupled from any UI.

The engine only talks to a Feedback; the CLI prints, the QGIS plugin adapts
QgsProcessingFeedback to it once (fers_qgis/algorithms/base.py).
"""
from __future__ import annotations

import sys
import time

from .errors import Cancelled, one_line

# a log line (file and variable names in it are the files', escape sequences and all): printable, bounded
LOG_LINE = 2000


class Feedback:
    """Silent feedback that never cancels. Subclass and override what you need."""

    def progress(self, fraction: float, message: str = "") -> None:  # fraction in [0, 1]
        pass

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False

    def check(self) -> None:
        """Raise Cancelled if the user asked to stop; call between units of work."""
        if self.cancelled():
            raise Cancelled()

    def sub(self, start: float, end: float) -> "Feedback":
        """A view on this feedback whose [0, 1] maps to [start, end] of ours."""
        return _SubFeedback(self, start, end)


class _SubFeedback(Feedback):
    def __init__(self, parent: Feedback, start: float, end: float):
        self.parent, self.start, self.end = parent, start, end

    def progress(self, fraction: float, message: str = "") -> None:
        f = min(max(fraction, 0.0), 1.0)
        self.parent.progress(self.start + (self.end - self.start) * f, message)

    def info(self, message: str) -> None:
        self.parent.info(message)

    def warn(self, message: str) -> None:
        self.parent.warn(message)

    def cancelled(self) -> bool:
        return self.parent.cancelled()


class ConsoleFeedback(Feedback):
    """Prints to stderr; progress at most every half second (or on completion)."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._last = 0.0
        self.warnings: list[str] = []

    def progress(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if self.quiet or (now - self._last < 0.5 and fraction < 1.0):
            return
        self._last = now
        self.stream.write(f"[{100 * fraction:5.1f}%] {message}\n")
        self.stream.flush()

    def info(self, message: str) -> None:
        if not self.quiet:
            self.stream.write(one_line(message, LOG_LINE) + "\n")
            self.stream.flush()

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.stream.write("warning: " + one_line(message, LOG_LINE) + "\n")
        self.stream.flush()


class RecordingFeedback(Feedback):
    """Keeps every message; used by tests and by callers that report later."""

    def __init__(self):
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.fractions: list[float] = []

    def progress(self, fraction: float, message: str = "") -> None:
        self.fractions.append(fraction)

    def info(self, message: str) -> None:
        self.infos.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
