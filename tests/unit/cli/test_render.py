"""Output helpers without a database: the action tree's shape, durations, colour decisions, and the
nested form ``-o json|yaml`` prints."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from taskaction_operator.cli.render import human_duration, tree_dict, tree_table, use_colour
from taskaction_operator.cli.tables import table
from taskaction_operator.model import ActionId, ActionPhase, ActionType
from taskaction_operator.repo import Action

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def row(name: str, parent: str | None, phase: ActionPhase, offset: int, ended: int | None = None) -> Action:
    a = Action.new(ActionId.of("p", "d", "r1", name), parent_action_name=parent, phase=phase,
                   action_type=ActionType.TASK, created_at=T0 + timedelta(seconds=offset),
                   task_short_name=f"fn_{name}")  # fmt: skip
    if ended is not None:
        a.ended_at = a.created_at + timedelta(seconds=ended)  # type: ignore[operator]
        a.duration_ms = ended * 1000
    return a


ACTIONS = [
    row("a2", "a0", ActionPhase.FAILED, 2, 5),
    row("a0", None, ActionPhase.RUNNING, 0),
    row("a1-1", "a1", ActionPhase.SUCCEEDED, 3, 61),
    row("a1", "a0", ActionPhase.RUNNING, 1),
    row("x9", "gone", ActionPhase.QUEUED, 4),  # parent not recorded (yet)
]


def test_tree_is_depth_first_with_box_drawing_and_orphans_last() -> None:
    text = tree_table(ACTIONS, colour=False, now=T0 + timedelta(seconds=100))
    lines = text.splitlines()
    assert lines[0].split() == ["ACTION", "TYPE", "PHASE", "ATTEMPTS", "DURATION", "TASK"]
    assert [line.split()[0] for line in lines[1:]] == ["a0", "├─", "│", "└─", "x9"]
    assert (
        lines[2].startswith("├─ a1 ") and lines[3].startswith("│  └─ a1-1 ") and lines[4].startswith("└─ a2 ")
    )
    assert "1m40s+" in lines[1]  # still running: time so far
    assert "1m01s" in lines[3] and "5.0s" in lines[4]
    assert "\x1b[" not in text


def test_tree_colours_phases_only_when_asked() -> None:
    text = tree_table(ACTIONS, colour=True)
    assert "\x1b[31mFAILED\x1b[0m" in text and "\x1b[32mSUCCEEDED\x1b[0m" in text


def test_tree_dict_nests_children() -> None:
    (root, orphan) = tree_dict(ACTIONS)
    assert root["name"] == "a0" and [c["name"] for c in root["children"]] == ["a1", "a2"]
    assert root["children"][0]["children"][0]["name"] == "a1-1"
    assert orphan["name"] == "x9" and orphan["phase"] == "QUEUED"


def test_colour_auto_needs_a_terminal_and_respects_no_color_and_dumb() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_colour("auto", Tty(), {}) is True
    assert use_colour("auto", io.StringIO(), {}) is False
    assert use_colour("auto", Tty(), {"NO_COLOR": "1"}) is False
    assert use_colour("auto", Tty(), {"TERM": "dumb"}) is False
    assert use_colour("always", io.StringIO(), {"NO_COLOR": "1"}) is True
    assert use_colour("never", Tty(), {}) is False


def test_durations_and_table_alignment() -> None:
    assert [human_duration(v) for v in (None, 850, 12_300, 245_000, 7_380_000)] == [
        "-", "850ms", "12.3s", "4m05s", "2h03m"
    ]  # fmt: skip
    out = table(("A", "BB"), [["x", "1"], ["long", "22"]], colour=True, colours=[["31", None], [None, None]])
    assert out.splitlines()[1] == "\x1b[31mx\x1b[0m     1"
