"""The faults of tests/e2e/test_operator_faults.py in their Kubernetes form, against the operator
running as two Pods of manifests/overlays/kind and its in-cluster PostgreSQL: the database's workload
scaled to zero, the API server's static Pod container stopped (the kubelet restarts it), the whole
kind node frozen. Each drives a seven-action run with the stand-in executor across the fault and ends
with the record equal to the cluster's truth, every event recorded exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from taskaction_operator.crd.names import RECORDED_LABEL
from taskaction_operator.k8s import KubeOps
from tests.e2e.conftest import Kubectl, KubectlError
from tests.e2e.operator import Db, until
from tests.e2e.test_operator_faults import ENDINGS, FIRST_HALF, TREE, Run, assert_record_matches
from tests.kind.test_deployed_operator import NS, holder, leaders_by_metric, operator_pods, ready, wait_for

NODE = os.environ.get("TASKACTION_KIND_NODE", "taskaction-control-plane")
POSTGRES = "deployment/taskaction-postgres"
LEAVES = ("a3", "a4", "a5", "a6")
INNER = ("a0", "a1", "a2")


@pytest.fixture(scope="module")
def kubectl(kubeconfig: str) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"kind-fault-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def docker(*args: str, timeout: float = 30) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=True
    ).stdout


def answers(database_url: str) -> bool:
    try:
        with psycopg.connect(database_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def system_identifier(db: Db) -> int:
    """Set by initdb, once per database cluster: the same value means the same data directory."""
    return int(db.query("SELECT system_identifier FROM pg_control_system()")[0]["system_identifier"])


def api_server_answers(kubectl: Kubectl) -> bool:
    return kubectl.try_run("get", "--raw", "/readyz").returncode == 0


def postgres_pods(kubectl: Kubectl) -> list[str]:
    pods = kubectl.json("-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=taskaction-postgres")["items"]
    return [p["metadata"]["name"] for p in pods]


async def labelled_early(kube: KubeOps, namespace: str) -> list[str]:
    return [
        o["spec"]["actionName"]
        for o in await kube.list_taskactions(namespace)
        if RECORDED_LABEL in o["metadata"].get("labels", {})
    ]


async def first_half_recorded(run: Run, db: Db, what: str) -> None:
    await run.create()
    await run.drive({a: FIRST_HALF for a, _ in TREE})
    await until(
        lambda: (
            all(p >= 3 for p in db.phases(run.project, run.name).values())
            and len(db.phases(run.project, run.name)) == len(TREE)
        ),
        timeout=60,
        what=what,
    )


async def test_postgres_scaled_to_zero_mid_run_loses_nothing_and_labels_nothing_early(
    kube: KubeOps, kubectl: Kubectl, db: Db, database_url: str, namespace: str
) -> None:
    """The in-cluster PostgreSQL's Deployment scaled to zero while the run goes on, then back to one:
    its data directory (a PersistentVolume on the node) outlives the pod, nothing the operator saw
    during the outage is lost, and no TaskAction is labelled recorded before its end is written."""
    identifier = system_identifier(db)
    (before,) = postgres_pods(kubectl)
    run = Run(kube, namespace, "rdbzero")
    await first_half_recorded(run, db, "recorded before the outage")
    kubectl.run("-n", NS, "scale", POSTGRES, "--replicas=0")
    try:
        wait_for("the PostgreSQL pod gone", lambda: not postgres_pods(kubectl), timeout=120)
        assert not answers(database_url), "PostgreSQL still answers with its Deployment at zero"
        await run.drive({a: ["Executing", ENDINGS[a]] for a in LEAVES})
        await run.drive({a: ["Executing"] for a in INNER})
        await asyncio.sleep(20)
        early = await labelled_early(kube, namespace)
        assert not early, f"labelled recorded while the database was down: {early}"
    finally:
        kubectl.run("-n", NS, "scale", POSTGRES, "--replicas=1")
        kubectl.run("-n", NS, "rollout", "status", POSTGRES, "--timeout=180s", timeout=200)
    wait_for("PostgreSQL through the port-forward again", lambda: answers(database_url), timeout=60)
    (after,) = postgres_pods(kubectl)
    assert after != before
    assert system_identifier(db) == identifier, "a new pod, but initdb ran again: the data did not survive"
    await run.drive({a: [ENDINGS[a]] for a in ("a1", "a2")})
    await run.drive({"a0": [ENDINGS["a0"]]})
    await assert_record_matches(run, db)


def api_server(kubectl: Kubectl) -> tuple[str, int]:
    """The kube-apiserver static Pod's container (its containerd id) and restart count."""
    (pod,) = kubectl.json("-n", "kube-system", "get", "pods", "-l", "component=kube-apiserver")["items"]
    (status,) = pod["status"]["containerStatuses"]
    return status["containerID"].removeprefix("containerd://"), int(status["restartCount"])


async def test_api_server_container_restarted_mid_run_loses_nothing(
    kube: KubeOps, kubectl: Kubectl, db: Db, namespace: str
) -> None:
    """The API server's container stopped in the node (SIGTERM through containerd, as a kubelet stop
    would) with transitions still in flight; the kubelet starts a new one for the static Pod, the
    operators' watches resume and everything before and after is recorded once."""
    run = Run(kube, namespace, "rapi")
    await first_half_recorded(run, db, "recorded before the restart")
    container, restarts = api_server(kubectl)
    await run.drive({a: ["Executing"] for a in LEAVES})
    docker("exec", NODE, "ctr", "-n", "k8s.io", "tasks", "kill", container)

    def restarted() -> bool:
        # While it is down every kubectl call fails; once back, its static Pod's mirror shows the
        # new container only when the kubelet has reported it.
        try:
            now, count = api_server(kubectl)
        except KubectlError:
            return False
        return now != container and count > restarts and api_server_answers(kubectl)

    wait_for("a new kube-apiserver container serving", restarted, timeout=240, every=1)
    await run.drive({a: [ENDINGS[a]] for a in LEAVES})
    await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a1", "a2")})
    await run.drive({"a0": ["Executing", ENDINGS["a0"]]})
    await assert_record_matches(run, db)


async def test_node_frozen_past_the_lease_loses_nothing_and_one_replica_leads(
    kube: KubeOps, kubectl: Kubectl, db: Db, namespace: str
) -> None:
    """The whole kind node frozen (docker pause: every process in it, the API server, etcd, the
    kubelet, PostgreSQL and both operator replicas) for longer than the sweep Lease lasts, with
    transitions in flight, as a suspended VM is. On resume every timer in the node is overdue at once
    and the Lease looks expired to both replicas: nothing is lost, nothing recorded twice, and
    exactly one replica leads afterwards."""
    run = Run(kube, namespace, "rpause")
    await first_half_recorded(run, db, "recorded before the freeze")
    lease = kubectl.json("-n", NS, "get", "lease", "taskaction-operator-sweep")["spec"]
    await run.drive({a: ["Executing"] for a in LEAVES})
    docker("pause", NODE)
    try:
        await asyncio.sleep(int(lease["leaseDurationSeconds"]) + 5)
        frozen = kubectl.try_run("--request-timeout=3s", "get", "--raw", "/readyz")
        assert frozen.returncode != 0, "the API server answered inside a paused node"
    finally:
        docker("unpause", NODE)
    wait_for("the API server after the freeze", lambda: api_server_answers(kubectl), timeout=120, every=1)
    await run.drive({a: [ENDINGS[a]] for a in LEAVES})
    await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a1", "a2")})
    await run.drive({"a0": ["Executing", ENDINGS["a0"]]})
    await assert_record_matches(run, db)
    wait_for(
        "two Ready replicas", lambda: len([p for p in operator_pods(kubectl) if ready(p)]) == 2, timeout=120
    )
    names = {p["metadata"]["name"] for p in operator_pods(kubectl)}

    def one_leader() -> str:
        leader = holder(kubectl)
        return leader if leader in names and leaders_by_metric(kubectl, names) == [leader] else ""

    wait_for("one leader, by the Lease and by the metric", one_leader, timeout=60, every=2)
