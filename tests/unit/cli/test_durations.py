"""The one duration syntax (``--timeout``, ``--since``, ``--older-than``) and kubectl's ages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskaction_operator.cli.app import parse_args
from taskaction_operator.cli.context import UsageError
from taskaction_operator.cli.durations import DurationError, format_age, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90), ("5m", 300), ("1h30m", 5400), ("2d", 172_800), ("1w", 604_800),
        ("1w2d3h4m5s", 604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5), ("120", 120), ("0.5", 0.5),
        (" 2H ", 7200), ("0s", 0),
    ],
)  # fmt: skip
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "m", "5x", "30m1h", "1h1h", "-5m", "1.5h", "5 m", "soon", "P1D"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(DurationError, match="is not a duration like 90s, 5m, 1h30m, 2d or 1w"):
        parse_duration(text)


def test_format_duration_is_the_inverse_for_whole_seconds() -> None:
    for seconds in (0, 1, 59, 60, 61, 3600, 5400, 86_399, 90_061, 1_209_600 + 7):
        assert parse_duration(format_duration(seconds)).total_seconds() == seconds
    assert format_duration(5400) == "1h30m"


@pytest.mark.parametrize(
    ("seconds", "age"),
    [
        (-5, "<invalid>"), (-0.5, "0s"), (0, "0s"), (45, "45s"), (119, "119s"), (120, "2m"),
        (330, "5m30s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (7 * 3600 + 20 * 60, "7h20m"),
        (8 * 3600, "8h"), (47 * 3600, "47h"), (2 * 86_400, "2d"), (3 * 86_400 + 4 * 3600, "3d4h"),
        (8 * 86_400, "8d"), (729 * 86_400, "729d"), (2 * 365 * 86_400 + 30 * 86_400, "2y30d"),
        (9 * 365 * 86_400, "9y"),
    ],
)  # fmt: skip
def test_ages_read_like_kubectls(seconds: float, age: str) -> None:
    assert format_age(timedelta(seconds=seconds)) == age


def test_every_time_option_takes_the_one_syntax() -> None:
    assert parse_args(["runs", "watch", "r1", "--timeout", "1h30m"]).timeout == 5400
    assert parse_args(["runs", "watch", "r1"]).timeout == 3600
    assert parse_args(["abort", "r1", "--timeout", "2m"]).timeout == 120
    assert parse_args(["abort", "r1", "--timeout", "45"]).timeout == 45
    before = datetime.now(UTC)
    since = parse_args(["runs", "list", "--since", "1w"]).since
    assert (
        before - timedelta(weeks=1, seconds=5) < since <= before - timedelta(weeks=1) + timedelta(seconds=5)
    )
    assert parse_args(["events", "r1", "a0", "--since", "2026-11-23T12:00:00+01:00"]).since == datetime(
        2026, 11, 23, 11, tzinfo=UTC
    )
    with pytest.raises(UsageError, match="argument --until: 'tomorrow' is not a time"):
        parse_args(["runs", "list", "--until", "tomorrow"])
    with pytest.raises(UsageError, match="argument --timeout: must be positive"):
        parse_args(["runs", "watch", "r1", "--timeout", "0s"])
