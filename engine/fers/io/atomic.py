"""Write-then-rename: an output appears complete or not at all.

Every file the engine writes (maps, ROC curves, checkpoints, resume files) goes through here, so an error,
a cancel, Ctrl-C, SIGTERM or SIGHUP never leaves a half-written file that QGIS or a later run would take
for a result. The temporary file is hidden beside the output (``.NAME.PID@HOST.RANDOM.partial.EXT``: the
extension kept, so GDAL's drivers still know the format) and carries the writer's process id and machine:
a run killed outright (SIGKILL, a crash, a power cut) cannot clean up, so the next run over the same output
removes what a dead run of this machine left, and never a live run's file.
"""
import contextlib
import glob
import os
import signal
import tempfile

from .paths import stale_temporaries, temp_prefix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(tmp: str) -> None:
    # with the side files a driver may have made beside it (GeoPackage journals, .aux.xml)
    for p in [tmp] + glob.glob(glob.escape(tmp) + "*"):
        with contextlib.suppress(OSError):
            os.remove(p)


def remove_stale(path: str) -> list:
    """Remove the temporary files dead runs left while writing ``path``; returns them."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    gone = stale_temporaries(folder, name)
    for p in gone:
        _remove(p)
    return gone


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ".partial"):
    """Yield a hidden temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    remove_stale(path)
    tmp = None
    # Ctrl-C, SIGTERM, SIGHUP are held off while the file is made and named, so that no signal lands between
    # its creation and the clean-up below being armed
    held = _hold_signals()
    try:
        try:
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(name), suffix=suffix, dir=folder)
            os.close(fd)
        finally:
            _release_signals(held)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            _remove(tmp)
        raise


_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def _hold_signals():
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)


def _release_signals(held) -> None:
    if held is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
