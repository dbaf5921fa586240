"""The tree a WatchActions stream keeps (upstream's runStateManager): what each change sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from flyteidl2.common import list_pb2

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import Action
from taskaction_operator.server.run_tree import RunTree

RUN = RunId("p", "d", "r")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUEUED, RUNNING, SUCCEEDED, FAILED = (
    int(p) for p in (ActionPhase.QUEUED, ActionPhase.RUNNING, ActionPhase.SUCCEEDED, ActionPhase.FAILED)
)


def node(name: str, parent: str | None, phase: ActionPhase, second: int = 0) -> Action:
    return Action.new(
        ActionId(RUN, name), parent_action_name=parent, phase=phase, created_at=T0 + timedelta(seconds=second)
    )


def sent(updates: list) -> list[tuple[str, bool]]:  # type: ignore[type-arg]
    return [(u.action.name, u.meets_filter) for u in updates]


def test_phase_counts_cover_every_descendant_and_follow_phase_changes() -> None:
    tree = RunTree()
    tree.upsert([node("a0", None, ActionPhase.RUNNING), node("a1", "a0", ActionPhase.RUNNING, 1)])
    updates = tree.upsert([node("a1-1", "a1", ActionPhase.QUEUED, 2)])
    assert sent(updates) == [("a0", True), ("a1", True), ("a1-1", True)]
    assert updates[0].child_phase_counts == {RUNNING: 1, QUEUED: 1}
    updates = tree.upsert([node("a1-1", "a1", ActionPhase.SUCCEEDED, 2)])
    # upstream keeps a count that dropped to zero
    assert updates[0].child_phase_counts == {RUNNING: 1, QUEUED: 0, SUCCEEDED: 1}
    assert updates[1].child_phase_counts == {QUEUED: 0, SUCCEEDED: 1}


def test_a_child_before_its_parent_waits_and_is_sent_with_it() -> None:
    tree = RunTree()
    assert tree.upsert([node("a1", "a0", ActionPhase.RUNNING)]) == []
    updates = tree.upsert([node("a0", None, ActionPhase.RUNNING)])
    assert sent(updates) == [("a0", True), ("a1", True)]
    assert updates[0].child_phase_counts == {RUNNING: 1}


def test_a_filter_shows_matches_with_their_path_and_hides_what_stops_matching() -> None:
    phase = list_pb2.Filter(field="PHASE", function=list_pb2.Filter.VALUE_IN, values=[str(FAILED)])
    tree = RunTree([phase])
    first = tree.upsert(
        [
            node("a0", None, ActionPhase.RUNNING),
            node("a1", "a0", ActionPhase.RUNNING, 1),
            node("a1-1", "a1", ActionPhase.FAILED, 2),
        ]
    )
    assert sent(first) == [("a0", True), ("a1", True), ("a1-1", True)]
    assert sent(tree.upsert([node("a2", "a0", ActionPhase.RUNNING, 3)])) == [("a0", True)]
    # The match goes: it and the path that led to it are sent once more, hidden.
    assert sent(tree.upsert([node("a1-1", "a1", ActionPhase.RUNNING, 2)])) == [
        ("a0", False),
        ("a1", False),
        ("a1-1", False),
    ]
    assert tree.upsert([node("a2", "a0", ActionPhase.SUCCEEDED, 3)]) == []


def test_the_name_filter_matches_the_task_short_name_case_insensitively() -> None:
    name = list_pb2.Filter(field="NAME", function=list_pb2.Filter.CONTAINS_CASE_INSENSITIVE, values=["A1"])
    tree = RunTree([name])
    assert sent(
        tree.upsert([node("a0", None, ActionPhase.RUNNING), node("a1", "a0", ActionPhase.RUNNING, 1)])
    ) == [
        ("a0", True),
        ("a1", True),
    ]


@pytest.mark.parametrize(
    ("field", "function", "values"),
    [
        ("PHASE", list_pb2.Filter.EQUAL, ["6"]),
        ("NAME", list_pb2.Filter.CONTAINS, ["x"]),
        ("phase", list_pb2.Filter.VALUE_IN, ["6"]),
        ("PHASE", list_pb2.Filter.VALUE_IN, ["FAILED"]),
    ],
)
def test_filters_upstream_does_not_support_are_refused(field: str, function: int, values: list[str]) -> None:
    with pytest.raises(ConnectError) as info:
        RunTree([list_pb2.Filter(field=field, function=function, values=values)])  # type: ignore[arg-type]
    assert info.value.code is Code.INVALID_ARGUMENT


def test_a_waiting_child_updated_before_its_parent_arrives_is_sent_once_in_its_latest_state() -> None:
    tree = RunTree()
    tree.upsert([node("a1", "a0", ActionPhase.QUEUED)])
    tree.upsert([node("a1", "a0", ActionPhase.RUNNING)])
    updates = tree.upsert([node("a0", None, ActionPhase.RUNNING)])
    assert [(u.action.name, u.action.phase) for u in updates] == [
        ("a0", ActionPhase.RUNNING),
        ("a1", ActionPhase.RUNNING),
    ]
    assert updates[0].child_phase_counts == {RUNNING: 1}
