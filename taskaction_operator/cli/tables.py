"""Tables the kubectl way: columns two spaces apart, an AGE column, more columns with ``-o wide``, no
header line with ``--no-headers``; colour that never moves a column (widths count visible characters),
and lines clipped to a terminal's width (so a live redraw knows how many lines it drew).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from taskaction_operator.cli.durations import format_age

T = TypeVar("T")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
RESET = "\x1b[0m"


def paint(text: str, code: str | None, colour: bool) -> str:
    return f"\x1b[{code}m{text}{RESET}" if colour and code and text else text


def visible_width(text: str) -> int:
    """The characters a terminal shows: escape sequences take no room."""
    return len(_ANSI.sub("", text))


def clip(line: str, width: int) -> str:
    """``line`` cut to ``width`` visible characters (``…`` last when cut), escape sequences kept whole
    and a colour left open closed."""
    if visible_width(line) <= width:
        return line
    out, shown, pos, painted = [], 0, 0, False
    while pos < len(line) and shown < width - 1:
        match = _ANSI.match(line, pos)
        if match:
            out.append(match.group())
            painted = match.group() != RESET
            pos = match.end()
            continue
        out.append(line[pos])
        shown += 1
        pos += 1
    return "".join(out) + "…" + (RESET if painted else "")


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    colour: bool = False,
    colours: Sequence[Sequence[str | None]] | None = None,
    show_headers: bool = True,
) -> str:
    """Left-aligned columns, two spaces apart (kubectl style); ``colours[i][j]`` an ANSI code or None.
    Padding is added after painting, so colour never shifts a column."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, visible_width(c)) for w, c in zip(widths, row, strict=True)]
    lines = (
        ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()] if show_headers else []
    )
    for i, row in enumerate(rows):
        cells = []
        for j, (cell, width) in enumerate(zip(row, widths, strict=True)):
            code = colours[i][j] if colours is not None else None
            cells.append(paint(cell, code, colour) + " " * (width - visible_width(cell)))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n" if lines else ""


@dataclass(frozen=True)
class Column(Generic[T]):
    """One column: its header, the cell of an item, the cell's colour (an ANSI code), wide-only."""

    header: str
    cell: Callable[[T], str]
    colour: Callable[[T], str | None] = lambda _item: None
    wide: bool = False


@dataclass(frozen=True)
class Style:
    """How a table is printed: ``-o wide``, ``--no-headers``, colour."""

    wide: bool = False
    headers: bool = True
    colour: bool = False


def columns_table(items: Sequence[T], columns: Sequence[Column[T]], style: Style) -> str:
    shown = [c for c in columns if style.wide or not c.wide]
    return table(
        [c.header for c in shown],
        [[c.cell(item) for c in shown] for item in items],
        colour=style.colour,
        colours=[[c.colour(item) for c in shown] for item in items],
        show_headers=style.headers,
    )


def timestamp(value: datetime | None) -> str | None:
    """The one absolute format (``-o wide``, json, yaml): RFC 3339 in UTC to the millisecond, with
    its zone: ``2026-11-23T12:00:00.000Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def age(value: datetime | None, now: datetime | None = None) -> str:
    """kubectl's AGE of ``value``: ``5m``, ``3h``, ``2d``; ``-`` for none."""
    return "-" if value is None else format_age((now or datetime.now(UTC)) - value)
