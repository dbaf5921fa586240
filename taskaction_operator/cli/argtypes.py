"""argparse types: every option value is checked while parsing, so a bad one is a usage error (exit 2)
before any command module, library or connection is touched. Standard library only."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from taskaction_operator.cli.durations import SYNTAX, DurationError, parse_duration
from taskaction_operator.model.times import parse_rfc3339


def positive_int(text: str) -> int:
    """A whole number, at least 1 (``--limit``, ``--attempt``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def timeout(text: str) -> float:
    """A positive duration (``30s``, ``5m``, ``1h30m``; a bare number is seconds), as seconds."""
    try:
        seconds = parse_duration(text).total_seconds()
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text!r}")
    return seconds


def point_in_time(text: str) -> datetime:
    """RFC 3339 (``2026-11-23T12:00:00Z``; a date alone is midnight UTC), or a duration ago (``2h``,
    ``1d12h``, ``1w``)."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except DurationError:
        pass
    parsed = parse_rfc3339(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time (RFC 3339, or {SYNTAX} ago)")
    return parsed
