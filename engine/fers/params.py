"""Numbers a run is given, checked before anything is read or written.

Every engine function (what the CLI and the Processing algorithms both call) checks its numeric parameters
here at its start, so a bad value is one line and exit 2 before the first byte of any output, never a map
left behind by a check that came after it, and never a NaN or an infinity taken silently (``nan < 16`` is
False: a NaN passes every ordinary comparison unnoticed).
"""
from __future__ import annotations

import math
from typing import Optional

from .errors import InputError


def _show(value) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError, OverflowError):
        return repr(value)[:40]


def number(value, what: str, lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False,
           hi_open: bool = False, integer: bool = False):
    """``value`` as a finite float (or int with ``integer``) within [lo, hi] (ends open as asked), else an
    InputError naming ``what``."""
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{what} must be a number, got {_show(value)}") from None
    if not math.isfinite(x):
        raise InputError(f"{what} must be a finite number, got {_show(value)}")
    if integer and x != int(x):
        raise InputError(f"{what} must be a whole number, got {_show(value)}")
    below = lo is not None and (x <= lo if lo_open else x < lo)
    above = hi is not None and (x >= hi if hi_open else x > hi)
    if below or above:
        left = "" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
        right = "" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
        span = (f"in {left}, {right}" if lo is not None and hi is not None else
                f"{'more than' if lo_open else 'at least'} {lo:g}" if lo is not None else
                f"{'less than' if hi_open else 'at most'} {hi:g}")
        raise InputError(f"{what} must be {span}, got {_show(value)}")
    return int(x) if integer else x


def extent(value, what: str = "the extent (EXTENT / --extent)") -> Optional[tuple]:
    """(xmin, ymin, xmax, ymax) as four finite floats, low before high; None passes."""
    if value is None:
        return None
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{what} is four numbers xmin ymin xmax ymax, got {str(value)[:80]}") from None
    if len(vals) != 4:
        raise InputError(f"{what} is four numbers xmin ymin xmax ymax, got {len(vals)}")
    if not all(math.isfinite(v) for v in vals):
        raise InputError(f"{what} must be four finite numbers, got {', '.join(f'{v:g}' for v in vals)}")
    xmin, ymin, xmax, ymax = vals
    if not (xmax > xmin and ymax > ymin):
        raise InputError(f"the extent must run from low to high: got x {xmin:.10g} to {xmax:.10g}, "
                         f"y {ymin:.10g} to {ymax:.10g}")
    return xmin, ymin, xmax, ymax


def thresholds(percentile=None, false_alarm_rate=None, min_pixels=1) -> tuple:
    """The anomaly threshold's parameters (``fers.objects``): percentile in [0, 100), false-alarm rate in
    [0, 1), at most one of them, and a smallest object of at least 1 pixel."""
    if percentile is not None and false_alarm_rate is not None:
        raise InputError("give either a score percentile or a false-alarm rate as the threshold, not both")
    if percentile is not None:
        percentile = number(percentile, "the threshold percentile (THRESHOLD_PERCENTILE / --threshold-percentile)",
                            0.0, 100.0, hi_open=True)
    if false_alarm_rate is not None:
        false_alarm_rate = number(false_alarm_rate, "the false-alarm rate (FALSE_ALARM_RATE / --false-alarm-rate), "
                                  "a fraction of the valid pixels,", 0.0, 1.0, hi_open=True)
    min_pixels = number(min_pixels, "the minimum object size (MIN_PIXELS / --min-pixels), a pixel count,", 1,
                        integer=True)
    return percentile, false_alarm_rate, min_pixels
