"""Operating the operator: least-privilege identity, metrics, graceful shutdown, rolling restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_LABEL
from taskaction_operator.devtools.executor import SUCCESS_PATH, StandInExecutor
from taskaction_operator.k8s import KubeOps
from taskaction_operator.model import RunId
from taskaction_operator.repo import ActionRepo
from tests.conftest import LOCAL
from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Db, new_operator, until
from tests.e2e.test_manifests import _rbac_for, render
from tests.e2e.test_operator_recording import children_owned, create

pytestmark = pytest.mark.cluster
QUEUED, RUNNING, OK, ABORTED = 1, 4, 5, 7


@pytest.fixture
def service_account_kubeconfig(kubectl: Kubectl, kubeconfig: str, namespace: str) -> Iterator[str]:
    """A kubeconfig that authenticates as the operator's ServiceAccount from manifests/base (its
    RBAC created for real, bound in the test namespace), with a token from the API server."""
    suffix = uuid.uuid4().hex[:8]
    objects = _rbac_for(render(kubectl, "manifests/base"), namespace, suffix)
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    try:
        token = kubectl.run(
            "create", "token", "taskaction-operator", "-n", namespace, "--duration=1h"
        ).strip()
        with open(kubeconfig, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
        cfg["users"] = [{"name": "operator-sa", "user": {"token": token}}]
        for ctx in cfg["contexts"]:
            ctx["context"]["user"] = "operator-sa"
        path = LOCAL / "e2e-logs" / f"sa-{namespace}.kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        yield str(path)
    finally:
        for doc in objects:
            if doc["kind"].startswith("Cluster"):
                kubectl.run(
                    "delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found", check=False
                )


def operator(request: pytest.FixtureRequest, kubeconfig: str, dsn: str, namespace: str, **env: str) -> Any:
    op = new_operator(kubeconfig=kubeconfig, dsn=dsn, namespace=namespace, log_dir=LOCAL / "e2e-logs", **env)
    request.node.operator_logs = [*getattr(request.node, "operator_logs", []), str(op.log_path)]
    return op


async def test_operator_as_its_service_account_records_a_run_a_cascade_and_an_abort(
    request: pytest.FixtureRequest,
    kube: KubeOps,
    db: Db,
    repo: ActionRepo,
    database_url: str,
    namespace: str,
    service_account_kubeconfig: str,
) -> None:
    op = operator(request, service_account_kubeconfig, database_url, namespace).start()
    try:
        project, run = namespace, "rrbac"
        ex = StandInExecutor(kube)
        await create(kube, namespace, project, run, "a0")
        await create(kube, namespace, project, run, "a1", "a0")
        await create(kube, namespace, project, run, "a2", "a1")
        await create(kube, namespace, project, run, "a3", "a0")
        await ex.run_through(namespace, f"{run}-a3", SUCCESS_PATH)
        await ex.run_through(namespace, f"{run}-a2", ["Queued", "Executing"])
        await until(
            lambda: db.phases(project, run) == {"a0": RUNNING, "a1": RUNNING, "a2": RUNNING, "a3": OK},
            what="run recorded",
        )
        await until(lambda: children_owned(kube, namespace), what="ownerReferences set by the ServiceAccount")
        await kube.delete_taskaction(namespace, f"{run}-a1")
        await until(
            lambda: db.phases(project, run) == {"a0": RUNNING, "a1": ABORTED, "a2": ABORTED, "a3": OK},
            what="cascade recorded",
        )
        await repo.abort_run(RunId(project, "development", run), "rbac test")

        async def gone() -> bool:
            return not await kube.list_taskactions(namespace)

        await until(gone, what="abort carried out by the sweep under the ServiceAccount")
        await until(
            lambda: db.actions(project, run)["a0"]["abort_requested_at"] is None, what="request cleared"
        )
        assert "Forbidden" not in op.log_tail(400) and " 403" not in op.log_tail(400), op.log_tail(60)
    finally:
        op.stop()


async def test_metrics_report_events_lag_patches_and_leadership_and_logs_are_json(
    request: pytest.FixtureRequest, kube: KubeOps, db: Db, kubeconfig: str, database_url: str, namespace: str
) -> None:
    op = operator(request, kubeconfig, database_url, namespace, TASKACTION_LOG_FORMAT="json").start()
    try:
        project, run = namespace, "rmetrics"
        await create(kube, namespace, project, run, "a0")
        # Only once the operator has seen the action is each transition sure to reach it as an event of
        # its own: an object it first lists already carries every transition made before.
        await until(lambda: "a0" in db.phases(project, run), what="a0 seen")
        # And its first-sight patch (the guard) in place: an executor faster than that patch finishes
        # the action first, and the guard is then never needed (one write, not two).

        async def guarded() -> bool:
            obj = await kube.get_taskaction(namespace, f"{run}-a0") or {}
            return RECORD_GUARD_FINALIZER in (obj.get("metadata", {}).get("finalizers") or [])

        await until(guarded, what="the guard on a0")
        await StandInExecutor(kube).run_through(namespace, f"{run}-a0", SUCCESS_PATH)
        await until(lambda: db.phases(project, run).get("a0") == OK, what="recorded")

        # The terminal patch (label, guard release) follows the commit: wait for it before counting.
        async def labelled() -> bool:
            obj = await kube.get_taskaction(namespace, f"{run}-a0") or {}
            return (obj.get("metadata", {}).get("labels") or {}).get(RECORDED_LABEL) == "true"

        await until(labelled, what="a0 labelled recorded")

        def value(text: str, name: str) -> float:
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith(name) and not line.startswith("#")
            )

        text = await until(
            lambda: (t := op.metrics()) and value(t, "taskaction_sweep_leader") == 1 and t,
            what="sweep leadership in the metrics",
        )
        assert (
            value(text, 'taskaction_events_received_total{type="LISTED"}')
            + value(text, 'taskaction_events_received_total{type="ADDED"}')
            >= 1
        )
        assert value(text, 'taskaction_events_recorded_total{type="MODIFIED"}') >= 3
        assert value(text, "taskaction_recording_lag_seconds_count") >= 4
        assert value(text, "taskaction_batch_rows_count") >= 1
        assert value(text, "taskaction_api_writes_total") >= 2  # guard on first sight, label at the end
        assert "taskaction_db_errors_total" in text
    finally:
        op.stop()
    lines = [line for line in op.log_text().splitlines() if line.strip()]
    assert lines
    assert all("message" in json.loads(line) for line in lines), "a log line is not JSON"


async def test_sigterm_finishes_in_flight_work_and_exits_within_the_grace_period(
    request: pytest.FixtureRequest, kube: KubeOps, db: Db, kubeconfig: str, database_url: str, namespace: str
) -> None:
    op = operator(request, kubeconfig, database_url, namespace).start()
    project, run = namespace, "rsigterm"
    ex = StandInExecutor(kube)
    await create(kube, namespace, project, run, "a0")
    names = [f"a{i}" for i in range(1, 31)]
    await asyncio.gather(*(create(kube, namespace, project, run, n, "a0") for n in names))
    await asyncio.gather(*(ex.run_through(namespace, f"{run}-{n}", SUCCESS_PATH) for n in names))
    started = time.monotonic()
    code = await asyncio.to_thread(op.stop)
    took = time.monotonic() - started
    assert code == 0, op.log_tail()
    assert took < 25, f"took {took:.1f} s to stop (grace period 30 s)"
    successor = operator(request, kubeconfig, database_url, namespace).start()
    try:
        want = {"a0": RUNNING, **{n: OK for n in names}}
        await until(lambda: db.phases(project, run) == want, what="everything recorded after the restart")
    finally:
        successor.stop()


async def test_rolling_restart_of_two_replicas_under_load_loses_nothing_and_keeps_one_sweep_leader(
    request: pytest.FixtureRequest, kube: KubeOps, db: Db, kubeconfig: str, database_url: str, namespace: str
) -> None:
    a = operator(request, kubeconfig, database_url, namespace).start()
    b = operator(request, kubeconfig, database_url, namespace).start()
    c: Any = None
    project, run = namespace, "rrolling"
    ex = StandInExecutor(kube)
    names = [f"a{i}" for i in range(1, 41)]
    try:
        await create(kube, namespace, project, run, "a0")
        await asyncio.gather(*(create(kube, namespace, project, run, n, "a0") for n in names))

        async def drive() -> None:
            for phase in SUCCESS_PATH:
                await asyncio.gather(*(ex.move(namespace, f"{run}-{n}", phase) for n in names))
                await asyncio.sleep(0.5)

        driving = asyncio.create_task(drive())
        await asyncio.sleep(0.4)
        assert await asyncio.to_thread(a.stop) == 0
        c = operator(request, kubeconfig, database_url, namespace).start()
        await asyncio.sleep(0.4)
        assert await asyncio.to_thread(b.stop) == 0
        await driving
        await ex.run_through(namespace, f"{run}-a0", SUCCESS_PATH)
        want = {"a0": OK, **{n: OK for n in names}}
        await until(lambda: db.phases(project, run) == want, what="every transition recorded")
        for n in names:
            assert db.events(project, run, n) == [(1, p, 0) for p in (1, 3, 4, 5)], n
        lease = await asyncio.to_thread(
            kube.coordination.read_namespaced_lease, "taskaction-operator-sweep", namespace
        )
        await until(
            lambda: "taskaction_sweep_leader 1.0" in c.metrics(),
            timeout=30,
            what="the surviving replica leads the sweep",
        )
        assert lease.spec is not None
    finally:
        for op in (a, b, c):
            if op is not None:
                op.stop()


def _connections_to(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` to ``port`` (from /proc: no tools needed; the
    process's own network namespace, a Pod's on kind)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table, encoding="ascii") as f:
            next(f)
            for line in f:
                fields = line.split()
                remote, state, inode = fields[2], fields[3], fields[9]
                if state == "01" and inode in inodes and int(remote.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def _threads(pid: int) -> int:
    """Threads of process ``pid`` (from /proc)."""
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.mark.parametrize("limit", [2, 200])
async def test_connections_to_the_api_server_stay_within_the_limit_under_load(
    request: pytest.FixtureRequest,
    kube: KubeOps,
    db: Db,
    kubeconfig: str,
    database_url: str,
    namespace: str,
    limit: int,
) -> None:
    """kopf's requests share TASKACTION_API_CONNECTIONS connections (plus one for the watch stream)
    however many objects change at once, and nothing waits for ever on a free one: 60 children
    patched concurrently are all recorded and owned with two. With the record guard off, so that the
    operator's patches (ownerReferences, labels) are merge patches kopf sends on its session: with
    the guard on, finalizer patches go through the official client's worker threads instead."""
    op = operator(
        request,
        kubeconfig,
        database_url,
        namespace,
        TASKACTION_API_CONNECTIONS=str(limit),
        TASKACTION_RECORD_GUARD="false",
    ).start()
    port = op.api_port
    project, run = namespace, "rconns"
    names = [f"a{i}" for i in range(1, 61)]
    ex = StandInExecutor(kube)
    seen: list[int] = []
    workers: list[int] = []
    sampling = True

    async def sample() -> None:
        while sampling:
            seen.append(_connections_to(op.pid, port))
            workers.append(_threads(op.pid) - 1)  # all but the event loop's
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        await create(kube, namespace, project, run, "a0")
        await asyncio.gather(*(create(kube, namespace, project, run, n, "a0") for n in names))
        for phase in SUCCESS_PATH:
            await asyncio.gather(*(ex.move(namespace, f"{run}-{n}", phase) for n in names))
        await ex.run_through(namespace, f"{run}-a0", SUCCESS_PATH)
        want = {"a0": OK, **{n: OK for n in names}}
        await until(lambda: db.phases(project, run) == want, what="every transition recorded")
        await until(lambda: children_owned(kube, namespace), what="owners set")
    finally:
        sampling = False
        await sampler
        op.stop()
    # The official client (lease renewals, parent look-ups, listings) runs in worker threads: at most
    # one connection each, kept in its pool (32) once used. Counted, not assumed from the default
    # executor's size: every thread but the event loop's is taken to hold one.
    official = max(workers)
    if limit == 2:
        assert max(seen) <= limit + 1 + official, seen
    else:  # the same load with room to spare opens more: the limit is what holds the line above
        assert max(seen) > 2 + 1 + official, seen
