"""Phase derivation and event history, on real TaskAction-shaped bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from taskaction_operator.crd.observe import InvalidTaskAction, observe, phase_events, phase_from_conditions
from taskaction_operator.model import ActionPhase as P
from tests.factories import taskaction_body

T0 = "2026-11-23T10:00:00Z"


def cond(ctype: str, status: str, reason: str, at: str = T0) -> dict[str, str]:
    return {"type": ctype, "status": status, "reason": reason, "message": "", "lastTransitionTime": at}


def body(conditions: list[dict[str, str]] | None = None, **meta: Any) -> dict[str, Any]:
    return taskaction_body(conditions=conditions or [], **{"uid": "u-1", "creationTimestamp": T0, **meta})


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([], P.UNSPECIFIED),
        ([cond("Progressing", "True", "Queued")], P.QUEUED),
        ([cond("Progressing", "True", "Initializing")], P.INITIALIZING),
        ([cond("Progressing", "True", "Executing")], P.RUNNING),
        ([cond("Progressing", "True", "Paused")], P.PAUSED),
        ([cond("Progressing", "True", "RetryableFailure")], P.UNSPECIFIED),
        ([cond("Progressing", "False", "Completed"), cond("Succeeded", "True", "Completed")], P.SUCCEEDED),
        (
            [cond("Progressing", "False", "PermanentFailure"), cond("Failed", "True", "PermanentFailure")],
            P.FAILED,
        ),
        # The executor's Aborted reason is Failed=True: FAILED, not ABORTED (upstream
        # ``GetPhaseFromConditions``, ``actions/k8s/client.go``).
        ([cond("Failed", "True", "Aborted")], P.FAILED),
        ([cond("Failed", "True", "TimedOut")], P.TIMED_OUT),
        ([cond("Succeeded", "True", "Signaled")], P.SUCCEEDED),
        # First match in list order wins.
        ([cond("Progressing", "True", "Executing"), cond("Succeeded", "True", "Completed")], P.RUNNING),
        ([cond("Succeeded", "True", "Completed"), cond("Progressing", "True", "Executing")], P.SUCCEEDED),
        ([cond("Succeeded", "False", "Completed"), cond("Failed", "Unknown", "x")], P.UNSPECIFIED),
    ],
)
def test_phase_from_conditions_follows_upstream_table(conditions: list[dict[str, str]], expected: P) -> None:
    assert phase_from_conditions(conditions) is expected


def test_deleting_a_running_action_is_aborted_with_an_end_time() -> None:
    now = datetime(2026, 11, 23, 11, tzinfo=UTC)
    obs = observe(body([cond("Progressing", "True", "Executing")]), deleted=True, now=now)
    assert obs.phase is P.ABORTED
    assert obs.end_time == now
    assert obs.events[-1].phase is P.ABORTED


def test_deleting_a_succeeded_action_keeps_its_phase_and_condition_time() -> None:
    obs = observe(body([cond("Succeeded", "True", "Completed", "2026-11-23T10:05:00Z")]), deleted=True)
    assert obs.phase is P.SUCCEEDED
    assert obs.end_time == datetime(2026, 11, 23, 10, 5, tzinfo=UTC)


def test_deletion_timestamp_counts_as_deleting() -> None:
    obs = observe(body([cond("Progressing", "True", "Queued")], deletionTimestamp=T0))
    assert obs.deleting and obs.phase is P.ABORTED


def test_identity_comes_from_spec_and_root_has_no_parent() -> None:
    b = body()
    b["spec"].update(actionName="a0", parentActionName=None)
    obs = observe(b)
    assert str(obs.action_id) == "p/d/r1/a0"
    assert obs.parent is None and obs.is_root


def test_missing_identity_is_rejected() -> None:
    b = body()
    del b["spec"]["runName"]
    with pytest.raises(InvalidTaskAction, match="runName"):
        observe(b)


def test_history_gives_every_phase_with_attempts_counted_by_retries() -> None:
    history = [
        {"phase": "Queued", "occurredAt": "2026-11-23T10:00:00Z"},
        {"phase": "Executing", "occurredAt": "2026-11-23T10:00:01Z"},
        {"phase": "RetryableFailure", "occurredAt": "2026-11-23T10:00:02Z", "message": "oom"},
        {"phase": "Queued", "occurredAt": "2026-11-23T10:00:03Z"},
        {"phase": "Executing", "occurredAt": "2026-11-23T10:00:04Z"},
        {"phase": "Completed", "occurredAt": "2026-11-23T10:00:05Z"},
    ]
    events = phase_events(history, P.SUCCEEDED, attempts=2)
    assert [(e.attempt, e.phase) for e in events] == [
        (1, P.QUEUED),
        (1, P.RUNNING),
        (1, P.FAILED),
        (2, P.QUEUED),
        (2, P.RUNNING),
        (2, P.SUCCEEDED),
    ]
    assert events[2].message == "oom"
    assert events[0].occurred_at == datetime(2026, 11, 23, 10, tzinfo=UTC)


def test_without_history_the_current_phase_is_the_event_and_unspecified_is_none() -> None:
    assert [(e.attempt, e.phase) for e in phase_events(None, P.RUNNING, 3)] == [(3, P.RUNNING)]
    assert phase_events(None, P.UNSPECIFIED, 1) == ()


# --- Flyte's executor's own status shapes (executor/pkg/controller/taskaction_controller.go) -------
def _entry(phase: str, second: int, message: str = "") -> dict[str, str]:
    entry = {"phase": phase, "occurredAt": f"2026-11-23T10:00:{second:02d}Z"}
    if message:
        entry["message"] = message
    return entry


#: An in-place restart on a USER retryable failure: the transition is rewritten as Queued with the
#: message "restarting task" and status.attempts is bumped in the same write; no RetryableFailure entry.
RETRIED = [
    _entry("Queued", 0),
    _entry("Initializing", 1),
    _entry("Executing", 2),
    _entry("Queued", 3, "restarting task"),
    _entry("Initializing", 4),
    _entry("Executing", 5),
    _entry("Completed", 6, "TaskAction completed successfully"),
]
RETRIED_EVENTS = [
    (1, P.QUEUED),
    (1, P.INITIALIZING),
    (1, P.RUNNING),
    (2, P.QUEUED),
    (2, P.INITIALIZING),
    (2, P.RUNNING),
    (2, P.SUCCEEDED),
]
#: The conditions of each history step, as mapPhaseToConditions writes them.
STEP_CONDITIONS = {
    "Queued": [cond("Progressing", "True", "Queued")],
    "Initializing": [cond("Progressing", "True", "Initializing")],
    "Executing": [cond("Progressing", "True", "Executing")],
    "Completed": [cond("Progressing", "False", "Completed"), cond("Succeeded", "True", "Completed")],
}


def _executor_body(history: list[dict[str, str]], attempts: int) -> dict[str, Any]:
    b = body(STEP_CONDITIONS[history[-1]["phase"]])
    b["status"] |= {"phaseHistory": history, "attempts": attempts}
    return b


def test_an_in_place_restart_starts_attempt_two_at_its_queued_entry() -> None:
    obs = observe(_executor_body(RETRIED, attempts=2))
    assert [(e.attempt, e.phase) for e in obs.events] == RETRIED_EVENTS


def test_a_retried_action_reads_the_same_whether_every_write_or_only_the_last_was_seen() -> None:
    seen: dict[tuple[int, int, int], Any] = {}
    for n in range(1, len(RETRIED) + 1):
        attempts = 2 if n >= 4 else 1  # bumped in the restart's own write
        for ev in observe(_executor_body(RETRIED[:n], attempts)).events:
            seen.setdefault(ev.key, ev)
    assert sorted((e.attempt, e.phase) for e in seen.values()) == sorted(RETRIED_EVENTS)


def test_a_restart_the_history_dedup_hid_still_puts_the_current_phase_under_status_attempts() -> None:
    """A restart from Queued appends no entry (appendPhaseHistory drops a repeat of the last one):
    the history and the attempts disagree, and the attempts win for the current phase."""
    obs = observe(_executor_body([_entry("Queued", 0)], attempts=2))
    assert [(e.attempt, e.phase) for e in obs.events] == [(1, P.QUEUED), (2, P.QUEUED)]


def test_an_executor_abort_is_one_terminal_event() -> None:
    """The executor's abort: Failed=True with reason Aborted (the row's phase is FAILED, as upstream's
    GetPhaseFromConditions says) and an Aborted history entry; Flyte's executor reports one ABORTED
    event for it, so must we: not ABORTED and FAILED for one attempt."""
    b = body([cond("Progressing", "False", "Aborted"), cond("Failed", "True", "Aborted")])
    b["status"]["phaseHistory"] = [_entry("Queued", 0), _entry("Executing", 1), _entry("Aborted", 2)]
    obs = observe(b)
    assert obs.phase is P.FAILED
    terminal = [(e.attempt, e.phase) for e in obs.events if e.phase.is_terminal()]
    assert terminal == [(1, P.ABORTED)]


def test_a_time_no_timestamp_can_hold_is_no_time_and_crashes_nothing() -> None:
    """``0001-01-01T00:00:00+01:00`` is valid RFC 3339 (the CRD accepts it) but year 0 in UTC: it
    overflowed protobuf's Timestamp while a row was built, and on a deleting object the record guard
    then held the object (and its namespace) forever."""
    from taskaction_operator.controller.recording.rows import action_row, event_row

    year_zero = "0001-01-01T00:00:00+01:00"
    b = body([cond("Progressing", "True", "Executing", at=year_zero)])
    b["status"]["phaseHistory"] = [_entry("Queued", 0) | {"occurredAt": year_zero}]
    obs = observe(b, deleted=True)
    assert all(e.occurred_at is None or e.occurred_at.year > 1 for e in obs.events)
    action_row(obs)
    for ev in obs.events:
        event_row(obs, ev)


# --- when a deletion becomes ABORTED ----------------------------------------------------------------
EXECUTOR_FINALIZER = "flyte.org/plugin-finalizer"  # taskaction_controller.go: taskActionFinalizer


def test_a_deleting_action_is_not_aborted_while_another_finalizer_still_runs() -> None:
    """Flyte's executor finalizes first (handleAbortAndFinalize), and may write a terminal status
    meanwhile: until only our finalizer (or none) remains, the phase is the status's own."""
    b = body([cond("Progressing", "True", "Executing")], deletionTimestamp=T0)
    b["metadata"]["finalizers"] = [EXECUTOR_FINALIZER, "flyte.org/record-guard"]
    obs = observe(b)
    assert obs.deleting and obs.phase is P.RUNNING and obs.end_time is None
    b["metadata"]["finalizers"] = ["flyte.org/record-guard"]
    assert observe(b).phase is P.ABORTED
    del b["metadata"]["finalizers"]
    assert observe(b).phase is P.ABORTED


def test_a_terminal_status_written_during_the_executors_finalization_is_the_end() -> None:
    b = body([cond("Succeeded", "True", "Completed")], deletionTimestamp=T0)
    b["metadata"]["finalizers"] = ["flyte.org/record-guard"]
    obs = observe(b)
    assert obs.phase is P.SUCCEEDED and P.ABORTED not in [e.phase for e in obs.events]


def test_the_final_tombstone_of_an_unfinished_action_is_aborted_whatever_its_finalizers_said() -> None:
    b = body([cond("Progressing", "True", "Executing")], deletionTimestamp=T0)
    b["metadata"]["finalizers"] = [EXECUTOR_FINALIZER]
    assert observe(b, deleted=True).phase is P.ABORTED
