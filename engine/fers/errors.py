"""Errors an analyst can act on.

Every failure the engine anticipates is raised as a FersError subclass whose
message is complete on its own: the CLI prints it as one line, the plugin turns
it into a QgsProcessingException. Anything else reaching the top is a bug.
"""


class FersError(Exception):
    """Base class: the message is shown to the user verbatim."""


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
