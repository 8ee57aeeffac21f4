"""Write-then-rename: an output appears complete or not at all.

Every file the engine writes (maps, ROC curves, checkpoints) goes through here,
so an error, a cancel or a crash never leaves a half-written file that QGIS or a
later run would take for a result.
"""
import contextlib
import os
import tempfile


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ".partial"):
    """Yield a hidden temporary path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
