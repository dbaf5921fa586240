"""The kopf handler on kopf's own objects: what it hands the reconciler, and how the plan it gets back
reaches the API server: as kopf's merge patch, or as the precise JSON patch the handler sends itself
when finalizers change (never kopf's resourceVersion-guarded ``patch.fns``).

The body and the patch are ``kopf.Body`` and ``kopf.Patch`` as kopf builds them for an event; the
reconciler is a fake that plans with the real ``plan_patch``, as for a committed first write whose
parent is known; the API calls go to a fake of ``KubeOps`` that records the JSON patches sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import kopf
import pytest

from taskaction_operator import metrics
from taskaction_operator.controller.handlers import record_taskaction
from taskaction_operator.controller.recording.patch_plan import PatchPlan, plan_patch
from taskaction_operator.controller.recording.reconciler import Outcome, Warning_
from taskaction_operator.controller.runtime import Runtime
from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_LABEL, owner_reference
from taskaction_operator.crd.observe import Observation
from taskaction_operator.k8s.errors import Invalid
from taskaction_operator.model import ActionPhase
from tests.factories import taskaction_body

T0 = "2026-11-23T10:00:00Z"
PARENT_UID = "u-a0"
OWNER = owner_reference("r1-a0", PARENT_UID)
QUEUED = [{"type": "Progressing", "status": "True", "reason": "Queued", "lastTransitionTime": T0}]
SUCCEEDED = [{"type": "Succeeded", "status": "True", "reason": "Completed", "lastTransitionTime": T0}]


class FakeReconciler:
    """Records what it is handed; answers with the plan of a commit (or the outcome it is given)."""

    def __init__(self, *, guard: bool, outcome: Outcome | None = None) -> None:
        self.guard = guard
        self.outcome = outcome
        self.calls: list[tuple[Observation, bool]] = []
        self.writes: list[tuple[str, PatchPlan]] = []

    def written(self, uid: str, plan: PatchPlan) -> None:
        self.writes.append((uid, plan))

    def wrote_guard(self, uid: str) -> bool:
        return any(u == uid and p.add_guard for u, p in self.writes)

    async def handle(self, obs: Observation, *, deleted: bool) -> Outcome:
        self.calls.append((obs, deleted))
        if self.outcome is not None:
            return self.outcome
        return Outcome(plan_patch(obs, guard=self.guard, committed=True, parent_uid=PARENT_UID))


class Warnings:
    def __init__(self) -> None:
        self.posted: list[Warning_] = []

    def __call__(self, obj: Any, *, reason: str, message: str) -> None:
        self.posted.append((reason, message))


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> Warnings:
    posted = Warnings()
    monkeypatch.setattr(kopf, "warn", posted)
    return posted


class PatchKube:
    """``KubeOps``' GET and JSON patch: the patches sent recorded; the object as ``current`` has it."""

    def __init__(self, current: dict[str, Any] | None = None, *, refuse: int = 0) -> None:
        self.current = current
        self.refuse = refuse
        self.reads = 0
        self.sent: list[list[dict[str, Any]]] = []

    async def get_taskaction(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.current

    async def json_patch_taskaction(
        self, namespace: str, name: str, ops: list[dict[str, Any]], *, status: bool = False
    ) -> dict[str, Any] | None:
        self.sent.append(ops)
        if self.refuse:
            self.refuse -= 1
            raise Invalid(422, "Invalid", "the test failed")
        return {"metadata": {"name": name}}


def runtime_with(reconciler: FakeReconciler, kube: Any = None) -> Runtime:
    """A Runtime whose reconciler (and kube) are the fakes; the handler needs nothing else of it."""
    unused: dict[str, Any] = {f.name: None for f in fields(Runtime) if f.init and f.name != "tasks"}
    unused["reconciler"] = reconciler
    unused["kube"] = kube if kube is not None else PatchKube()
    return Runtime(**unused)


def raw(conditions: Sequence[dict[str, str]] = QUEUED, action: str = "a1", **meta: Any) -> dict[str, Any]:
    return taskaction_body(
        action,
        "a0" if action != "a0" else None,
        conditions=conditions,
        **{"uid": f"u-{action}", "resourceVersion": "7", "creationTimestamp": T0, **meta},
    )


async def handle(
    reconciler: FakeReconciler,
    body_raw: dict[str, Any],
    event_type: str | None,
    kube: PatchKube | None = None,
) -> kopf.Patch:
    """One event through the handler, with the body and patch kopf would pass; returns kopf's patch
    (the JSON patches the handler sent itself are in ``kube.sent``)."""
    body = kopf.Body(body_raw)
    patch = kopf.Patch(body=body)
    event: dict[str, Any] = {"type": event_type, "object": body_raw}
    memo = kopf.Memo(runtime=runtime_with(reconciler, kube))
    await record_taskaction(event=event, body=body, patch=patch, memo=memo)  # type: ignore[arg-type]
    return patch


def counted(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_first_sight_with_the_guard_is_one_precise_json_patch(warnings: Warnings) -> None:
    reconciler = FakeReconciler(guard=True)
    kube = PatchKube()
    written = counted("taskaction_api_writes_total", kind="owner+guard")
    patch = await handle(reconciler, raw(), "ADDED", kube)

    ((obs, deleted),) = reconciler.calls
    assert not deleted and obs.phase is ActionPhase.QUEUED and obs.name == "r1-a1"
    assert not patch and patch.fns == [], "finalizers never go through kopf's patch"
    assert kube.sent == [
        [
            {"op": "add", "path": "/metadata/ownerReferences", "value": [OWNER]},
            {"op": "test", "path": "/metadata/finalizers", "value": None},
            {"op": "add", "path": "/metadata/finalizers", "value": [RECORD_GUARD_FINALIZER]},
        ]
    ]
    assert counted("taskaction_api_writes_total", kind="owner+guard") == written + 1
    assert [uid for uid, _ in reconciler.writes] == ["u-a1"], "told, so that it is not planned again"
    assert warnings.posted == []


async def test_first_sight_of_an_object_created_with_guard_and_owner_sends_nothing(
    warnings: Warnings,
) -> None:
    kube = PatchKube()
    patch = await handle(
        FakeReconciler(guard=True),
        raw(ownerReferences=[OWNER], finalizers=[RECORD_GUARD_FINALIZER]),
        "ADDED",
        kube,
    )
    assert not patch and kube.sent == []


async def test_a_rejected_patch_is_counted_and_made_anew_from_a_fresh_read(warnings: Warnings) -> None:
    """The executor's finalizer went first between the event and the patch: the guard's index moved."""
    done = raw(SUCCEEDED, ownerReferences=[OWNER], finalizers=["other", RECORD_GUARD_FINALIZER])
    fresh = raw(SUCCEEDED, ownerReferences=[OWNER], finalizers=[RECORD_GUARD_FINALIZER])
    kube = PatchKube(fresh, refuse=1)
    rejected = counted("taskaction_api_writes_rejected_total", kind="release+label")
    await handle(FakeReconciler(guard=True), done, "MODIFIED", kube)
    assert kube.reads == 1 and len(kube.sent) == 2
    assert kube.sent[1][:2] == [
        {"op": "test", "path": "/metadata/finalizers/0", "value": RECORD_GUARD_FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    assert counted("taskaction_api_writes_rejected_total", kind="release+label") == rejected + 1


async def test_first_sight_without_the_guard_is_a_merge_patch(warnings: Warnings) -> None:
    writes = counted("taskaction_api_writes_total", kind="owner")
    patch = await handle(FakeReconciler(guard=False), raw(), None)

    assert dict(patch) == {"metadata": {"ownerReferences": [OWNER]}}
    assert patch.fns == []
    assert counted("taskaction_api_writes_total", kind="owner") == writes + 1


async def test_terminal_without_the_guard_is_a_merge_patch_of_the_label(warnings: Warnings) -> None:
    done = raw(SUCCEEDED, ownerReferences=[OWNER])
    patch = await handle(FakeReconciler(guard=False), done, "MODIFIED")

    assert dict(patch) == {"metadata": {"labels": {RECORDED_LABEL: "true"}}}
    assert patch.fns == []


async def test_terminal_with_the_guard_labels_and_releases_in_one_precise_patch(warnings: Warnings) -> None:
    done = raw(SUCCEEDED, ownerReferences=[OWNER], finalizers=["other", RECORD_GUARD_FINALIZER])
    kube = PatchKube()
    patch = await handle(FakeReconciler(guard=True), done, "MODIFIED", kube)

    assert not patch and patch.fns == []
    ((ops),) = kube.sent
    assert ops[:2] == [
        {"op": "test", "path": "/metadata/finalizers/1", "value": RECORD_GUARD_FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/1"},
    ]
    assert ops[-1]["op"] == "add" and ops[-1]["value"] in ("true", {RECORDED_LABEL: "true"})
    assert all(op["path"] != "/metadata/resourceVersion" for op in ops)


async def test_deleted_event_is_observed_as_deleted_and_patches_nothing(warnings: Warnings) -> None:
    guarded = raw(QUEUED, ownerReferences=[OWNER], finalizers=[RECORD_GUARD_FINALIZER])
    reconciler = FakeReconciler(guard=True)
    patch = await handle_with_kube(reconciler, GetKube(None), guarded, "DELETED")  # gone: a deletion

    ((obs, deleted),) = reconciler.calls
    assert deleted and obs.deleting and obs.phase is ActionPhase.ABORTED
    planned = plan_patch(obs, guard=True, committed=True, parent_uid=PARENT_UID)
    assert planned.remove_guard, "the plan would release the guard ..."
    assert not patch, "... but a DELETED object is gone: nothing is patched"
    assert patch.fns == []


async def test_an_invalid_body_is_warned_about_and_never_reaches_the_reconciler(warnings: Warnings) -> None:
    invalid = raw()
    del invalid["spec"]["runName"]
    reconciler = FakeReconciler(guard=True)
    received = counted("taskaction_events_received_total", type="ADDED")
    patch = await handle(reconciler, invalid, "ADDED")

    assert reconciler.calls == []
    assert not patch
    ((reason, message),) = warnings.posted
    assert reason == "InvalidTaskAction" and "runName" in message
    assert counted("taskaction_events_received_total", type="ADDED") == received + 1


async def test_a_failed_record_posts_its_warning_and_is_not_counted_as_recorded(warnings: Warnings) -> None:
    refused: Outcome = Outcome(PatchPlan(), (("RecordFailed", "refused"),), committed=False)
    recorded = counted("taskaction_events_recorded_total", type="MODIFIED")
    patch = await handle(FakeReconciler(guard=True, outcome=refused), raw(), "MODIFIED")

    assert warnings.posted == [("RecordFailed", "refused")]
    assert not patch
    assert counted("taskaction_events_recorded_total", type="MODIFIED") == recorded


class Exploding(FakeReconciler):
    async def handle(self, obs: Observation, *, deleted: bool) -> Outcome:
        raise RuntimeError("a bug")


DELETING = {"deletionTimestamp": T0, "finalizers": ["other", RECORD_GUARD_FINALIZER]}


def release(index: int) -> list[dict[str, Any]]:
    path = f"/metadata/finalizers/{index}"
    return [{"op": "test", "path": path, "value": RECORD_GUARD_FINALIZER}, {"op": "remove", "path": path}]


@pytest.mark.parametrize(
    ("case", "reason"),
    [("refused", "record-failed"), ("invalid", "invalid"), ("error", "error")],
)
async def test_a_deleting_object_whose_end_cannot_be_recorded_gets_its_guard_back(
    warnings: Warnings, case: str, reason: str
) -> None:
    """Never held forever (and with it the namespace): the database refuses the record for good,
    the body cannot be read, or recording fails for a reason nobody foresaw. The guard is released
    with a Warning and counted."""
    body = raw(QUEUED, ownerReferences=[OWNER], **DELETING)
    reconciler: FakeReconciler = FakeReconciler(guard=True)
    if case == "refused":
        reconciler.outcome = Outcome(PatchPlan(), (("RecordFailed", "NUL byte"),), committed=False)
    elif case == "invalid":
        del body["spec"]["runName"]
    else:
        reconciler = Exploding(guard=True)
    given_up = counted("taskaction_guards_released_unrecorded_total", reason=reason)

    kube = PatchKube()
    await handle(reconciler, body, "MODIFIED", kube)

    assert kube.sent == [release(1)]
    assert "GuardReleased" in [r for r, _ in warnings.posted]
    assert counted("taskaction_guards_released_unrecorded_total", reason=reason) == given_up + 1


async def test_a_deleting_object_keeps_its_guard_while_another_finalizer_runs(warnings: Warnings) -> None:
    """Committed, not refused: no GuardReleased. And while another finalizer (Flyte's executor's)
    still runs, the action's end is not known: the guard stays until it is."""
    body = raw(QUEUED, ownerReferences=[OWNER], **DELETING)
    kube = PatchKube()
    patch = await handle(FakeReconciler(guard=True), body, "MODIFIED", kube)
    assert "GuardReleased" not in [r for r, _ in warnings.posted]
    assert not patch.fns and not patch and kube.sent == []
    body["metadata"]["finalizers"] = [RECORD_GUARD_FINALIZER]  # the other one is done
    await handle(FakeReconciler(guard=True), body, "MODIFIED", kube)
    assert kube.sent == [release(0)]  # its ABORTED end


class GetKube:
    """The API server's answer to a GET of the object (None: it is gone)."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        self.current = current
        self.reads = 0

    async def get_taskaction(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.current


async def handle_with_kube(
    reconciler: FakeReconciler, kube: GetKube, body_raw: dict[str, Any], event_type: str
) -> kopf.Patch:
    body = kopf.Body(body_raw)
    patch = kopf.Patch(body=body)
    runtime = runtime_with(reconciler)
    runtime.kube = kube  # type: ignore[assignment]
    await record_taskaction(
        event={"type": event_type, "object": body_raw},
        body=body,
        patch=patch,
        memo=kopf.Memo(runtime=runtime),
    )  # type: ignore[arg-type]
    return patch


async def test_a_deleted_event_of_an_unfinished_object_that_still_exists_records_no_abort(
    warnings: Warnings,
) -> None:
    """Someone labelled a running TaskAction terminal-status-recorded by hand: it leaves the watch's
    label selector, which the watch reports as DELETED, with no deletionTimestamp. It was not deleted:
    a GET says so, and nothing is recorded (upstream would record ABORTED)."""
    running = raw(QUEUED, ownerReferences=[OWNER])
    reconciler = FakeReconciler(guard=True)
    kube = GetKube(running)
    await handle_with_kube(reconciler, kube, running, "DELETED")
    assert kube.reads == 1 and reconciler.calls == []


async def test_a_deleted_event_of_an_object_that_is_gone_is_recorded_aborted(warnings: Warnings) -> None:
    running = raw(QUEUED, ownerReferences=[OWNER])
    reconciler = FakeReconciler(guard=True)
    await handle_with_kube(reconciler, GetKube(None), running, "DELETED")
    ((obs, deleted),) = reconciler.calls
    assert deleted and obs.phase is ActionPhase.ABORTED
    # Re-created under the same name meanwhile: the deleted one is gone all the same.
    reconciler = FakeReconciler(guard=True)
    await handle_with_kube(reconciler, GetKube(raw(QUEUED, uid="u-new")), running, "DELETED")
    assert len(reconciler.calls) == 1


async def test_a_deleted_event_with_a_deletion_timestamp_or_a_terminal_phase_needs_no_read(
    warnings: Warnings,
) -> None:
    kube = GetKube(None)
    await handle_with_kube(FakeReconciler(guard=True), kube, raw(QUEUED, deletionTimestamp=T0), "DELETED")
    await handle_with_kube(FakeReconciler(guard=True), kube, raw(SUCCEEDED), "DELETED")
    assert kube.reads == 0


async def test_a_release_planned_on_an_event_older_than_our_guard_reads_the_object_first(
    warnings: Warnings,
) -> None:
    """The executor finished before the operator first saw the action: the first-sight patch added
    the guard, and the terminal event, older than that patch, does not show it. The object is read
    first (a GET), not patched on that event's list (a rejected write)."""
    reconciler = FakeReconciler(guard=True)
    reconciler.writes.append(("u-a1", PatchPlan(add_guard=True)))
    fresh = raw(SUCCEEDED, ownerReferences=[OWNER], finalizers=[RECORD_GUARD_FINALIZER])
    kube = PatchKube(fresh)
    await handle(reconciler, raw(SUCCEEDED, ownerReferences=[OWNER]), "MODIFIED", kube)
    assert kube.reads == 1
    ((ops),) = kube.sent
    assert ops[:2] == release(0)
