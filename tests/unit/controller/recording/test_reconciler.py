"""The reconciler's patch planning across a stream of events of one object: events that were already
in flight when a patch went out do not make it plan the same ownerReference or terminal patch again.

The sink stands at the database boundary (every submission is committed at once); the parent is
announced through its own event, and the API (a fake) holds it too: the uid a child's ownerReference
carries is always read from the API first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from taskaction_operator.controller.recording.adopter import OrphanAdopter
from taskaction_operator.controller.recording.index import ActionIndex
from taskaction_operator.controller.recording.reconciler import ActionReconciler, Outcome
from taskaction_operator.controller.recording.recorder import Recorder
from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER
from taskaction_operator.crd.observe import observe
from tests.factories import taskaction_body

T0 = "2026-11-23T10:00:00Z"


async def committed(*, actions: Sequence[Any], events: Sequence[Any], updates: Sequence[Any]) -> None:
    return None


class ParentKube:
    """The API server holding the one parent the tests announce, r1-a0 (uid u-a0)."""

    async def get_taskaction(self, namespace: str, name: str) -> dict[str, Any] | None:
        return body("a0", None, "Executing") if name == "r1-a0" else None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def body(name: str, parent: str | None, reason: str | None = None, **meta: Any) -> dict[str, Any]:
    conditions = []
    if reason == "Completed":
        conditions.append({"type": "Succeeded", "status": "True", "reason": reason, "lastTransitionTime": T0})
    elif reason:
        conditions.append(
            {"type": "Progressing", "status": "True", "reason": reason, "lastTransitionTime": T0}
        )
    return taskaction_body(
        name, parent, conditions=conditions, **{"uid": f"u-{name}", "creationTimestamp": T0, **meta}
    )


def reconciler(recorder: Any, *, guard: bool, clock: Clock) -> ActionReconciler:
    index = ActionIndex(ParentKube())  # type: ignore[arg-type]
    adopter = OrphanAdopter(index, ParentKube())  # type: ignore[arg-type]
    return ActionReconciler(recorder, index, adopter, guard=guard, clock=clock)


class Handler:
    """What the kopf handler does with one event: observe the body once, hand the reconciler that."""

    def __init__(self, rec: ActionReconciler) -> None:
        self.rec = rec

    async def handle(self, b: dict[str, Any], *, deleted: bool) -> Outcome:
        return await self.rec.handle(observe(b, deleted=deleted), deleted=deleted)


@pytest.fixture
async def recorder() -> Any:
    rec: Recorder[Any, Any, Any] = Recorder(committed, is_temporary=lambda exc: False)
    rec.start()
    yield rec
    await rec.stop()


@pytest.mark.parametrize("guard", [False, True])
async def test_stale_events_do_not_plan_the_same_patch_twice(recorder: Any, guard: bool) -> None:
    clock = Clock()
    rec = Handler(reconciler(recorder, guard=guard, clock=clock))
    await rec.handle(body("a0", None, "Executing"), deleted=False)

    first = await rec.handle(body("a1", "a0"), deleted=False)
    assert first.plan.owner_reference is not None
    # the executor's writes that were already on their way still show no ownerReference
    stale = await rec.handle(body("a1", "a0", "Queued"), deleted=False)
    assert stale.plan.owner_reference is None
    clock.now += 5  # long after: the patch evidently did not land; plan it again
    again = await rec.handle(body("a1", "a0", "Initializing"), deleted=False)
    assert again.plan.owner_reference is not None

    owner = [{"name": "r1-a0", "uid": "u-a0"}]
    guarded = {"finalizers": [RECORD_GUARD_FINALIZER]} if guard else {}
    done = await rec.handle(body("a1", "a0", "Completed", ownerReferences=owner, **guarded), deleted=False)
    assert done.plan.label_recorded and done.plan.remove_guard == guard
    late = await rec.handle(body("a1", "a0", "Completed", ownerReferences=owner, **guarded), deleted=False)
    assert not late.plan.label_recorded and not late.plan.remove_guard
    assert not late.plan


async def test_a_deleting_object_always_gets_its_guard_released(recorder: Any) -> None:
    clock = Clock()
    rec = Handler(reconciler(recorder, guard=True, clock=clock))
    guarded = {"finalizers": [RECORD_GUARD_FINALIZER], "ownerReferences": [{"name": "r1-a0", "uid": "u"}]}
    done = await rec.handle(body("a1", "a0", "Completed", **guarded), deleted=False)
    assert done.plan.remove_guard
    deleting = await rec.handle(body("a1", "a0", "Completed", deletionTimestamp=T0, **guarded), deleted=False)
    assert deleting.plan.remove_guard and not deleting.plan.label_recorded


class Sink:
    """The database boundary, remembering what was submitted."""

    def __init__(self) -> None:
        self.actions: list[Any] = []
        self.events: list[Any] = []
        self.updates: list[Any] = []

    async def __call__(
        self, *, actions: Sequence[Any], events: Sequence[Any], updates: Sequence[Any]
    ) -> None:
        self.actions += actions
        self.events += events
        self.updates += updates


@pytest.mark.parametrize(
    "change",
    [{"runName": "r2"}, {"actionName": "a9"}, {"project": "q"}, {"domain": "e"}, {"parentActionName": "a7"}],
)
async def test_a_changed_identity_of_the_same_object_is_refused_not_recorded(change: dict[str, str]) -> None:
    """Flyte's own CRD lets spec's identity change after creation (ours refuses it): the operator
    warns, writes nothing for the new identity, labels nothing, and keeps the record it has."""
    sink = Sink()
    rec_: Recorder[Any, Any, Any] = Recorder(sink, is_temporary=lambda exc: False)
    rec_.start()
    try:
        rec = Handler(reconciler(rec_, guard=False, clock=Clock()))
        owner = {"ownerReferences": [{"name": "r1-a0", "uid": "u-a0"}]}
        await rec.handle(body("a1", "a0", "Executing", **owner), deleted=False)
        written = (len(sink.actions), len(sink.events), len(sink.updates))
        changed = body("a1", "a0", "Completed", **owner)
        changed["spec"].update(change)
        out = await rec.handle(changed, deleted=False)
        assert [reason for reason, _ in out.warnings] == ["IdentityChanged"]
        assert not out.committed and not out.plan.label_recorded
        assert (len(sink.actions), len(sink.events), len(sink.updates)) == written
        again = await rec.handle(changed, deleted=False)  # warned once, still refused
        assert again.warnings == () and not again.committed and not again.plan
        assert (len(sink.actions), len(sink.events), len(sink.updates)) == written
    finally:
        await rec_.stop()


class Kube:
    """The API server's current TaskActions, by (namespace, name)."""

    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.objects = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in bodies}
        self.reads = 0

    async def get_taskaction(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        return self.objects.get((namespace, name))


async def test_a_re_created_parent_gives_new_children_its_new_uid(recorder: Any) -> None:
    """The index learnt the parent's old uid; the parent was deleted and created again under the same
    name while its DELETED event never reached us. A child's ownerReference to the old uid would get
    it garbage-collected: the uid is checked against the API before it is planned."""
    kube = Kube(body("a0", None, "Executing", uid="u-new"))
    index = ActionIndex(kube)  # type: ignore[arg-type]
    rec = Handler(ActionReconciler(recorder, index, OrphanAdopter(index, kube), guard=False, clock=Clock()))  # type: ignore[arg-type]
    await rec.handle(body("a0", None, "Executing", uid="u-old"), deleted=False)
    out = await rec.handle(body("a1", "a0"), deleted=False)
    assert out.plan.owner_reference is not None
    assert out.plan.owner_reference["uid"] == "u-new"
    # and the index now says so
    assert (await index.find("ns", "r1-a0")) is not None
    assert (await index.find("ns", "r1-a0")).uid == "u-new"  # type: ignore[union-attr]


async def test_the_index_follows_a_parent_seen_again_with_another_uid(recorder: Any) -> None:
    kube = Kube()
    index = ActionIndex(kube)  # type: ignore[arg-type]
    index.saw(observe(body("a0", None, "Executing", uid="u-1")), deleted=False)
    index.saw(observe(body("a0", None, "Executing", uid="u-2")), deleted=False)
    known = await index.find("ns", "r1-a0")
    assert known is not None and known.uid == "u-2"
    assert kube.reads == 0


class FailingKube:
    """The API server answering the parent lookup with a 500 (or a 429) after our COMMIT."""

    async def get_taskaction(self, namespace: str, name: str) -> dict[str, Any] | None:
        from taskaction_operator.k8s.errors import KubeError

        raise KubeError(500, "Internal Server Error", "etcdserver: request timed out")


async def test_a_failed_parent_lookup_after_commit_still_plans_the_rest_and_retries_the_owner(
    recorder: Any,
) -> None:
    """The rows are committed; the lookup of the parent's uid fails. The event's patch must not be
    lost with it (a terminal event is the object's last: its label would never come), and the
    ownerReference is retried in the background."""
    kube = FailingKube()
    index = ActionIndex(kube)  # type: ignore[arg-type]
    adopter = OrphanAdopter(index, kube, parent_wait=0.01)  # type: ignore[arg-type]
    rec = Handler(ActionReconciler(recorder, index, adopter, guard=False, clock=Clock()))
    out = await rec.handle(body("a1", "a0", "Completed"), deleted=False)
    assert out.committed and out.plan.label_recorded
    assert out.plan.owner_reference is None
    assert adopter.pending == 1
    await adopter.close()


async def test_an_accepted_first_sight_patch_is_never_planned_again_however_late_the_events(
    recorder: Any,
) -> None:
    """Under a long backlog, events older than the resend window still show the object without its
    ownerReference and guard; once the handler's patch of them was accepted, they are not planned
    again (each would be a write, or one rejected on its test of the finalizers)."""
    clock = Clock()
    rec = Handler(reconciler(recorder, guard=True, clock=clock))
    await rec.handle(body("a0", None, "Executing"), deleted=False)
    first = await rec.handle(body("a1", "a0"), deleted=False)
    assert first.plan.owner_reference is not None and first.plan.add_guard
    rec.rec.written("u-a1", first.plan)
    clock.now += 60
    late = await rec.handle(body("a1", "a0", "Initializing"), deleted=False)
    assert late.plan.owner_reference is None and not late.plan.add_guard
    assert not late.plan


async def test_the_memory_of_runs_whose_shard_went_elsewhere_is_dropped(recorder: Any) -> None:
    rec = reconciler(recorder, guard=True, clock=Clock())
    handler = Handler(rec)
    await handler.handle(body("a0", None, "Executing"), deleted=False)
    other = taskaction_body("a0", None, run="r2", uid="u-r2", creationTimestamp=T0)
    await handler.handle(other, deleted=False)
    assert rec.tracked == 2
    assert rec.forget(lambda run: run.name == "r1") == 1
    assert rec.tracked == 1 and set(rec.unfinished()) == {"u-a0"}
