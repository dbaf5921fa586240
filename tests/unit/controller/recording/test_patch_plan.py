"""Patch planning after an observation is committed, and applying the plan to (possibly newer) bodies."""

from __future__ import annotations

from typing import Any

import pytest

from taskaction_operator.controller.recording.patch_plan import plan_patch
from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_LABEL
from taskaction_operator.crd.observe import observe
from tests.factories import taskaction_body

T0 = "2026-11-23T10:00:00Z"


def cond(ctype: str, status: str, reason: str, at: str = T0) -> dict[str, str]:
    return {"type": ctype, "status": status, "reason": reason, "message": "", "lastTransitionTime": at}


def body(conditions: list[dict[str, str]] | None = None, **meta: Any) -> dict[str, Any]:
    return taskaction_body(conditions=conditions or [], **{"uid": "u-1", "creationTimestamp": T0, **meta})


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


def test_the_guard_of_a_deleting_action_is_released_only_once_its_end_is_committed() -> None:
    """While Flyte's executor still finalizes, the action's end is not known: keep the guard."""
    from taskaction_operator.controller.recording.patch_plan import plan_patch
    from taskaction_operator.crd.observe import observe
    from tests.factories import taskaction_body

    running = [{"type": "Progressing", "status": "True", "reason": "Executing"}]
    b = taskaction_body(conditions=running, uid="u1", deletionTimestamp="2026-11-23T10:00:00Z")
    b["metadata"]["finalizers"] = ["flyte.org/plugin-finalizer", "flyte.org/record-guard"]
    assert not plan_patch(observe(b), guard=True, committed=True, parent_uid=None).remove_guard
    b["metadata"]["finalizers"] = ["flyte.org/record-guard"]
    assert plan_patch(observe(b), guard=True, committed=True, parent_uid=None).remove_guard
