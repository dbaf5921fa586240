"""Tables and the live view without a database: AGE, ``-o wide`` times, ``--no-headers``, colour that
never shifts a column, and a redraw that fits the terminal whatever the tree's size."""

from __future__ import annotations

import io
import os
import re
from datetime import UTC, datetime, timedelta

import pytest

from taskaction_operator.cli.columns import run_columns
from taskaction_operator.cli.live import LiveView, fit
from taskaction_operator.cli.read_cmds import emit_change
from taskaction_operator.cli.render import tree_table
from taskaction_operator.cli.tables import Style, clip, columns_table, timestamp, visible_width
from taskaction_operator.model import ActionId, ActionPhase, ActionType
from taskaction_operator.repo import Action

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def action(name: str, phase: ActionPhase, age: timedelta, parent: str | None = None) -> Action:
    return Action.new(ActionId.of("p", "d", "r1", name), parent_action_name=parent, phase=phase,
                      action_type=ActionType.TASK, created_at=NOW - age,
                      task_short_name=f"fn_{name}")  # fmt: skip


RUNS = [
    action("a0", ActionPhase.RUNNING, timedelta(minutes=5)),
    action("a0", ActionPhase.FAILED, timedelta(days=2)),
]


def test_runs_table_has_an_age_column_and_wide_adds_absolute_times_with_their_zone() -> None:
    lines = columns_table(RUNS, run_columns(NOW), Style()).splitlines()
    assert lines[0].split() == ["RUN", "PROJECT", "DOMAIN", "PHASE", "TASK", "ATTEMPTS", "DURATION", "AGE"]
    assert [line.split()[-1] for line in lines[1:]] == ["5m", "2d"]
    wide = columns_table(RUNS, run_columns(NOW), Style(wide=True)).splitlines()
    assert wide[0].split()[-3:] == ["AGE", "CREATED", "ENDED"]
    assert wide[1].split()[-2:] == ["2026-11-23T11:55:00.000Z", "-"]
    assert timestamp(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"


def test_no_headers_drops_only_the_header_line() -> None:
    with_headers = columns_table(RUNS, run_columns(NOW), Style()).splitlines()
    assert columns_table(RUNS, run_columns(NOW), Style(headers=False)).splitlines() == with_headers[1:]


def test_colour_never_shifts_a_column() -> None:
    plain = columns_table(RUNS, run_columns(NOW), Style()).splitlines()
    coloured = columns_table(RUNS, run_columns(NOW), Style(colour=True)).splitlines()
    assert coloured != plain and [ANSI.sub("", line) for line in coloured] == plain


def test_watch_lines_align_with_and_without_colour(capsys: pytest.CaptureFixture[str]) -> None:
    for colour in (False, True):
        for a in RUNS:
            emit_change(a, "table", colour)
    lines = [ANSI.sub("", line) for line in capsys.readouterr().out.splitlines()]
    assert len({line.index("attempt") for line in lines}) == 1, lines


def test_clip_counts_visible_characters_and_closes_an_open_colour() -> None:
    line = "ab\x1b[31mcdefgh\x1b[0mij"
    assert clip(line, 20) == line
    cut = clip(line, 5)
    assert ANSI.sub("", cut) == "abcd…" and cut.endswith("\x1b[0m") and visible_width(cut) == 5


def test_a_tree_taller_and_wider_than_the_terminal_is_fitted() -> None:
    actions = [action("a0", ActionPhase.RUNNING, timedelta(hours=1))] + [
        action(f"a{i}", ActionPhase.QUEUED, timedelta(minutes=i), parent="a0") for i in range(1, 60)
    ]
    text = tree_table(actions, style=Style(colour=True), now=NOW)
    lines = fit(text, columns=30, rows=12)
    assert len(lines) == 11 and lines[-1] == "… 51 more lines"
    assert lines[0].startswith("ACTION") and all(visible_width(line) <= 29 for line in lines)


def test_the_live_view_climbs_exactly_what_it_drew() -> None:
    out = io.StringIO()
    view = LiveView(out, size=lambda: os.terminal_size((40, 8)))
    view.draw("\n".join(f"line {i} " + "x" * 100 for i in range(20)) + "\n")
    view.draw("short\n")
    first, second = out.getvalue().split("\x1b[J")[1:]
    assert first.count("\n") == 7 and all(visible_width(line) <= 39 for line in first.splitlines())
    assert out.getvalue().count("\x1b[7F") == 1 and second == "short\n"
