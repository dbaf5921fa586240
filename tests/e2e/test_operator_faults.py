"""Faults mid-run; each ends with the database equal to the cluster's truth, every transition
recorded once and no event twice.

The executor path of every action is known to the test, so the expected record is written
independently of the operator's own derivation.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import urllib.request
from typing import Any

import pytest

from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_LABEL
from taskaction_operator.devtools.executor import StandInExecutor
from taskaction_operator.k8s import KubeOps
from tests.conftest import ROOT
from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Db, until
from tests.e2e.taskactions import taskaction
from tests.e2e.test_operator_recording import children_owned, create, warnings

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
#: Stops the control plane or PostgreSQL through hack/cluster and hack/db, or compacts etcd through its
#: port: only where those scripts started them (on kind, tests/kind/test_faults.py has their forms).
needs_local_components = pytest.mark.usefixtures("local_components")
EVENT_PHASE = {
    "Queued": 1,
    "Initializing": 3,
    "Executing": 4,
    "Completed": 5,
    "PermanentFailure": 6,
    "TimedOut": 8,
}
TREE = [("a0", None), ("a1", "a0"), ("a2", "a0"), ("a3", "a1"), ("a4", "a1"), ("a5", "a2"), ("a6", "a2")]
FIRST_HALF = ["Queued", "Initializing"]
ENDINGS = {
    "a0": "Completed",
    "a1": "Completed",
    "a2": "Completed",
    "a3": "Completed",
    "a4": "PermanentFailure",
    "a5": "TimedOut",
    "a6": "Completed",
}


class Run:
    """A seven-action, three-level run whose executor path the test records as it drives it."""

    def __init__(self, kube: KubeOps, namespace: str, name: str) -> None:
        self.kube, self.ns, self.project, self.name = kube, namespace, namespace, name
        self.ex = StandInExecutor(kube)
        self.path: dict[str, list[str]] = {a: [] for a, _ in TREE}

    async def create(self) -> None:
        for action, parent in TREE:
            await create(self.kube, self.ns, self.project, self.name, action, parent)

    async def drive(self, phases_by_action: dict[str, list[str]]) -> None:
        async def one(action: str, phases: list[str]) -> None:
            for phase in phases:
                await self.ex.move(self.ns, f"{self.name}-{action}", phase)
                self.path[action].append(phase)
                await asyncio.sleep(0.02)

        await asyncio.gather(*(one(a, p) for a, p in phases_by_action.items()))

    def expected_events(self, action: str) -> list[tuple[int, int, int]]:
        return sorted({(1, EVENT_PHASE[p], 0) for p in self.path[action]})

    def expected_phase(self, action: str) -> int:
        return EVENT_PHASE[self.path[action][-1]] if self.path[action] else 1


async def assert_record_matches(run: Run, db: Db, *, aborted: frozenset[str] = frozenset()) -> None:
    """Every action's row and events equal what the cluster went through; terminal CRs are labelled."""
    expected = {a: (7 if a in aborted else run.expected_phase(a)) for a, _ in TREE}
    await until(
        lambda: db.phases(run.project, run.name) == expected,
        timeout=60,
        what=f"phases {expected} (have {db.phases(run.project, run.name)})",
    )
    for action, _ in TREE:
        want = run.expected_events(action)
        if action in aborted:
            want = sorted({*want, (1, 7, 0)})
        assert db.events(run.project, run.name, action) == want, action
    for obj in await run.kube.list_taskactions(run.ns):
        action = obj["spec"]["actionName"]
        if run.expected_phase(action) in (5, 6, 8):
            name = obj["metadata"]["name"]
            await until(lambda name=name: labelled(run.kube, run.ns, name), what=f"{action} labelled")


async def labelled(kube: KubeOps, namespace: str, name: str) -> bool:
    """The TaskAction carries the terminal-status-recorded label."""
    o = await kube.get_taskaction(namespace, name)
    return bool(o and o["metadata"].get("labels", {}).get(RECORDED_LABEL) == "true")


def script(*args: str) -> None:
    subprocess.run(["bash", *args], cwd=ROOT, check=True, capture_output=True, timeout=300)


async def test_operator_killed_mid_run_and_restarted_loses_nothing(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any
) -> None:
    op = start_operator()
    run = Run(kube, namespace, "rkill")
    await run.create()
    await run.drive({a: FIRST_HALF for a, _ in TREE})
    await until(lambda: len(db.phases(run.project, run.name)) == 7, what="recorded before the kill")
    op.kill()
    await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a3", "a4", "a5", "a6")})
    await run.drive({a: ["Executing"] for a in ("a0", "a1", "a2")})
    start_operator()
    await run.drive({a: [ENDINGS[a]] for a in ("a1", "a2")})
    await run.drive({"a0": [ENDINGS["a0"]]})
    await assert_record_matches(run, db)


@needs_local_components
async def test_database_stopped_for_30_s_mid_run_loses_nothing_and_labels_nothing_early(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any
) -> None:
    start_operator()
    run = Run(kube, namespace, "rdbdown")
    await run.create()
    await run.drive({a: FIRST_HALF for a, _ in TREE})
    await until(lambda: db.phases(run.project, run.name).get("a6") == 3, what="recorded before the outage")
    script("hack/db/db.sh", "stop")
    try:
        await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a3", "a4", "a5", "a6")})
        await run.drive({a: ["Executing"] for a in ("a0", "a1", "a2")})
        await asyncio.sleep(30)
        for obj in await kube.list_taskactions(namespace):
            assert RECORDED_LABEL not in obj["metadata"].get("labels", {}), (
                "labelled while the database was down"
            )
    finally:
        script("hack/db/db.sh", "start")
    await run.drive({a: [ENDINGS[a]] for a in ("a1", "a2")})
    await run.drive({"a0": [ENDINGS["a0"]]})
    await assert_record_matches(run, db)


@needs_local_components
async def test_apiserver_restarted_mid_run_loses_nothing(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any
) -> None:
    start_operator()
    run = Run(kube, namespace, "rapi")
    await run.create()
    await run.drive({a: FIRST_HALF for a, _ in TREE})
    await until(lambda: len(db.phases(run.project, run.name)) == 7, what="recorded before the restart")
    await asyncio.to_thread(script, "hack/cluster/cluster.sh", "restart", "kube-apiserver")
    await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a3", "a4", "a5", "a6")})
    await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a1", "a2")})
    await run.drive({"a0": ["Executing", ENDINGS["a0"]]})
    await assert_record_matches(run, db)


async def test_subtree_deleted_while_operator_is_down_is_recorded_by_the_guard(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any
) -> None:
    op = start_operator()
    run = Run(kube, namespace, "rguard")
    await run.create()
    await run.drive({a: FIRST_HALF for a, _ in TREE})
    await run.drive({"a5": ["Executing", "Completed"]})
    await until(lambda: db.phases(run.project, run.name).get("a5") == 5, what="a5 recorded SUCCEEDED")
    await until(lambda: children_owned(kube, namespace), what="ownerReferences")

    async def guarded() -> bool:
        objs = await kube.list_taskactions(namespace)
        return all(
            "flyte.org/record-guard" in (o["metadata"].get("finalizers") or [])
            for o in objs
            if o["spec"]["actionName"] != "a5"
        )

    await until(guarded, what="record guards on every live action")
    op.stop()
    await kube.delete_taskaction(namespace, f"{run.name}-a2")  # a2, a5 (succeeded), a6
    await asyncio.sleep(2)
    held = await kube.get_taskaction(namespace, f"{run.name}-a2")
    assert held is not None and held["metadata"].get("deletionTimestamp"), "the guard did not hold a2"
    start_operator()

    async def subtree_gone() -> bool:
        names = {o["spec"]["actionName"] for o in await kube.list_taskactions(namespace)}
        return not names & {"a2", "a5", "a6"}

    await until(subtree_gone, timeout=60, what="subtree gone once recorded")
    await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a3", "a4")})
    await run.drive({"a1": ["Executing", ENDINGS["a1"]]})
    await run.drive({"a0": ["Executing", ENDINGS["a0"]]})
    await assert_record_matches(run, db, aborted=frozenset({"a2", "a6"}))


async def test_a_restart_leaves_a_failed_parent_failed_while_its_children_still_run(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any
) -> None:
    """a1 fails while its children a3 and a4 still run. After a restart the operator sees a3 and a4
    for the first time again; their promotion of a1 must not move the recorded FAILED back to
    RUNNING (a1 is labelled, so nothing would ever correct it)."""
    op = start_operator()
    run = Run(kube, namespace, "rfailed")
    await run.create()
    await run.drive({a: FIRST_HALF for a, _ in TREE})
    await run.drive({"a1": ["Executing", "PermanentFailure"]})
    await until(lambda: db.phases(run.project, run.name).get("a1") == 6, what="a1 FAILED recorded")
    await until(lambda: labelled(kube, namespace, f"{run.name}-a1"), what="a1 labelled")
    op.stop()
    start_operator()
    await run.drive({a: ["Executing"] for a in ("a3", "a4")})
    await until(
        lambda: all(db.phases(run.project, run.name).get(a) == 4 for a in ("a3", "a4")),
        what="the restarted operator recorded a3 and a4 RUNNING",
    )
    assert db.phases(run.project, run.name)["a1"] == 6
    await run.drive({a: [ENDINGS[a]] for a in ("a3", "a4")})
    await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a5", "a6")})
    await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a2",)})
    await run.drive({"a0": ["Executing", ENDINGS["a0"]]})
    await assert_record_matches(run, db)
    assert db.phases(run.project, run.name)["a1"] == 6


async def test_a_deleting_action_whose_end_the_database_refuses_does_not_hold_its_namespace(
    kube: KubeOps, kubectl: Kubectl, db: Db, namespace: str, start_operator: Any
) -> None:
    """A NUL byte in a spec string: valid JSON, accepted by the API server, refused for good by
    PostgreSQL's TEXT. The guard was added all the same; on deletion it must be released (Warning
    GuardReleased), not held forever with the namespace."""
    start_operator()
    body = taskaction(namespace, "rnul", "a0", task_type="py\x00thon")
    await kube.create_taskaction(namespace, body)
    name = body["metadata"]["name"]

    async def guarded() -> bool:
        o = await kube.get_taskaction(namespace, name)
        return bool(o and RECORD_GUARD_FINALIZER in (o["metadata"].get("finalizers") or ()))

    await until(guarded, what="the guard on the unrecordable TaskAction")
    await until(lambda: bool(warnings(kubectl, namespace, "RecordFailed")), what="a RecordFailed Warning")
    kubectl.run("delete", "taskaction", name, "-n", namespace, "--wait=false")
    await until(lambda: _gone(kube, namespace, name), timeout=60, what="the TaskAction gone")
    assert warnings(kubectl, namespace, "GuardReleased")


async def _gone(kube: KubeOps, namespace: str, name: str) -> bool:
    return await kube.get_taskaction(namespace, name) is None


async def test_a_namespace_deleted_with_200_guarded_unfinished_actions_is_recorded_and_goes(
    kube: KubeOps, kubectl: Kubectl, db: Db, namespace: str, start_operator: Any
) -> None:
    """Every action ends ABORTED in the record, exactly once, and the guard never holds the namespace."""
    start_operator()
    ex = StandInExecutor(kube)
    names = [f"c{i:03d}" for i in range(199)]
    await kube.create_taskaction(namespace, taskaction(namespace, "rns", "a0"))
    await asyncio.gather(
        *(kube.create_taskaction(namespace, taskaction(namespace, "rns", n, "a0")) for n in names)
    )
    await ex.move(namespace, "rns-a0", "Executing")

    async def all_guarded() -> bool:
        items = await kube.list_taskactions(namespace)
        return len(items) == 200 and all(
            RECORD_GUARD_FINALIZER in (o["metadata"].get("finalizers") or ()) for o in items
        )

    await until(all_guarded, timeout=120, what="200 TaskActions under the guard")
    kubectl.run("delete", "namespace", namespace, "--wait=false")

    def namespace_gone() -> bool:
        return kubectl.try_run("get", "namespace", namespace).returncode != 0

    await until(namespace_gone, timeout=180, what="the namespace gone")
    phases = db.phases(namespace, "rns")
    assert len(phases) == 200 and set(phases.values()) == {7}, phases
    for name in ("a0", "c000", "c198"):
        assert [p for _, p, _ in db.events(namespace, "rns", name)].count(7) == 1


def compact_etcd() -> int:
    """Compact etcd's history up to its current revision (its gRPC gateway, plain HTTP here): every
    watch from an older resourceVersion now gets 410 Gone. Returns the revision."""
    port = (ROOT / ".local" / "cluster" / "etcd.port").read_text().strip()

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return dict(json.load(resp))

    revision = int(post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
    post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
    return revision


@needs_local_components
async def test_actions_that_vanish_in_a_watch_gap_are_recorded_aborted(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any
) -> None:
    """The guard off, the operator frozen (SIGSTOP), the API server restarted, a subtree deleted and
    gone, etcd compacted: the operator's watch resumes with 410 Gone, kopf relists, and no
    DELETED event is ever delivered for a2, a5, a6. The vanished sweep records them ABORTED (they
    stayed RUNNING/INITIALIZING forever before)."""
    op = start_operator(TASKACTION_RECORD_GUARD="false", TASKACTION_VANISHED_SWEEP_INTERVAL="1")
    run = Run(kube, namespace, "rgap")
    await run.create()
    await run.drive({a: FIRST_HALF for a, _ in TREE})
    await until(lambda: len(db.phases(run.project, run.name)) == 7, what="recorded before the gap")
    await until(lambda: children_owned(kube, namespace), what="ownerReferences (for the GC)")
    await until(  # leaves INITIALIZING, parents promoted RUNNING
        lambda: all(p >= 3 for p in db.phases(run.project, run.name).values()), what="INITIALIZING recorded"
    )
    op.signal(signal.SIGSTOP)
    try:
        # The restart first: the operator's watch stream ends before the deletions, so no DELETED
        # event can wait in its socket's buffer.
        await asyncio.to_thread(script, "hack/cluster/cluster.sh", "restart", "kube-apiserver")
        await kube.delete_taskaction(namespace, f"{run.name}-a2")  # a2, and by the GC a5 and a6

        async def subtree_gone() -> bool:
            names = {o["spec"]["actionName"] for o in await kube.list_taskactions(namespace)}
            return not names & {"a2", "a5", "a6"}

        await until(subtree_gone, timeout=60, what="the subtree gone from the cluster")
        await asyncio.to_thread(compact_etcd)
    finally:
        op.signal(signal.SIGCONT)
    await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a3", "a4")})
    await run.drive({"a1": ["Executing", ENDINGS["a1"]]})
    await run.drive({"a0": ["Executing", ENDINGS["a0"]]})
    await assert_record_matches(run, db, aborted=frozenset({"a2", "a5", "a6"}))
    assert "recorded ABORTED" in op.log_text()
