"""RFC 3339 times, parsed in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_rfc3339(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``Z`` or an offset; none means UTC) as an aware datetime in UTC; None
    for an absent, empty or malformed value, and for a valid one outside what a UTC datetime (and
    so a protobuf Timestamp) can hold, such as ``0001-01-01T00:00:00+01:00`` (year 0 in UTC). A
    ``datetime`` is taken as it is (naive: UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif not isinstance(value, str) or not value.strip():
        return None
    else:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None
