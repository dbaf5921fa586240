"""RFC 3339 parsing: aware, in UTC, and None for what no time can hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskaction_operator.model.times import parse_rfc3339


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-23T10:00:00Z", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ("2026-11-23T11:00:00+01:00", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        ("2026-11-23T10:00:00", datetime(2026, 11, 23, 10, tzinfo=UTC)),  # no offset: UTC
        (datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), datetime(2026, 1, 1, tzinfo=UTC)),
        ("", None),
        (None, None),
        (12345, None),
        ("yesterday", None),
        # Valid RFC 3339, but year 0 in UTC: no datetime (nor protobuf Timestamp) can hold it.
        ("0001-01-01T00:00:00+01:00", None),
        ("9999-12-31T23:59:59-01:00", None),
    ],
)
def test_parse_rfc3339(value: object, expected: datetime | None) -> None:
    parsed = parse_rfc3339(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)
