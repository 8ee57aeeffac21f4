"""Errors an analyst can act on.

Every failure the engine anticipates is raised as a FersError subclass whose
message is complete on its own: the CLI prints it as one line, the plugin turns
it into a QgsProcessingException. Anything else reaching the top is a bug.

A message can carry text the engine does not control: file and variable names (a .mat variable name may hold
terminal escape sequences), GDAL's own text (multi-line since GDAL 3.10: '…\\nMay be caused by: …'). So every
message is folded to one bounded, printable line in one place, ``one_line``, which ``str()`` of every FersError
and the CLI's and the plugin's last-resort messages go through.
"""
import errno
import re

MAX_MESSAGE = 1000  # characters: a message is read, not scrolled (a 20-million-band list once built 190 MB of one)

# ANSI/VT escape sequences (CSI ... final byte, OSC ... BEL/ST, and two-byte ESC x), then any other control character
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def one_line(text, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one printable line of at most ``limit`` characters: escape sequences and control characters
    (bidirectional overrides too) removed, line breaks and runs of blanks folded to one space, the middle cut out
    of a longer text (its start says what failed, its end often why)."""
    text = _ESCAPES.sub("", str(text))
    text = " ".join(_CONTROL.sub(" ", text).split())
    if len(text) > limit:
        keep = limit - 5
        text = text[:keep * 2 // 3] + " […] " + text[-(keep - keep * 2 // 3):]
    return text


class FersError(Exception):
    """Base class: the message is shown to the user as one line (``one_line``)."""

    def __str__(self) -> str:
        return one_line(super().__str__())


class InputError(FersError):
    """The input raster, band selection or ground truth cannot be used."""


class TooFewBandsError(InputError):
    """A first-N-bands selection asks for more bands than the raster has (training skips such scenes)."""


class ModelError(FersError):
    """A model/checkpoint is missing, corrupt, unsafe or does not fit the input."""


class OutputError(FersError):
    """The output cannot be written where asked."""


class DeviceError(FersError):
    """The requested compute device is not available."""


class Cancelled(FersError):
    """The user cancelled; nothing partial was left behind."""

    def __init__(self, message: str = "cancelled by the user; no output was written"):
        super().__init__(message)


# errors that mean "the output's disk is full" (a quota, or a file-size limit, reads the same to the analyst)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full_message(e: OSError = None, path: str = "") -> str:
    where = path or (getattr(e, "filename", None) or "")
    return one_line(f"no space left on the disk{f' of {where}' if where else ''} "
                    f"({getattr(e, 'strerror', None) or 'disk full'}): free space or write elsewhere; "
                    "no output was written")


def is_disk_full(text: str) -> bool:
    """GDAL's text for a write that ran out of space (its errors carry no errno)."""
    t = str(text).lower()
    return any(k in t for k in ("no space left", "disk full", "file too large", "quota exceeded", "enospc"))
