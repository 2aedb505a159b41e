"""How the console writes numbers: units that fit a cell, the simulated clock, sparklines."""

import math
import time
from collections.abc import Sequence

DASH = "—"
SPARKS = "▁▂▃▄▅▆▇█"
_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def count(value: float) -> str:
    """`999`, `12.3k`, `4.56M`: three significant figures at most."""
    if not math.isfinite(value):
        return DASH
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.3g}{prefix}"
    return f"{value:.3g}" if value != int(value) else f"{int(value)}"


def watts(value: float) -> str:
    """`850 W`, `19.2 kW`, `1.21 MW`."""
    if not math.isfinite(value):
        return DASH
    for scale, prefix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}W"
    return f"{value:.0f} W"


def seconds(value: float) -> str:
    """A latency: `15 ms`, `0.39 s`, `12 s`; a dash for none."""
    if not math.isfinite(value) or value <= 0:
        return DASH
    if value < 1.0:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s"


def percent(fraction: float) -> str:
    """A 0..1 fraction as `97%` (`99.9%` near the top, where it matters)."""
    if not math.isfinite(fraction):
        return DASH
    value = fraction * 100
    return f"{value:.1f}%" if 99 < value < 100 else f"{value:.0f}%"


def sim_clock(unix_s: float) -> str:
    """The simulated time, in UTC: `2026-11-25 14:03:21`."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix_s))


def clock_of_day(unix_s: float) -> str:
    """`14:03:21` UTC."""
    return time.strftime("%H:%M:%S", time.gmtime(unix_s))


def sparkline(values: Sequence[float], low: float, high: float, width: int) -> str:
    """The last `width` values as block characters between `low` and `high`; a gap for a NaN
    (no reading)."""
    span = high - low if high > low else 1.0
    out = []
    for value in list(values)[-width:]:
        if math.isnan(value):
            out.append(" ")
            continue
        level = (value - low) / span if math.isfinite(value) else 0.0
        out.append(SPARKS[min(len(SPARKS) - 1, max(0, int(level * len(SPARKS))))])
    return "".join(out).rjust(width)
