"""Patch planning after an observation is committed, and the plan's JSON patch on (possibly newer)
bodies: the ops applied as a JSON patch, a failed test as the API server's 422."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer
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


def apply_ops(b: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """The ops applied as the API server applies a JSON patch; a failed test raises (its 422).
    A ``test`` of ``null`` passes on an absent member, as the API server's json-patch does."""
    missing_ok = [op for op in ops if op["op"] == "test" and op["value"] is None and not _has(b, op["path"])]
    rest = [op for op in ops if op not in missing_ok]
    return jsonpatch.apply_patch(b, rest)  # type: ignore[no-any-return]


def _has(b: dict[str, Any], path: str) -> bool:
    try:
        jsonpointer.resolve_pointer(b, path)
    except jsonpointer.JsonPointerException:
        return False
    return True


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
    ops = plan.json_ops(body())
    assert {"op": "test", "path": "/metadata/finalizers", "value": None} in ops
    assert all(op["path"] != "/metadata/resourceVersion" for op in ops)
    patched = apply_ops(body(), ops)
    assert patched["metadata"]["finalizers"] == [RECORD_GUARD_FINALIZER]
    assert len(patched["metadata"]["ownerReferences"]) == 1


def test_an_object_created_with_guard_and_owner_reference_needs_no_first_sight_patch() -> None:
    """Created by our actions client or through the admission webhook: nothing to plan, nothing sent."""
    b = body([cond("Progressing", "True", "Queued")], finalizers=[RECORD_GUARD_FINALIZER])
    b["metadata"]["ownerReferences"] = [{"name": "r1-a0", "uid": "pu"}]
    plan = plan_patch(observe(b), guard=True, committed=True, parent_uid="pu")
    assert not plan
    assert plan.json_ops(b) == []


def test_adding_the_guard_extends_the_list_it_read_and_keeps_others_finalizers() -> None:
    b = body([cond("Progressing", "True", "Queued")], finalizers=["flyte.org/plugin-finalizer"])
    plan = plan_patch(observe(b), guard=True, committed=True, parent_uid=None)
    ops = plan.json_ops(b)
    assert ops[0] == {"op": "test", "path": "/metadata/finalizers", "value": ["flyte.org/plugin-finalizer"]}
    assert apply_ops(b, ops)["metadata"]["finalizers"] == [
        "flyte.org/plugin-finalizer",
        RECORD_GUARD_FINALIZER,
    ]
    # Another finalizer written meanwhile: the test fails (422) rather than lose it.
    meanwhile = body([cond("Progressing", "True", "Queued")], finalizers=["flyte.org/plugin-finalizer", "x"])
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply_ops(meanwhile, ops)


def test_a_status_write_in_between_never_fails_the_terminal_patch() -> None:
    """What made the resourceVersion-guarded patch lose its races: the executor's status writes."""
    b = body(
        [cond("Succeeded", "True", "Completed")],
        finalizers=["flyte.org/plugin-finalizer", RECORD_GUARD_FINALIZER],
        resourceVersion="7",
    )
    b["metadata"]["ownerReferences"] = [{"name": "r1-a0"}]
    plan = plan_patch(observe(b), guard=True, committed=True, parent_uid="x")
    ops = plan.json_ops(b)
    newer = copy.deepcopy(b)
    newer["metadata"]["resourceVersion"] = "8"
    newer["status"]["attempts"] = 2
    patched = apply_ops(newer, ops)
    assert patched["metadata"]["labels"][RECORDED_LABEL] == "true"
    assert patched["metadata"]["finalizers"] == ["flyte.org/plugin-finalizer"]


def test_terminal_label_only_after_commit_and_it_releases_the_guard() -> None:
    b = body(
        [cond("Succeeded", "True", "Completed")],
        finalizers=["flyte.org/plugin-finalizer", RECORD_GUARD_FINALIZER],
        labels={"flyte.org/run": "r1"},
    )
    b["metadata"]["ownerReferences"] = [{"name": "r1-a0"}]
    obs = observe(b)
    assert not plan_patch(obs, guard=True, committed=False, parent_uid="x")
    plan = plan_patch(obs, guard=True, committed=True, parent_uid="x")
    assert plan.label_recorded and plan.remove_guard and plan.owner_reference is None
    ops = plan.json_ops(b)
    assert ops == [
        {"op": "test", "path": "/metadata/finalizers/1", "value": RECORD_GUARD_FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/1"},
        {"op": "add", "path": "/metadata/labels/flyte.org~1terminal-status-recorded", "value": "true"},
    ]
    patched = apply_ops(b, ops)
    assert patched["metadata"]["labels"][RECORDED_LABEL] == "true"
    assert patched["metadata"]["labels"]["flyte.org/run"] == "r1", "the other labels stay"
    assert patched["metadata"]["finalizers"] == ["flyte.org/plugin-finalizer"]
    # The executor's finalizer went first meanwhile (the guard moved to index 0): the test fails,
    # never removing the wrong entry.
    moved = copy.deepcopy(b)
    moved["metadata"]["finalizers"] = [RECORD_GUARD_FINALIZER]
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply_ops(moved, ops)
    assert plan.json_ops(moved)[0] == {
        "op": "test",
        "path": "/metadata/finalizers/0",
        "value": RECORD_GUARD_FINALIZER,
    }


def test_a_guard_plan_made_anew_on_a_newer_body_adds_no_guard_to_a_finished_object() -> None:
    # After a failed test the plan's ops are made again on the object read again.
    plan = plan_patch(observe(body()), guard=True, committed=True, parent_uid="pu")
    assert plan.add_guard
    for newer in (
        body([cond("Succeeded", "True", "Completed")]),
        body([cond("Progressing", "True", "Executing")], labels={RECORDED_LABEL: "true"}),
        body([cond("Progressing", "True", "Executing")], deletionTimestamp=T0),
    ):
        patched = apply_ops(newer, plan.json_ops(newer))
        assert RECORD_GUARD_FINALIZER not in patched["metadata"].get("finalizers", [])
        assert len(patched["metadata"]["ownerReferences"]) == 1
    running = body([cond("Progressing", "True", "Executing")])
    assert apply_ops(running, plan.json_ops(running))["metadata"]["finalizers"] == [RECORD_GUARD_FINALIZER]


def test_with_the_guard_on_a_terminal_plan_tests_that_no_guard_came_after_its_observation() -> None:
    seen = body([cond("Succeeded", "True", "Completed")])
    plan = plan_patch(observe(seen), guard=True, committed=True, parent_uid=None)
    assert plan.label_recorded and plan.remove_guard and plan.touches_finalizers
    ops = plan.json_ops(seen)
    assert ops[0] == {"op": "test", "path": "/metadata/finalizers", "value": None}
    assert apply_ops(seen, ops)["metadata"]["labels"][RECORDED_LABEL] == "true"
    # The first-sight patch landed after this observation: the label is not set over a guard it
    # did not see (its test fails); made anew on the fresh body, it releases the guard too.
    fresher = body([cond("Succeeded", "True", "Completed")], finalizers=[RECORD_GUARD_FINALIZER])
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply_ops(fresher, ops)
    patched = apply_ops(fresher, plan.json_ops(fresher))
    assert patched["metadata"]["labels"][RECORDED_LABEL] == "true"
    assert patched["metadata"]["finalizers"] == []
    unguarded = plan_patch(observe(seen), guard=False, committed=True, parent_uid=None)
    assert not unguarded.touches_finalizers


def test_nothing_is_sent_when_the_object_already_has_the_planned_shape() -> None:
    done = body([cond("Succeeded", "True", "Completed")], labels={RECORDED_LABEL: "true"})
    plan = plan_patch(
        observe(body([cond("Succeeded", "True", "Completed")])), guard=True, committed=True, parent_uid=None
    )
    assert plan.json_ops(done) == []


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
    with pytest.raises(ValueError, match="precise JSON patch"):
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


def test_sharded_the_shard_label_rides_only_on_a_first_sight_change() -> None:
    """The label lets the API server filter other replicas' watches; it is never a write of its own."""
    from taskaction_operator.crd.shards import SHARD_LABEL

    b = body([cond("Progressing", "True", "Queued")], labels={"flyte.org/run": "r1"})
    plan = plan_patch(observe(b), guard=True, committed=True, parent_uid="pu", shard_label="7")
    patched = apply_ops(b, plan.json_ops(b))
    assert patched["metadata"]["labels"] == {"flyte.org/run": "r1", SHARD_LABEL: "7"}
    assert patched["metadata"]["finalizers"] == [RECORD_GUARD_FINALIZER]
    unlabelled = body([cond("Progressing", "True", "Queued")])
    patched = apply_ops(unlabelled, plan.json_ops(unlabelled))
    assert patched["metadata"]["labels"] == {SHARD_LABEL: "7"}
    # Created with guard and owner (our actions client): nothing at all, the label neither.
    b["metadata"]["finalizers"] = [RECORD_GUARD_FINALIZER]
    b["metadata"]["ownerReferences"] = [{"name": "r1-a0", "uid": "pu"}]
    assert not plan_patch(observe(b), guard=True, committed=True, parent_uid="pu", shard_label="7")
    # Guard off, owner only: the merge patch carries it.
    b = body([cond("Progressing", "True", "Queued")])
    merge = plan_patch(
        observe(b), guard=False, committed=True, parent_uid="pu", shard_label="7"
    ).as_merge_patch()
    assert merge["metadata"]["labels"] == {SHARD_LABEL: "7"}
    # Already labelled: not again.
    b["metadata"]["labels"] = {SHARD_LABEL: "7"}
    assert (
        plan_patch(observe(b), guard=True, committed=True, parent_uid="pu", shard_label="7").shard_label
        is None
    )
