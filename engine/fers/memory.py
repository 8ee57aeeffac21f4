"""Will a job fit in memory? Checked before a raster is read, so that a scene too large for the machine
gets a clear error instead of the kernel's OOM killer, which on Linux ends the whole process: in the
desktop, QGIS itself, with the analyst's unsaved project.

Peak memory is estimated from the cube's size with the factors measured by ``make bench-speed``
(2048×2048×200, fusion B: peak RSS 2.6× the float32 cube; RX alone 1.5×), rounded up, plus torch and
the networks. Available memory is the kernel's MemAvailable plus free swap, capped by the cgroup limit
of a container and by ``FERS_MEMORY_LIMIT_MB`` (an analyst's or an administrator's cap on a shared
machine). Where none of these can be read (not Linux), nothing is checked.
"""
from __future__ import annotations

import os
from typing import Optional

from .errors import InputError

GB = 1024 ** 3
# peak bytes ≈ factor × cube bytes + base (see the module docstring)
PEAK = {"networks": (3.0, 1.0 * GB), "rx": (1.6, 0.3 * GB), "enhance": (3.0, 1.0 * GB)}


def _meminfo() -> Optional[float]:
    try:
        with open("/proc/meminfo") as f:
            kb = {line.split(":")[0]: float(line.split()[1]) for line in f if len(line.split()) >= 2}
    except (OSError, ValueError):
        return None
    if "MemAvailable" not in kb:
        return None
    return (kb["MemAvailable"] + kb.get("SwapFree", 0.0)) * 1024


def _cgroup() -> Optional[float]:
    """The cgroup v2 limit left: memory.current counts the page cache, which the kernel gives back under
    pressure, so the file pages are left out of what is used (else a container that has read a lot of files
    would look full)."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            used = float(f.read().strip())
        with open("/sys/fs/cgroup/memory.stat") as f:
            stat = {line.split()[0]: float(line.split()[1]) for line in f if len(line.split()) == 2}
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, float(limit) - (used - stat.get("file", 0.0)))


def limit_mb() -> Optional[float]:
    """FERS_MEMORY_LIMIT_MB as a number (None when unset). Anything but a finite positive number is refused:
    NaN would compare False with every need and switch the cap off, infinity would mean none, 0 or less
    nothing at all. Engine functions call it at their start, before any output is opened."""
    cap = os.environ.get("FERS_MEMORY_LIMIT_MB")
    if cap is None or not cap.strip():
        return None
    shown = cap.strip()[:40].encode("ascii", "backslashreplace").decode()
    try:
        mb = float(cap)
    except ValueError:
        raise InputError(f"FERS_MEMORY_LIMIT_MB must be a number of megabytes, got '{shown}'") from None
    if not (mb > 0 and mb < float("inf")):
        raise InputError(f"FERS_MEMORY_LIMIT_MB must be a finite positive number of megabytes, got '{shown}'")
    return mb


def available_bytes() -> tuple:
    """(bytes this process may still use or None when unknown, what limits it)."""
    found = [(v, why) for v, why in ((_meminfo(), "available memory and free swap"),
                                     (_cgroup(), "the container's memory limit")) if v is not None]
    cap = limit_mb()
    if cap is not None:
        found.append((cap * 1024 ** 2, "FERS_MEMORY_LIMIT_MB"))
    return min(found, key=lambda t: t[0]) if found else (None, "")


def check_fits(bands: int, height: int, width: int, job: str, feedback=None, extra_bytes: float = 0.0) -> None:
    """Refuse a job whose estimated peak exceeds what is available; warn above 60 % of it. ``extra_bytes``:
    what the detector holds beyond the job's cube multiples (the dual-window RX's per-column B×B sums)."""
    factor, base = PEAK[job]
    need = factor * 4.0 * bands * height * width + base + extra_bytes
    avail, why = available_bytes()
    if avail is None:
        return
    size = f"{width}×{height} px × {bands} bands"
    if need > avail:
        rx_factor, rx_base = PEAK["rx"]
        rx_need = rx_factor * 4.0 * bands * height * width + rx_base
        # the networks are the default in QGIS (STRATEGY=auto): say what plain RX would take instead
        rx = (f", or plain RX (strategy none, about {rx_need / GB:.1f} GB)" if job == "networks" and rx_need <= avail
              else "")
        raise InputError(f"{size} needs about {need / GB:.1f} GB of memory, but {avail / GB:.1f} GB are left "
                         f"({why}): work on an area of the raster (EXTENT / --extent), use fewer bands{rx}, or free "
                         "memory; nothing was read")
    if feedback is not None and need > 0.6 * avail:
        feedback.warn(f"{size} will use about {need / GB:.1f} of the {avail / GB:.1f} GB left ({why})")


def check_bytes(need: float, what: str, advice: str) -> None:
    """Refuse work that would allocate ``need`` bytes when less is left: ``what`` says what would take them (a
    file's decoded variables, a score map's ranks), ``advice`` what to do instead."""
    avail, why = available_bytes()
    if avail is not None and need > avail:
        raise InputError(f"{what} needs about {need / GB:.1f} GB of memory, but {avail / GB:.1f} GB are left "
                         f"({why}): {advice}")
