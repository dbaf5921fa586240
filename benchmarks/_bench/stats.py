"""Small numeric helpers: percentiles, steady-state slope, lag matching."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t, y)."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mt) * (y - my) for t, y in points) / var


def steady_rate(
    points: Sequence[tuple[float, float]], total: float, lo: float = 0.1, hi: float = 0.9
) -> float | None:
    """Slope of a cumulative count between ``lo`` and ``hi`` of ``total`` (ramp-up and tail cut)."""
    window = [(t, y) for t, y in points if lo * total <= y <= hi * total]
    return slope(window)


def rate_from_times(times: Sequence[float], lo: float = 0.1, hi: float = 0.9) -> float | None:
    """Steady rate of events with the given arrival times: (count between the lo and hi quantiles) /
    (time between them)."""
    if len(times) < 10:
        return None
    s = sorted(times)
    i, j = int(lo * (len(s) - 1)), int(hi * (len(s) - 1))
    return (j - i) / (s[j] - s[i]) if s[j] > s[i] else None


def first_at_or_after(sorted_times: Sequence[float], t: float, slack: float = 0.0) -> float | None:
    i = bisect.bisect_left(sorted_times, t - slack)
    return sorted_times[i] if i < len(sorted_times) else None


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "min": min(values) if values else None,
    }
