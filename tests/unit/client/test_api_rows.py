"""RunService's messages read back as rows: a row the server converts (``server/convert.py``) comes
back with every field the message carries, whichever of upstream's four conversions made it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flyteidl2.workflow import run_definition_pb2 as wf

from taskaction_operator.client.api_rows import action_of, details_row, events_of, last_error
from taskaction_operator.model import ActionId, ActionPhase, ActionType, CatalogCacheStatus, RunId
from taskaction_operator.repo import Action
from taskaction_operator.server import convert

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
AID = ActionId(RunId("p", "d", "r1"), "a1")
#: What a row keeps through the messages that carry it all (a run, details).
SHOWN = ("project", "domain", "run_name", "name", "parent_action_name", "phase", "action_type",
         "run_source", "task_project", "task_domain", "task_name", "task_version", "task_type",
         "function_name", "attempts", "cache_status", "created_at", "ended_at", "duration_ms",
         "environment_name", "action_group")  # fmt: skip


def row(**fields: object) -> Action:
    base: dict[str, object] = dict(
        parent_action_name="a0",
        phase=ActionPhase.FAILED,
        run_source="RUN_SOURCE_CLI",
        action_type=ActionType.TASK,
        action_group="g",
        task_project="p",
        task_domain="d",
        task_name="wf.train",
        task_version="v1",
        task_type="python",
        function_name="train",
        environment_name="env",
        attempts=2,
        cache_status=CatalogCacheStatus.CACHE_MISS,
        created_at=T0,
        ended_at=T0 + timedelta(seconds=5),
        duration_ms=5000,
        abort_reason="stop",
    )
    base.update(fields)
    return Action.new(AID, **base)


def same(a: Action, b: Action, fields: tuple[str, ...] = SHOWN) -> None:
    assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}


def test_a_run_and_details_come_back_whole() -> None:
    original = row()
    same(action_of(convert.run(original).action), original)
    back = details_row(convert.action_details(original))
    same(back, original)


def test_a_tree_action_carries_its_type_from_the_metadata_spec() -> None:
    for kind in (ActionType.TASK, ActionType.TRACE):
        original = row(action_type=kind)
        back = action_of(convert.tree_action(original, True, {}).action)
        assert back.action_type is kind and back.phase is ActionPhase.FAILED
        assert back.task_name == "wf.train"


def test_a_zero_duration_left_out_of_a_listed_action_is_the_time_between_start_and_end() -> None:
    original = row(ended_at=T0, duration_ms=0)
    back = action_of(convert.listed_action(original))
    assert back.duration_ms == 0 and back.parent_action_name == "a0" and back.action_group == "g"


def test_events_are_each_attempts_phase_transitions_with_its_error_on_the_terminal_one() -> None:
    details = convert.action_details(row())
    error = wf.ErrorInfo(message="oom", kind=wf.ErrorInfo.KIND_USER)
    attempt = details.attempts.add(attempt=1, error_info=error)
    for i, phase in enumerate((ActionPhase.QUEUED, ActionPhase.RUNNING, ActionPhase.FAILED)):
        t = attempt.phase_transitions.add(phase=int(phase))
        t.start_time.FromDatetime(T0 + timedelta(seconds=i))
    events = events_of(details)
    assert [(e.attempt, e.phase, e.error_kind) for e in events] == [
        (1, ActionPhase.QUEUED, None),
        (1, ActionPhase.RUNNING, None),
        (1, ActionPhase.FAILED, "KIND_USER"),
    ]
    assert events[2].updated_at == T0 + timedelta(seconds=2)
    info = events[2].get_info()
    assert info is not None and info.error_info.message == "oom"
    assert last_error(details) == ("KIND_USER", "oom")
    assert last_error(convert.action_details(row())) == (None, None)
