"""One duration syntax for every option (``--timeout``, ``--since``, ``--older-than``), and ages.

A duration is whole numbers with units, largest first: ``90s``, ``5m``, ``1h30m``, ``2d``, ``1w``
(``w`` week, ``d`` day, ``h`` hour, ``m`` minute, ``s`` second); a bare number is seconds (``120``,
``0.5``). An age is how kubectl prints one (``apimachinery``'s ``HumanDuration``): ``45s``,
``5m30s``, ``3h``, ``2d``, ``1y30d``. Standard library only: options are checked before anything
heavy is imported.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile("".join(rf"(?:(?P<{u}>\d+){u})?" for u in UNITS))
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
SYNTAX = "a duration like 90s, 5m, 1h30m, 2d or 1w"


class DurationError(ValueError):
    """Not a duration in the one syntax; the message says what is."""


def parse_duration(text: str) -> timedelta:
    """``1h30m`` as a timedelta; DurationError for anything else (units out of order included)."""
    value = text.strip().lower()
    if _SECONDS.fullmatch(value):
        return timedelta(seconds=float(value))
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        raise DurationError(f"{text!r} is not {SYNTAX}")
    return timedelta(seconds=sum(int(n) * UNITS[u] for u, n in match.groupdict().items() if n))


def format_duration(seconds: float) -> str:
    """Whole seconds in the same syntax, exact and shortest: ``5400`` → ``1h30m``; ``0`` → ``0s``."""
    left, parts = round(seconds), []
    for unit, size in UNITS.items():
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def format_age(age: timedelta) -> str:
    """kubectl's age: two units while they matter (``5m30s``, ``7h20m``, ``3d4h``), one after."""
    seconds = int(age.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m" if seconds % 60 == 0 else f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // (24 * 365), hours // 24 % 365
    if years < 8:
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{years}y"
