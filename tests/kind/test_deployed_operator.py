"""The operator as users install it: the image from our Dockerfile running as two Pods of
manifests/overlays/kind under a real kubelet (``make kind-e2e`` runs these before the e2e suite).

What only a Pod can show: its ServiceAccount's token and RBAC against a real API server, the probes
the kubelet calls, the metrics Service, the read-only root filesystem of the image, one sweep leader
among the replicas, and SIGTERM on a rolling restart (the leader hands its Lease over at once instead
of letting it expire)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.e2e.conftest import Kubectl

NS = "taskaction-system"
SELECTOR = "app.kubernetes.io/name=taskaction-operator,app.kubernetes.io/component=operator"
LEASE = "taskaction-operator-sweep"


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 90, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def operator_pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    pods = kubectl.json("-n", NS, "get", "pods", "-l", SELECTOR)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def holder(kubectl: Kubectl) -> str:
    lease = kubectl.try_run("-n", NS, "get", "lease", LEASE, "-o", "json")
    if lease.returncode != 0:
        return ""
    return str(json.loads(lease.stdout)["spec"].get("holderIdentity") or "")


def proxy(kubectl: Kubectl, path: str) -> str:
    return kubectl.run("get", "--raw", path)


def leaders_by_metric(kubectl: Kubectl, names: set[str]) -> list[str]:
    """The pods among NAMES whose sampled taskaction_sweep_leader gauge says they lead."""
    leaders = []
    for name in sorted(names):
        text = proxy(kubectl, f"/api/v1/namespaces/{NS}/pods/{name}:9090/proxy/metrics")
        (line,) = [ln for ln in text.splitlines() if ln.startswith("taskaction_sweep_leader ")]
        if float(line.split()[1]) == 1.0:
            leaders.append(name)
    return leaders


@pytest.fixture(scope="module")
def kubectl(kubeconfig: str) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture
def sample_namespace(kubectl: Kubectl) -> Any:
    name = f"kind-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


def apply_action(kubectl: Kubectl, namespace: str, run: str) -> None:
    body = {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {"name": f"{run}-a0", "namespace": namespace},
        "spec": {
            "runName": run,
            "actionName": "a0",
            "project": "kindproj",
            "domain": "development",
            "inputUri": f"s3://bucket/{run}/inputs.pb",
            "runOutputBase": f"s3://bucket/{run}",
            "taskType": "python",
            "taskTemplate": "e30=",
        },
    }
    kubectl.run("apply", "-f", "-", input=json.dumps(body))


def recorded_phase(database_url: str, run: str) -> str | None:
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT phase FROM actions WHERE project = 'kindproj' AND run_name = %s AND name = 'a0'", (run,)
        ).fetchone()
    return None if row is None else str(row[0])


def test_two_replicas_run_the_local_image_read_only_and_non_root(kubectl: Kubectl) -> None:
    wait_for("two Ready operator pods", lambda: len([p for p in operator_pods(kubectl) if ready(p)]) == 2)
    pods = operator_pods(kubectl)
    assert len(pods) == 2
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        assert container["image"].endswith("taskaction-operator:dev")
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] and status["restartCount"] == 0, status
        # The image itself, not just the spec: writing outside /tmp fails, /tmp (an emptyDir) works.
        name = pod["metadata"]["name"]
        probe = "import os\ntry:\n open('/opt/venv/x','w')\nexcept OSError as e:\n print(e.errno)\n"
        probe += "print(os.getuid())"
        out = kubectl.run("-n", NS, "exec", name, "--", "python", "-c", probe).split()
        assert out == ["30", "65532"], out  # EROFS, then the image's numeric user
        kubectl.run("-n", NS, "exec", name, "--", "python", "-c", "open('/tmp/x','w').write('ok')")


def test_probes_and_metrics_service_answer_through_the_api_server(kubectl: Kubectl) -> None:
    (pod, *_) = [p for p in operator_pods(kubectl) if ready(p)]
    name = pod["metadata"]["name"]
    health = json.loads(proxy(kubectl, f"/api/v1/namespaces/{NS}/pods/{name}:8080/proxy/healthz"))
    assert "recorder" in health, health
    service = "taskaction-operator-metrics:9090"
    metrics = proxy(kubectl, f"/api/v1/namespaces/{NS}/services/{service}/proxy/metrics")
    assert "taskaction_sweep_leader" in metrics


def test_exactly_one_replica_leads_the_sweep(kubectl: Kubectl) -> None:
    names = {p["metadata"]["name"] for p in operator_pods(kubectl)}

    # The gauge is sampled periodically, so it may trail the Lease for a moment: wait until the
    # Lease holder is one of the pods and it alone reports itself leader.
    def agreed() -> str:
        leader = holder(kubectl)
        return leader if leader in names and leaders_by_metric(kubectl, names) == [leader] else ""

    leader = wait_for("one leader, by the Lease and by the metric", agreed, timeout=60, every=2)
    assert leaders_by_metric(kubectl, names) == [leader]


def test_the_deployed_operator_records_through_its_serviceaccount(
    kubectl: Kubectl, sample_namespace: str, database_url: str
) -> None:
    run = f"r{uuid.uuid4().hex[:10]}"
    apply_action(kubectl, sample_namespace, run)

    # The guard finalizer (RBAC: patch TaskActions) and the row (the Secret's DSN, in-cluster DNS).
    def finalizers() -> list[str]:
        body = kubectl.json("-n", sample_namespace, "get", "taskaction", f"{run}-a0")
        return list(body["metadata"].get("finalizers", []))

    wait_for("the record guard", lambda: "flyte.org/record-guard" in finalizers())
    assert wait_for("the recorded row", lambda: recorded_phase(database_url, run)) is not None


def test_sigterm_on_rolling_restart_hands_the_lease_over_and_recording_goes_on(
    kubectl: Kubectl, sample_namespace: str, database_url: str
) -> None:
    old = {p["metadata"]["name"] for p in operator_pods(kubectl)}
    leader = wait_for("a sweep leader", lambda: holder(kubectl))
    before = time.monotonic()
    deployment = "deployment/taskaction-operator"
    kubectl.run("-n", NS, "rollout", "restart", deployment)
    kubectl.run("-n", NS, "rollout", "status", deployment, "--timeout=180s", timeout=200)
    # The old leader released the Lease on SIGTERM: a new pod holds it, and it did not wait for the
    # 15 s expiry of an abandoned Lease after the old leader's pod went away.
    new_leader = wait_for("a leader among the new pods", lambda: (h := holder(kubectl)) not in old and h)
    assert new_leader != leader
    assert time.monotonic() - before < 180
    run = f"r{uuid.uuid4().hex[:10]}"
    apply_action(kubectl, sample_namespace, run)
    assert wait_for("the row after the restart", lambda: recorded_phase(database_url, run)) is not None


def test_sigkill_of_the_operator_process_loses_nothing(
    kubectl: Kubectl, sample_namespace: str, database_url: str
) -> None:
    """The fault in its Kubernetes form: the operator's process killed with SIGKILL (no shutdown, no
    Lease released) right after a TaskAction was created, with one replica only, so no other one
    covers for it. The kubelet restarts the container, and every TaskAction, the one in flight and
    one created while it was down, is recorded by the restarted process."""
    node = os.environ.get("TASKACTION_KIND_NODE", "taskaction-control-plane")
    deployment = "deployment/taskaction-operator"
    kubectl.run("-n", NS, "scale", deployment, "--replicas=1")
    try:
        wait_for(
            "one operator pod", lambda: len(operator_pods(kubectl)) == 1 and ready(operator_pods(kubectl)[0])
        )
        sigkill_and_check(kubectl, node, sample_namespace, database_url)
    finally:
        kubectl.run("-n", NS, "scale", deployment, "--replicas=2")
        kubectl.run("-n", NS, "rollout", "status", deployment, "--timeout=180s", timeout=200)


def sigkill_and_check(kubectl: Kubectl, node: str, sample_namespace: str, database_url: str) -> None:
    leader = wait_for(
        "the sweep leader",
        lambda: (
            holder(kubectl) in {p["metadata"]["name"] for p in operator_pods(kubectl)} and holder(kubectl)
        ),
    )
    (pod,) = [p for p in operator_pods(kubectl) if p["metadata"]["name"] == leader]
    (status,) = pod["status"]["containerStatuses"]
    restarts = status["restartCount"]
    container = status["containerID"].removeprefix("containerd://")
    tasks = subprocess.run(
        ["docker", "exec", node, "ctr", "-n", "k8s.io", "tasks", "ls"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    (pid,) = [line.split()[1] for line in tasks.splitlines() if line.startswith(container)]
    in_flight = f"r{uuid.uuid4().hex[:10]}"
    apply_action(kubectl, sample_namespace, in_flight)
    subprocess.run(["docker", "exec", node, "kill", "-KILL", pid], timeout=30, check=True)
    while_down = f"r{uuid.uuid4().hex[:10]}"
    apply_action(kubectl, sample_namespace, while_down)

    def restarted() -> bool:
        (p,) = [p for p in operator_pods(kubectl) if p["metadata"]["name"] == leader]
        return bool(p["status"]["containerStatuses"][0]["restartCount"] > restarts and ready(p))

    wait_for("the killed container restarted and Ready", restarted, timeout=180)
    for run in (in_flight, while_down):
        assert wait_for(f"the row of {run}", lambda run=run: recorded_phase(database_url, run)) is not None
