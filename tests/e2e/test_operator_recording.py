"""The operator records a run as it moves, owns children, cascades deletes and carries out aborts.

The test plays the executor (status patches through the status subresource, as Flyte's executor
writes them); the operator runs as a real process against the real cluster and database.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_LABEL
from taskaction_operator.devtools.executor import FAILURE_PATH, SUCCESS_PATH, TIMEOUT_PATH, StandInExecutor
from taskaction_operator.k8s import KubeOps
from taskaction_operator.model import ActionId, RunId
from taskaction_operator.repo import ActionRepo
from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Db, until
from tests.e2e.taskactions import taskaction

pytestmark = pytest.mark.cluster
QUEUED, INIT, RUNNING, OK, FAILED, ABORTED, TIMED_OUT = 1, 3, 4, 5, 6, 7, 8


async def create(
    kube: KubeOps, ns: str, project: str, run: str, action: str, parent: str | None = None, **meta: Any
) -> dict[str, Any]:
    return await kube.create_taskaction(ns, taskaction(project, run, action, parent, **meta))


async def children_owned(kube: KubeOps, ns: str) -> bool:
    objs = await kube.list_taskactions(ns)
    return all(o["metadata"].get("ownerReferences") for o in objs if o["spec"]["actionName"] != "a0")


def warnings(kubectl: Kubectl, ns: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kubectl.json("get", "events", "-n", ns)["items"]
        if e["reason"] == reason and e["type"] == "Warning"
    ]


@pytest.mark.parametrize("guard", ["true", "false"])
async def test_three_level_run_is_recorded_with_history_owners_and_labels(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any, guard: str
) -> None:
    start_operator(TASKACTION_RECORD_GUARD=guard)
    project, run = namespace, "r3level"
    ex = StandInExecutor(kube)
    bodies = {"a0": await create(kube, namespace, project, run, "a0")}
    await until(lambda: db.phases(project, run).get("a0") == QUEUED, what="root recorded QUEUED")
    await ex.move(namespace, f"{run}-a0", "Queued")
    for action, parent in [("a1", "a0"), ("a2", "a0"), ("a3", "a1"), ("a4", "a1")]:
        bodies[action] = await create(kube, namespace, project, run, action, parent)
    # The first sighting of a child promotes its parent to RUNNING.
    await until(lambda: db.phases(project, run).get("a0") == RUNNING, what="a0 promoted by its children")
    await until(lambda: db.phases(project, run).get("a1") == RUNNING, what="a1 promoted by its children")
    await ex.run_through(namespace, f"{run}-a0", ["Initializing", "Executing"])
    await ex.run_through(namespace, f"{run}-a1", ["Queued", "Initializing", "Executing"])
    await asyncio.gather(
        ex.run_through(namespace, f"{run}-a3", SUCCESS_PATH),
        ex.run_through(namespace, f"{run}-a4", FAILURE_PATH),
        ex.run_through(namespace, f"{run}-a2", TIMEOUT_PATH),
    )
    await ex.move(namespace, f"{run}-a1", "Completed")
    await ex.move(namespace, f"{run}-a0", "Completed")

    expected = {"a0": OK, "a1": OK, "a2": TIMED_OUT, "a3": OK, "a4": FAILED}
    await until(lambda: db.phases(project, run) == expected, what=f"phases {expected}")
    rows = db.actions(project, run)
    for name, row in rows.items():
        assert row["ended_at"] is not None
        assert row["duration_ms"] is not None and row["duration_ms"] >= 0
        assert (row["parent_action_name"] is None) == (name == "a0")
    assert rows["a0"]["run_source"] == "RUN_SOURCE_UNSPECIFIED"
    assert rows["a1"]["run_source"] == ""
    assert rows["a1"]["parent_action_name"] == "a0"
    assert rows["a3"]["parent_action_name"] == "a1"
    # Every phase each action passed through is an event, exactly once.
    terminal = {"a0": OK, "a1": OK, "a2": TIMED_OUT, "a3": OK, "a4": FAILED}
    for name, last in terminal.items():
        assert db.events(project, run, name) == [(1, p, 0) for p in (QUEUED, INIT, RUNNING, last)], name

    async def all_labelled() -> bool:
        objs = await kube.list_taskactions(namespace)
        return len(objs) == 5 and all(
            o["metadata"].get("labels", {}).get(RECORDED_LABEL) == "true" for o in objs
        )

    await until(all_labelled, what="every terminal TaskAction labelled terminal-status-recorded")
    for name, parent in [("a1", "a0"), ("a2", "a0"), ("a3", "a1"), ("a4", "a1")]:
        obj = await kube.get_taskaction(namespace, f"{run}-{name}")
        assert obj is not None
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "flyte.org/v1",
                "kind": "TaskAction",
                "name": f"{run}-{parent}",
                "uid": bodies[parent]["metadata"]["uid"],
                "blockOwnerDeletion": True,
            }
        ]
    for obj in await kube.list_taskactions(namespace):
        assert RECORD_GUARD_FINALIZER not in (obj["metadata"].get("finalizers") or [])


async def test_label_is_set_only_once_the_database_holds_the_terminal_phase(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any
) -> None:
    start_operator()
    project, run = namespace, "rlabel"
    ex = StandInExecutor(kube)
    await create(kube, namespace, project, run, "a0")
    await ex.run_through(namespace, f"{run}-a0", ["Queued", "Initializing", "Executing"])
    await until(lambda: db.phases(project, run).get("a0") == RUNNING, what="a0 RUNNING")

    async def guarded() -> Any:
        o = await kube.get_taskaction(namespace, f"{run}-a0")
        return o if o and RECORD_GUARD_FINALIZER in (o["metadata"].get("finalizers") or []) else None

    # The guard may lose a resourceVersion race with the executor's status writes; it is re-applied.
    obj = await until(guarded, what="record-guard finalizer on the running action")
    assert RECORDED_LABEL not in obj["metadata"].get("labels", {})
    await ex.move(namespace, f"{run}-a0", "Completed")

    async def labelled_and_consistent() -> bool:
        o = await kube.get_taskaction(namespace, f"{run}-a0")
        assert o is not None
        if o["metadata"].get("labels", {}).get(RECORDED_LABEL) == "true":
            assert db.phases(project, run)["a0"] == OK, "label seen before the terminal row"
            return True
        return False

    await until(labelled_and_consistent, interval=0.02, what="recorded label")


async def test_deleting_a_subtree_records_non_terminal_descendants_aborted(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any
) -> None:
    start_operator()
    project, run = namespace, "rcascade"
    ex = StandInExecutor(kube)
    await create(kube, namespace, project, run, "a0")
    await create(kube, namespace, project, run, "a1", "a0")
    for child in ("a2", "a3", "a4"):
        await create(kube, namespace, project, run, child, "a1")
    await ex.run_through(namespace, f"{run}-a2", ["Queued", "Executing"])
    await ex.run_through(namespace, f"{run}-a4", SUCCESS_PATH)
    tree = {"a0": RUNNING, "a1": RUNNING, "a2": RUNNING, "a3": QUEUED, "a4": OK}
    await until(lambda: db.phases(project, run) == tree, what="tree recorded")
    await until(lambda: children_owned(kube, namespace), what="ownerReferences on every child")
    await kube.delete_taskaction(namespace, f"{run}-a1")
    after = {"a0": RUNNING, "a1": ABORTED, "a2": ABORTED, "a3": ABORTED, "a4": OK}
    await until(lambda: db.phases(project, run) == after, what="subtree ABORTED, terminal a4 kept")

    async def only_root_left() -> bool:
        return {o["metadata"]["name"] for o in await kube.list_taskactions(namespace)} == {f"{run}-a0"}

    await until(only_root_left, what="subtree gone from the cluster")
    for name in ("a1", "a2", "a3"):
        assert db.actions(project, run)[name]["ended_at"] is not None
        assert (1, ABORTED, 0) in db.events(project, run, name)


async def test_abort_requested_in_the_database_is_carried_out_by_the_sweep(
    kube: KubeOps, db: Db, repo: ActionRepo, namespace: str, start_operator: Any
) -> None:
    start_operator()
    project, run = namespace, "rabort"
    ex = StandInExecutor(kube)
    await create(kube, namespace, project, run, "a0")
    await create(kube, namespace, project, run, "a1", "a0")
    await create(kube, namespace, project, run, "a2", "a1")
    await ex.run_through(namespace, f"{run}-a2", ["Queued", "Executing"])
    await until(lambda: len(db.phases(project, run)) == 3, what="run recorded")
    await until(lambda: children_owned(kube, namespace), what="owned")
    await repo.abort_run(RunId(project, "development", run), "e2e says stop")
    await until(
        lambda: db.phases(project, run) == {"a0": ABORTED, "a1": ABORTED, "a2": ABORTED},
        what="whole run ABORTED",
    )

    async def none_left() -> bool:
        return not await kube.list_taskactions(namespace)

    await until(none_left, what="every TaskAction deleted")
    root = await until(
        lambda: (r := db.actions(project, run)["a0"])["abort_requested_at"] is None and r,
        what="abort request cleared",
    )
    assert root["abort_reason"] == "e2e says stop"
    assert root["abort_attempt_count"] == 0


async def test_abort_retries_while_a_finalizer_holds_and_clears_once_gone(
    kube: KubeOps, db: Db, repo: ActionRepo, namespace: str, start_operator: Any
) -> None:
    start_operator(TASKACTION_ABORT_INITIAL_DELAY="0.2", TASKACTION_ABORT_MAX_DELAY="0.5")
    project, run = namespace, "rhold"
    await create(kube, namespace, project, run, "a0", finalizers=["e2e.flyte.org/hold"])
    await until(lambda: db.phases(project, run).get("a0") == QUEUED, what="recorded")
    await repo.abort_action(ActionId.of(project, "development", run, "a0"), "held")
    await until(
        lambda: db.actions(project, run)["a0"]["abort_attempt_count"] >= 2,
        what="retried while the finalizer holds",
    )
    assert db.actions(project, run)["a0"]["abort_requested_at"] is not None, "cleared before the CR was gone"
    await kube.merge_patch_taskaction(namespace, f"{run}-a0", {"metadata": {"finalizers": None}})
    await until(
        lambda: db.actions(project, run)["a0"]["abort_requested_at"] is None,
        what="cleared once the TaskAction is gone",
    )
    assert db.phases(project, run)["a0"] == ABORTED


async def test_abort_gives_up_after_the_maximum_with_a_warning(
    kube: KubeOps, db: Db, repo: ActionRepo, kubectl: Kubectl, namespace: str, start_operator: Any
) -> None:
    start_operator(
        TASKACTION_ABORT_MAX_ATTEMPTS="3",
        TASKACTION_ABORT_INITIAL_DELAY="0.1",
        TASKACTION_ABORT_MAX_DELAY="0.2",
    )
    project, run = namespace, "rgiveup"
    await create(kube, namespace, project, run, "a0", finalizers=["e2e.flyte.org/hold"])
    await until(lambda: db.phases(project, run).get("a0") == QUEUED, what="recorded")
    await repo.abort_action(ActionId.of(project, "development", run, "a0"), "never goes")
    await until(
        lambda: db.actions(project, run)["a0"]["abort_requested_at"] is None,
        timeout=60,
        what="request cleared after giving up",
    )
    assert db.actions(project, run)["a0"]["abort_attempt_count"] == 0
    assert await kube.get_taskaction(namespace, f"{run}-a0") is not None
    events = await until(
        lambda: warnings(kubectl, namespace, "AbortGaveUp"), what="AbortGaveUp Warning Event"
    )
    assert "manual action needed" in events[0]["message"]
    await kube.merge_patch_taskaction(namespace, f"{run}-a0", {"metadata": {"finalizers": None}})


async def test_child_without_parent_is_recorded_warned_and_adopted_when_parent_appears(
    kube: KubeOps, db: Db, kubectl: Kubectl, namespace: str, start_operator: Any
) -> None:
    start_operator()
    project, run = namespace, "rorphan"
    await create(kube, namespace, project, run, "a1", "a0")
    await until(lambda: db.phases(project, run).get("a1") == QUEUED, what="orphan recorded")
    await until(lambda: warnings(kubectl, namespace, "ParentNotFound"), what="ParentNotFound Warning")
    parent = await create(kube, namespace, project, run, "a0")

    async def adopted() -> Any:
        obj = await kube.get_taskaction(namespace, f"{run}-a1")
        return obj if obj and obj["metadata"].get("ownerReferences") else None

    obj = await until(adopted, what="ownerReference set once the parent exists")
    assert obj["metadata"]["ownerReferences"][0]["uid"] == parent["metadata"]["uid"]


async def test_self_parent_and_parent_of_another_run_are_refused_with_events(
    kube: KubeOps, db: Db, kubectl: Kubectl, namespace: str, start_operator: Any
) -> None:
    start_operator()
    project = namespace
    # Run "x" action "y-z" is CR x-y-z; run "x-y" action "w" with parent "z" names the same CR.
    await create(kube, namespace, project, "x", "a0")
    await create(kube, namespace, project, "x", "y-z", "a0")
    await until(lambda: db.phases(project, "x").get("y-z") == QUEUED, what="x/y-z recorded")
    await create(kube, namespace, project, "x-y", "w", "z")
    await create(kube, namespace, project, "rself", "a1", "a1")
    await until(lambda: db.phases(project, "rself").get("a1") == QUEUED, what="self-parent recorded")
    await until(lambda: db.phases(project, "x-y").get("w") == QUEUED, what="cross-run child recorded")

    def reasons() -> dict[str, str]:
        return {
            e["involvedObject"]["name"]: e["message"] for e in warnings(kubectl, namespace, "InvalidParent")
        }

    found = await until(
        lambda: (r := reasons()) and {"rself-a1", "x-y-w"} <= set(r) and r,
        what="InvalidParent events for both",
    )
    assert "names the action itself" in found["rself-a1"]
    assert "belongs to run" in found["x-y-w"]
    for name in ("rself-a1", "x-y-w"):
        obj = await kube.get_taskaction(namespace, name)
        assert obj is not None
        assert not obj["metadata"].get("ownerReferences")


async def test_a_recorded_taskaction_still_guarded_gets_its_guard_released(
    kube: KubeOps, namespace: str, start_operator: Any
) -> None:
    """Labelled recorded (so out of the watch) yet carrying the guard, as after a rollout with mixed
    TASKACTION_RECORD_GUARD settings: the sweep leader releases it; other finalizers stay."""
    body = taskaction(namespace, "rmixed", "a0")
    body["metadata"]["labels"][RECORDED_LABEL] = "true"
    body["metadata"]["finalizers"] = ["example.com/keep", RECORD_GUARD_FINALIZER]
    await kube.create_taskaction(namespace, body)
    start_operator(TASKACTION_GUARD_SWEEP_INTERVAL="1")

    async def released() -> bool:
        o = await kube.get_taskaction(namespace, "rmixed-a0")
        return bool(o and o["metadata"].get("finalizers") == ["example.com/keep"])

    await until(released, timeout=60, what="the guard released, the other finalizer kept")
    await kube.merge_patch_taskaction(namespace, "rmixed-a0", {"metadata": {"finalizers": None}})


async def test_an_end_the_executor_writes_while_it_finalizes_a_deletion_is_the_record(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any
) -> None:
    """Deleted while running; Flyte's executor, holding its own finalizer, writes SUCCEEDED while it
    finalizes, then lets go. The record is SUCCEEDED with no ABORTED event (deciding ABORTED at the
    deletionTimestamp used to contradict the executor, and the phase guard kept the ABORTED)."""
    start_operator()
    body = taskaction(namespace, "rfin", "a0")
    body["metadata"]["finalizers"] = ["flyte.org/plugin-finalizer"]
    await kube.create_taskaction(namespace, body)
    ex = StandInExecutor(kube)
    await ex.move(namespace, "rfin-a0", "Executing")

    async def guarded() -> bool:
        o = await kube.get_taskaction(namespace, "rfin-a0")
        return bool(o and RECORD_GUARD_FINALIZER in o["metadata"].get("finalizers", ()))

    await until(guarded, what="the record guard")
    await until(lambda: db.phases(namespace, "rfin").get("a0") == 4, what="RUNNING recorded")
    await kube.delete_taskaction(namespace, "rfin-a0")
    await asyncio.sleep(1)  # the operator sees the deletionTimestamp, with the executor still finalizing
    assert db.phases(namespace, "rfin")["a0"] == 4
    await ex.move(namespace, "rfin-a0", "Completed")
    await kube.remove_finalizer(namespace, "rfin-a0", "flyte.org/plugin-finalizer")  # the executor lets go
    await until(lambda: db.phases(namespace, "rfin").get("a0") == 5, what="SUCCEEDED recorded")

    async def gone() -> bool:
        return await kube.get_taskaction(namespace, "rfin-a0") is None

    await until(gone, what="the TaskAction gone (our guard released)")
    assert 7 not in [p for _, p, _ in db.events(namespace, "rfin", "a0")]
