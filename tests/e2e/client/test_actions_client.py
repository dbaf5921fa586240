"""The actions client against the real API server: what Enqueue creates, PutStatus under real conflicts,
live reads, abort with garbage collection, and Subscribe through a real watch with a slow consumer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from taskaction_operator.client.actions_client import (
    SENTINEL,
    ActionExistsError,
    ActionNotFoundError,
    ActionsClient,
)
from taskaction_operator.client.run_file import parse_run_file
from taskaction_operator.client.updates import ActionUpdate, Subscription
from taskaction_operator.client.validate import InvalidActionError
from taskaction_operator.crd.names import TERMINAL_LABELS
from taskaction_operator.devtools.executor import SUCCESS_PATH, StandInExecutor
from taskaction_operator.k8s import KubeOps
from taskaction_operator.model import ActionId, ActionPhase, CatalogCacheStatus, RunId
from tests.e2e.client.conftest import DOMAIN, actions_of, condition, task
from tests.e2e.operator import until

pytestmark = pytest.mark.cluster


def run_spec(project: str) -> Any:
    data = {"project": project, "domain": DOMAIN, "run": "x", "actions": [task("a0")],
            "runSpec": {"labels": {"team": "ml"}, "annotations": {"owner": "sdk"}, "env": {"LOG": "20"},
                        "interruptible": True}}  # fmt: skip
    return parse_run_file(data).run_spec


async def test_enqueue_creates_the_tree_with_owner_references_at_creation(
    client: ActionsClient, kube: KubeOps, namespace: str
) -> None:
    a0, a1, c1, a11 = actions_of(
        namespace, "r1", task("a0"), task("a1", "a0"), condition("c1", "a0"), task("a1-1", "a1")
    )
    root = await client.enqueue(a0, run_spec(namespace))
    # The parent finished and was labelled by the executor and the recorder before its child came.
    terminal = {label: "x" for label in TERMINAL_LABELS}
    await kube.merge_patch_taskaction(namespace, "r1-a0", {"metadata": {"labels": terminal}})
    child = await client.enqueue(a1)
    cond = await client.enqueue(c1)
    grandchild = await client.enqueue(a11)

    assert root["metadata"]["name"] == "r1-a0" and "ownerReferences" not in root["metadata"]
    assert root["metadata"]["labels"]["team"] == "ml" and root["spec"]["envVars"] == {"LOG": "20"}
    for obj, parent in [(child, root), (cond, root), (grandchild, child)]:
        # Set by the create itself (the response of the POST), not patched in later.
        assert obj["metadata"]["ownerReferences"] == [
            {"apiVersion": "flyte.org/v1", "kind": "TaskAction", "name": parent["metadata"]["name"],
             "uid": parent["metadata"]["uid"], "blockOwnerDeletion": True}
        ]  # fmt: skip
        assert obj["metadata"]["resourceVersion"]
    assert child["metadata"]["labels"]["team"] == "ml"
    assert child["metadata"]["annotations"] == {"owner": "sdk"}
    assert child["spec"]["interruptible"] is True and child["spec"]["envVars"] == {"LOG": "20"}
    assert not TERMINAL_LABELS & set(child["metadata"]["labels"])
    assert grandchild["metadata"]["labels"]["team"] == "ml"
    assert cond["spec"]["actionType"] == "condition" and "team" not in cond["metadata"]["labels"]
    names = sorted(
        o["metadata"]["name"] for o in await client.list_run_actions(RunId(namespace, DOMAIN, "r1"))
    )
    assert names == ["r1-a0", "r1-a1", "r1-a1-1", "r1-c1"]


async def test_task_already_exists_is_an_error_and_a_condition_is_idempotent(
    client: ActionsClient, namespace: str
) -> None:
    a0, c1 = actions_of(namespace, "r2", task("a0"), condition("c1", "a0"))
    await client.enqueue(a0)
    first = await client.enqueue(c1)
    with pytest.raises(ActionExistsError, match="r2-a0: already exists"):
        await client.enqueue(a0)
    again = await client.enqueue(c1)
    assert again["metadata"]["uid"] == first["metadata"]["uid"]


async def test_missing_parent_and_invalid_actions_create_nothing(
    client: ActionsClient, kube: KubeOps, namespace: str
) -> None:
    (a0,) = actions_of(namespace, "r3", task("a0"))
    orphan = type(a0)()
    orphan.CopyFrom(a0)
    orphan.action_id.name, orphan.parent_action_name = "a5", "a4"
    with pytest.raises(ActionNotFoundError, match="parent TaskAction r3-a4: not found"):
        await client.enqueue(orphan)
    bad = type(a0)()
    bad.CopyFrom(a0)
    bad.action_id.run.name = "R3_bad"
    with pytest.raises(InvalidActionError, match="DNS-1035"):
        await client.enqueue(bad)
    assert await kube.list_taskactions(namespace) == []
    # Validation comes before any API call: a client on a namespace that does not exist leaves it so.
    ghost = f"ta-ghost-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidActionError):
        await ActionsClient(kube, ghost).enqueue(bad)
    with pytest.raises(ApiException) as info:
        await asyncio.to_thread(kube.core.read_namespace, ghost)
    assert info.value.status == 404


async def test_put_status_retries_a_real_conflict(
    client: ActionsClient, kube: KubeOps, namespace: str
) -> None:
    (a0,) = actions_of(namespace, "r4", task("a0"))
    await client.enqueue(a0)
    aid = ActionId.of(namespace, DOMAIN, "r4", "a0")

    class RacingKube(KubeOps):
        """The real API, with another writer changing the object right after each of our reads."""

        racing = 2

        async def get_taskaction(self, ns: str, name: str) -> dict[str, Any] | None:
            obj = await super().get_taskaction(ns, name)
            if self.racing > 0:
                self.racing -= 1
                await super().merge_patch_taskaction(
                    ns, name, {"status": {"pluginPhase": f"race-{self.racing}"}}, status=True
                )
            return obj

    racing = ActionsClient(RacingKube(kube.api_client), namespace)
    result = await racing.put_status(aid, 2, CatalogCacheStatus.CACHE_HIT)
    assert result.changed and result.conflicts == 2
    obj = await client.get_task_action(aid)
    assert (obj["status"]["attempts"], obj["status"]["cacheStatus"]) == (2, 2)
    assert obj["status"]["pluginPhase"] == "race-0"  # the other writer's change survived
    assert not (await client.put_status(aid, 2, CatalogCacheStatus.CACHE_HIT)).changed
    with pytest.raises(ActionNotFoundError):
        await client.put_status(ActionId.of(namespace, DOMAIN, "r4", "zz"), 1, 0)


async def test_list_child_actions_abort_and_cascade(
    client: ActionsClient, kube: KubeOps, namespace: str
) -> None:
    for action in actions_of(
        namespace, "r5", task("a0"), task("a1", "a0"), task("a2", "a0"), task("a3", "a1")
    ):
        await client.enqueue(action)
    kids = await client.list_child_actions(ActionId.of(namespace, DOMAIN, "r5", "a0"))
    assert sorted(o["spec"]["actionName"] for o in kids) == ["a0", "a1", "a2"]
    await client.abort_action(ActionId.of(namespace, DOMAIN, "r5", "a1"), "test")
    with pytest.raises(ActionNotFoundError, match="not found"):
        await client.abort_action(ActionId.of(namespace, DOMAIN, "r5", "a9"))

    async def remaining() -> list[str] | None:
        names = sorted(o["spec"]["actionName"] for o in await kube.list_taskactions(namespace))
        return names if names == ["a0", "a2"] else None

    # The garbage collector learns new types on its discovery resync (up to 30 s on a fresh cluster).
    await until(remaining, timeout=60, what="a1's subtree collected")


async def test_subscribe_routes_by_run_and_parent_and_a_slow_consumer_coalesces(
    client: ActionsClient, kube: KubeOps, namespace: str
) -> None:
    await client.start_watching()
    fast = client.subscribe("r6", "a0")
    slow = client.subscribe("r6", "a0", maxsize=3)
    other_run = client.subscribe("r7", "a0")
    roots = client.subscribe("r6", "")
    children = [f"c{i}" for i in range(4)]
    for action in actions_of(namespace, "r6", task("a0"), *(task(c, "a0") for c in children)):
        await client.enqueue(action)
    ex = StandInExecutor(kube)
    fast_seen: list[ActionUpdate] = []

    async def read_fast() -> None:
        async for update in fast:
            fast_seen.append(update)
            # Every child's terminal state, then its GC labels (ensureTerminalLabels): a second update
            # of the same phase, which upstream's informer publishes too (its UpdateFunc takes all).
            done = {u.action_id.name for u in fast_seen if u.phase is ActionPhase.SUCCEEDED}
            if done == set(children) and sum(u.phase is ActionPhase.SUCCEEDED for u in fast_seen) == 2 * len(
                children
            ):
                return

    reader = asyncio.create_task(read_fast())
    for c in children:
        await ex.run_through(namespace, f"r6-{c}", SUCCESS_PATH)
    await asyncio.wait_for(reader, 30)

    # The fast subscriber saw every phase of every child, in order per child.
    for c in children:
        phases = [u.phase for u in fast_seen if u.action_id.name == c]
        assert phases[0] is ActionPhase.UNSPECIFIED  # ADDED, before the executor wrote anything
        assert [p for p in phases if p is not ActionPhase.UNSPECIFIED] == [
            ActionPhase.QUEUED, ActionPhase.INITIALIZING, ActionPhase.RUNNING, ActionPhase.SUCCEEDED,
            ActionPhase.SUCCEEDED,  # the executor's terminal labels
        ]  # fmt: skip
    # The slow one read nothing meanwhile: it overflowed, coalesced by action, and lost no action.
    slow_seen = _drain(slow)
    assert slow.overflows >= 1 and slow.coalesced > 0
    assert sorted(u.action_id.name for u in slow_seen) == children
    assert all(u.phase is ActionPhase.SUCCEEDED for u in slow_seen)
    assert sum(u.coalesced for u in slow_seen) == slow.coalesced == len(fast_seen) - len(children)
    assert len(other_run) == 0
    root_updates = _drain(roots)
    assert root_updates and all(u.action_id.name == "a0" and u.parent == "" for u in root_updates)


async def test_watch_resumes_after_the_server_ends_it_and_watch_for_updates_sends_snapshot_first(
    kube: KubeOps, namespace: str
) -> None:
    client = ActionsClient(kube, namespace, watch_timeout=1)  # the server closes the watch every second
    try:
        a0, a1 = actions_of(namespace, "r8", task("a0"), task("a1", "a0"))
        await client.enqueue(a0)
        await client.start_watching()
        stream = client.watch_for_updates(ActionId.of(namespace, DOMAIN, "r8", "a0"))
        first = await anext(stream)
        assert isinstance(first, ActionUpdate) and first.action_id.name == "a0"
        assert await anext(stream) is SENTINEL
        await until(lambda: client.informer.restarts >= 2, timeout=20, what="the watch restarted twice")
        await client.enqueue(a1)
        update = await asyncio.wait_for(anext(stream), 20)
        assert isinstance(update, ActionUpdate) and update.action_id.name == "a1" and update.parent == "a0"
        await StandInExecutor(kube).move(namespace, "r8-a1", "Executing")
        update = await asyncio.wait_for(anext(stream), 20)
        assert isinstance(update, ActionUpdate) and update.phase is ActionPhase.RUNNING
        await stream.aclose()
    finally:
        await client.stop_watching()
    assert not client.watching


async def test_deleting_a_running_action_reads_aborted_to_subscribers(
    client: ActionsClient, kube: KubeOps, namespace: str
) -> None:
    await client.start_watching()
    sub = client.subscribe("r9", "a0")
    for action in actions_of(namespace, "r9", task("a0"), task("a1", "a0")):
        await client.enqueue(action)
    await StandInExecutor(kube).move(namespace, "r9-a1", "Executing")
    await kube.delete_taskaction(namespace, "r9-a1")
    seen = await _collect_until(sub, lambda u: u.is_deleted)
    assert seen[-1].phase is ActionPhase.ABORTED


def _drain(sub: Subscription) -> list[ActionUpdate]:
    out = []
    while (u := sub.get_nowait()) is not None:
        out.append(u)
    return out


async def _collect_until(sub: Subscription, stop: Any, timeout: float = 20) -> list[ActionUpdate]:
    seen: list[ActionUpdate] = []

    async def go() -> None:
        async for u in sub:
            seen.append(u)
            if stop(u):
                return

    await asyncio.wait_for(go(), timeout)
    return seen


async def test_resync_publishes_what_changed_and_what_vanished_while_not_watching(
    client: ActionsClient, kube: KubeOps, namespace: str
) -> None:
    for action in actions_of(
        namespace, "r10", task("a0"), task("a1", "a0"), task("a2", "a0"), task("a3", "a0")
    ):
        await client.enqueue(action)
    sub = client.subscribe("r10", "a0")
    await client.informer.resync()  # what the watch does at start: everything is new
    assert sorted(u.action_id.name for u in _drain(sub)) == ["a1", "a2", "a3"]
    # While nobody watches (a watch that expired): a1 moves, a2 disappears, a3 stays as it was.
    await StandInExecutor(kube).move(namespace, "r10-a1", "Executing")
    await kube.delete_taskaction(namespace, "r10-a2")
    await until(lambda: _gone(kube, namespace, "r10-a2"), what="r10-a2 deleted")
    await client.informer.resync()
    changed = {u.action_id.name: u for u in _drain(sub)}
    assert set(changed) == {"a1", "a2"}
    assert changed["a1"].phase is ActionPhase.RUNNING and not changed["a1"].is_deleted
    assert changed["a2"].is_deleted and changed["a2"].phase is ActionPhase.ABORTED
    await client.informer.resync()
    assert _drain(sub) == []


async def _gone(kube: KubeOps, namespace: str, name: str) -> bool:
    return await kube.get_taskaction(namespace, name) is None
