"""An action's attempts merged from its events, as upstream's mergeEvents does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flyteidl2.core import execution_pb2
from flyteidl2.workflow import run_definition_pb2 as wf

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import ActionEvent
from taskaction_operator.server.attempts import attempts_from_events, last_attempt_is_terminal, merge_events

AID = ActionId(RunId("p", "d", "r"), "a1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(phase: ActionPhase, second: int, attempt: int = 1, **fields: object) -> wf.ActionEvent:
    msg = wf.ActionEvent(id=AID.to_proto(), attempt=attempt, phase=int(phase), **fields)  # type: ignore[arg-type]
    msg.updated_time.FromDatetime(T0 + timedelta(seconds=second))
    return msg


def test_events_merge_in_time_order_with_the_terminal_event_giving_the_result() -> None:
    logs_old = execution_pb2.TaskLog(name="pod", uri="old")
    logs_new = execution_pb2.TaskLog(name="pod", uri="new")
    attempt = merge_events(
        1,
        [
            ev(ActionPhase.FAILED, 9, error_info=wf.ErrorInfo(message="boom"), log_info=[logs_new]),
            ev(ActionPhase.QUEUED, 1),
            ev(ActionPhase.RUNNING, 3, log_info=[logs_old, execution_pb2.TaskLog(name="agent", uri="a")]),
        ],
    )
    assert attempt.phase == int(ActionPhase.FAILED) and attempt.error_info.message == "boom"
    assert [(t.phase, t.start_time.seconds - int(T0.timestamp())) for t in attempt.phase_transitions] == [
        (int(ActionPhase.QUEUED), 1),
        (int(ActionPhase.RUNNING), 3),
        (int(ActionPhase.FAILED), 9),
    ]
    assert [(log.name, log.uri) for log in attempt.log_info] == [("agent", "a"), ("pod", "new")]
    assert attempt.end_time.seconds - attempt.start_time.seconds == 8


def test_a_running_attempt_has_no_end_and_the_last_attempt_decides_the_end() -> None:
    rows = [
        ActionEvent.from_proto(ev(ActionPhase.FAILED, 2, attempt=1)),
        ActionEvent.from_proto(ev(ActionPhase.RUNNING, 5, attempt=2)),
    ]
    attempts = attempts_from_events(rows)
    assert [a.attempt for a in attempts] == [1, 2]
    assert not attempts[1].HasField("end_time")
    assert not last_attempt_is_terminal(attempts)
    assert last_attempt_is_terminal(attempts[:1])


def test_an_event_stored_without_info_is_read_from_its_key() -> None:
    row = ActionEvent("p", "d", "r", "a1", 3, ActionPhase.SUCCEEDED, 0, updated_at=T0)
    (attempt,) = attempts_from_events([row])
    assert attempt.attempt == 3 and attempt.phase == int(ActionPhase.SUCCEEDED)
