"""RFC 3339 times, parsed in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_rfc3339(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``Z`` or an offset; none means UTC) as an aware datetime; None for an
    absent, empty or malformed value. A ``datetime`` is returned as it is, made aware."""
    if isinstance(value, datetime):
        parsed = value
    elif not isinstance(value, str) or not value.strip():
        return None
    else:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
