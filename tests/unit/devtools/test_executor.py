"""The stand-in executor writes the status shapes of Flyte's executor
(``executor/pkg/controller/taskaction_controller.go``), so every figure and test is about them."""

from __future__ import annotations

from flyteidl2.workflow import run_definition_pb2

from taskaction_operator.crd.observe import observe
from taskaction_operator.devtools.executor import (
    PLUGIN_PHASES,
    RESTART_MESSAGE,
    _Track,
    action_event,
    build_status,
    terminal_labels,
)
from taskaction_operator.model import ActionPhase as P
from tests.factories import taskaction_body

T = "2026-11-23T10:00:00Z"


def _walk(*phases: str, max_attempts: int = 3) -> dict[str, object]:
    track = _Track()
    status: dict[str, object] = {}
    for phase in phases:
        status = build_status(track, phase, at=T, max_attempts=max_attempts)
    return status


def test_a_retryable_failure_restarts_in_place_as_queued_with_attempts_bumped() -> None:
    status = _walk("Queued", "Initializing", "Executing", "RetryableFailure")
    assert status["attempts"] == 2
    assert [h["phase"] for h in status["phaseHistory"]] == ["Queued", "Initializing", "Executing", "Queued"]  # type: ignore[index,union-attr]
    assert status["phaseHistory"][-1]["message"] == RESTART_MESSAGE  # type: ignore[index]
    (progressing,) = status["conditions"]  # type: ignore[misc]
    assert (progressing["reason"], progressing["message"]) == ("Queued", RESTART_MESSAGE)
    assert "errorState" not in status


def test_the_recorded_events_of_a_retried_action_are_flytes() -> None:
    track = _Track()
    for phase in (
        "Queued",
        "Initializing",
        "Executing",
        "RetryableFailure",
        "Initializing",
        "Executing",
        "Completed",
    ):
        status = build_status(track, phase, at=T)
    body = taskaction_body(status=status)
    assert [(e.attempt, e.phase) for e in observe(body).events] == [
        (1, P.QUEUED), (1, P.INITIALIZING), (1, P.RUNNING),
        (2, P.QUEUED), (2, P.INITIALIZING), (2, P.RUNNING), (2, P.SUCCEEDED),
    ]  # fmt: skip


def test_retries_run_out_into_a_permanent_failure() -> None:
    status = _walk("Queued", "RetryableFailure", "RetryableFailure", "RetryableFailure", max_attempts=3)
    assert status["attempts"] == 3
    assert status["errorState"]["kind"] == "USER"  # type: ignore[index]
    assert [c["type"] for c in status["conditions"] if c["status"] == "True"] == ["Failed"]  # type: ignore[index,union-attr]


def test_completed_and_aborted_carry_the_executors_messages_and_terminal_labels() -> None:
    done = _walk("Queued", "Executing", "Completed")
    messages = {c["type"]: c["message"] for c in done["conditions"]}  # type: ignore[union-attr,index]
    assert messages == {
        "Progressing": "TaskAction has completed",
        "Succeeded": "TaskAction completed successfully",
    }
    assert terminal_labels(done) == {  # type: ignore[arg-type]
        "flyte.org/termination-status": "terminated",
        "flyte.org/completed-time": "2026-11-23.10-00",
    }
    aborted = _walk("Queued", "Aborted")
    assert aborted["phaseHistory"][-1] == {
        "phase": "Aborted",
        "occurredAt": T,
        "message": "TaskAction was aborted",
    }  # type: ignore[index]
    assert terminal_labels(_walk("Queued", "Executing")) is None  # type: ignore[arg-type]


def test_status_names_the_plugin_phase_and_a_condition_writes_only_its_own_fields() -> None:
    assert _walk("Queued", "Executing")["pluginPhase"] == "PhaseRunning"
    assert _walk("Queued", "Executing", "Completed")["pluginPhase"] == "PhaseSuccess"
    paused = _walk("Paused")
    assert set(paused) == {"conditions", "phaseHistory"}  # updateConditionStatus' fields
    timed_out = _walk("Paused", "TimedOut")
    assert timed_out["errorState"]["code"] == "ConditionTimedOut"  # type: ignore[index]


def _events(*phases: str, message: str = "") -> list[run_definition_pb2.ActionEvent]:
    """The ActionEvent the stand-in reports for each write (buildActionEvent)."""
    track = _Track()
    body = taskaction_body()
    out = []
    for phase in phases:
        status = build_status(track, phase, at=T, message=message)
        out.append(
            action_event(
                body,
                status,
                PLUGIN_PHASES[track.phase],
                cluster="c1",
                message=track.message,
                error=track.error,
            )
        )
    return out


def test_the_reported_events_number_a_restart_as_the_next_attempts_queued() -> None:
    events = _events("Queued", "Executing", "RetryableFailure", "Executing", "Completed")
    assert [(e.attempt, e.phase) for e in events] == [(1, 1), (1, 4), (2, 1), (2, 4), (2, 5)]
    restart = events[2]
    assert [c.message for c in restart.cluster_events] == [RESTART_MESSAGE]
    assert not restart.HasField("error_info")  # the restart carries no error
    assert {e.cluster for e in events} == {"c1"}
    assert (restart.id.run.name, restart.id.name) == ("r1", "a1")


def test_a_permanent_failure_is_reported_with_its_error_kind() -> None:
    (failed,) = _events("PermanentFailure", message="exit 1")
    assert failed.phase == 6
    assert (failed.error_info.message, failed.error_info.kind) == (
        "exit 1",
        run_definition_pb2.ErrorInfo.KIND_USER,
    )
