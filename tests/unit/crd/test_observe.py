"""Phase derivation, event history and patch planning, on real TaskAction-shaped bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from taskaction_operator.controller.recording.patch_plan import plan_patch
from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_LABEL
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
        # The executor's Aborted reason is Failed=True: FAILED, not ABORTED (upstream §8.4).
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


def test_first_sighting_of_a_child_plans_owner_reference_and_guard() -> None:
    obs = observe(body([cond("Progressing", "True", "Queued")]))
    plan = plan_patch(obs, guard=True, committed=True, parent_uid="parent-uid")
    assert plan.owner_reference == {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "name": "r1-a0",
        "uid": "parent-uid",
        "blockOwnerDeletion": True,
    }
    assert "controller" not in plan.owner_reference
    assert plan.add_guard and not plan.label_recorded
    b = body()
    plan.apply(b)
    assert b["metadata"]["finalizers"] == [RECORD_GUARD_FINALIZER]
    assert len(b["metadata"]["ownerReferences"]) == 1


def test_terminal_label_only_after_commit_and_it_releases_the_guard() -> None:
    b = body(
        [cond("Succeeded", "True", "Completed")],
        finalizers=["flyte.org/plugin-finalizer", RECORD_GUARD_FINALIZER],
    )
    b["metadata"]["ownerReferences"] = [{"name": "r1-a0"}]
    obs = observe(b)
    assert not plan_patch(obs, guard=True, committed=False, parent_uid="x")
    plan = plan_patch(obs, guard=True, committed=True, parent_uid="x")
    assert plan.label_recorded and plan.remove_guard and plan.owner_reference is None
    plan.apply(b)
    assert b["metadata"]["labels"][RECORDED_LABEL] == "true"
    assert b["metadata"]["finalizers"] == ["flyte.org/plugin-finalizer"]


def test_a_stale_guard_plan_applied_to_a_newer_body_adds_no_guard_to_a_finished_object() -> None:
    # kopf re-applies a guarded patch that lost a race to the object's next (newer) body.
    plan = plan_patch(observe(body()), guard=True, committed=True, parent_uid="pu")
    assert plan.add_guard
    for newer in (
        body([cond("Succeeded", "True", "Completed")]),
        body([cond("Progressing", "True", "Executing")], labels={RECORDED_LABEL: "true"}),
        body([cond("Progressing", "True", "Executing")], deletionTimestamp=T0),
    ):
        plan.apply(newer)
        assert RECORD_GUARD_FINALIZER not in newer["metadata"].get("finalizers", [])
        assert len(newer["metadata"]["ownerReferences"]) == 1
    running = body([cond("Progressing", "True", "Executing")])
    plan.apply(running)
    assert running["metadata"]["finalizers"] == [RECORD_GUARD_FINALIZER]


def test_with_the_guard_on_a_terminal_plan_releases_a_guard_its_observation_did_not_show() -> None:
    seen = body([cond("Succeeded", "True", "Completed")])
    plan = plan_patch(observe(seen), guard=True, committed=True, parent_uid=None)
    assert plan.label_recorded and plan.remove_guard and plan.touches_finalizers
    fresher = body([cond("Succeeded", "True", "Completed")], finalizers=[RECORD_GUARD_FINALIZER])
    plan.apply(fresher)
    assert fresher["metadata"]["labels"][RECORDED_LABEL] == "true"
    assert fresher["metadata"]["finalizers"] == []
    unguarded = plan_patch(observe(seen), guard=False, committed=True, parent_uid=None)
    assert not unguarded.touches_finalizers


def test_deleting_object_releases_guard_only_after_commit_and_is_never_labelled() -> None:
    obs = observe(
        body(
            [cond("Progressing", "True", "Executing")],
            finalizers=[RECORD_GUARD_FINALIZER],
            deletionTimestamp=T0,
        )
    )
    assert not plan_patch(obs, guard=True, committed=False, parent_uid=None)
    plan = plan_patch(obs, guard=True, committed=True, parent_uid=None)
    assert plan.remove_guard and not plan.label_recorded and not plan.add_guard


def test_guard_off_plans_no_finalizer() -> None:
    obs = observe(body([cond("Progressing", "True", "Queued")]))
    assert not plan_patch(obs, guard=False, committed=True, parent_uid=None)


def test_plans_without_finalizer_changes_are_merge_patches() -> None:
    child = observe(body([cond("Progressing", "True", "Queued")]))
    plan = plan_patch(child, guard=False, committed=True, parent_uid="pu")
    assert not plan.touches_finalizers
    assert plan.as_merge_patch() == {
        "metadata": {
            "ownerReferences": [
                {
                    "apiVersion": "flyte.org/v1",
                    "kind": "TaskAction",
                    "name": "r1-a0",
                    "uid": "pu",
                    "blockOwnerDeletion": True,
                }
            ]
        }
    }
    done = observe(body([cond("Succeeded", "True", "Completed")]))
    done_plan = plan_patch(done, guard=False, committed=True, parent_uid=None)
    assert done_plan.as_merge_patch() == {"metadata": {"labels": {RECORDED_LABEL: "true"}}}


def test_plans_that_change_finalizers_refuse_the_merge_form() -> None:
    plan = plan_patch(
        observe(body([cond("Progressing", "True", "Queued")])), guard=True, committed=True, parent_uid="pu"
    )
    assert plan.touches_finalizers
    with pytest.raises(ValueError, match="guarded JSON patch"):
        plan.as_merge_patch()
