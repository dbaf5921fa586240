"""The shipped manifests against the real API server: every rendered object passes a server-side
dry run (schema, admission, Pod Security "restricted"), and the operator's RBAC grants exactly what
the operator does, shown both with ``kubectl auth can-i --as`` and with a real ServiceAccount token.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.e2e.conftest import Kubectl

pytestmark = pytest.mark.cluster

KUSTOMIZATIONS = ["manifests/base", "manifests/overlays/kind"]
OPERATOR_NAMESPACE = "taskaction-system"


def render(kubectl: Kubectl, path: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(kubectl.run("kustomize", str(ROOT / path))) if doc]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def operator_namespace(kubectl: Kubectl) -> Iterator[str]:
    """``taskaction-system`` applied for real (a server dry run of namespaced objects needs it), and
    deleted afterwards unless it was there before (as on a kind cluster running the operator)."""
    existed = kubectl.try_run("get", "namespace", OPERATOR_NAMESPACE).returncode == 0
    namespace = _one(render(kubectl, "manifests/base"), "Namespace", OPERATOR_NAMESPACE)
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump(namespace))
    yield OPERATOR_NAMESPACE
    if not existed:
        kubectl.run("delete", "namespace", OPERATOR_NAMESPACE, "--wait=true", "--timeout=90s", timeout=120)


#: Kinds without a namespace: the kind overlay's PostgreSQL adds a PersistentVolume.
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
}


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_kustomization_passes_server_dry_run_without_warnings(
    kubectl: Kubectl, operator_namespace: str, path: str
) -> None:
    docs = render(kubectl, path)
    proc = kubectl.try_run("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs))
    assert proc.returncode == 0, f"server dry run of {path} failed:\n{proc.stderr}"
    # Pod Security "restricted" (enforced on the namespace) only warns for workload objects.
    assert "Warning" not in proc.stderr, f"the API server warned about {path}:\n{proc.stderr}"
    applied = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(docs), proc.stdout
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace") == operator_namespace, doc["metadata"]


def test_kind_overlay_runs_the_local_dev_image_and_its_own_database(kubectl: Kubectl) -> None:
    docs = render(kubectl, "manifests/overlays/kind")
    operator = _one(docs, "Deployment", "taskaction-operator")["spec"]["template"]["spec"]["containers"][0]
    assert operator["image"] == "taskaction-operator:dev"
    assert operator["imagePullPolicy"] == "IfNotPresent"
    prune = _one(docs, "CronJob", "taskaction-prune")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert prune["containers"][0]["image"] == "taskaction-operator:dev"  # the optional retention component
    secret = _one(docs, "Secret", "taskaction-db")
    host = _one(docs, "Service", "taskaction-postgres")["metadata"]["name"]
    assert f"@{host}.{OPERATOR_NAMESPACE}.svc:5432/" in secret["stringData"]["url"]
    assert (
        _one(docs, "Deployment", "taskaction-postgres")["spec"]["template"]["spec"]["containers"][0]["image"]
        == "postgres:15"
    )


# --- the optional observability component --------------------------------------------------------
#: Kinds of the Prometheus Operator, whose CRDs this cluster does not have: the API server cannot dry-run
#: them, so tests/unit/test_observability_pack.py checks their shape against that API's fields instead.
MONITORING_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.fixture
def with_observability() -> Iterator[str]:
    """A kustomization of the base plus components/observability, as an overlay would write it."""
    overlay = ROOT / ".local" / f"kustomize-observability-{uuid.uuid4().hex[:8]}"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../../manifests/base]\ncomponents: [../../manifests/components/observability]\n"
    )
    try:
        yield str(overlay.relative_to(ROOT))
    finally:
        (overlay / "kustomization.yaml").unlink()
        overlay.rmdir()


def test_observability_component_renders_and_the_served_kinds_pass_server_dry_run(
    kubectl: Kubectl, operator_namespace: str, with_observability: str
) -> None:
    from tests import observability_pack as pack

    base = render(kubectl, "manifests/base")
    docs = render(kubectl, with_observability)
    added = [d for d in docs if d not in base]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in added) == [
        ("ConfigMap", "taskaction-operator-dashboard"),
        ("PrometheusRule", "taskaction-operator"),
        ("ServiceMonitor", "taskaction-events"),
        ("ServiceMonitor", "taskaction-operator"),
    ]
    for doc in added:
        assert doc["metadata"]["namespace"] == operator_namespace
        assert doc["apiVersion"] == ("v1" if doc["kind"] == "ConfigMap" else "monitoring.coreos.com/v1")
    dashboard = _one(docs, "ConfigMap", "taskaction-operator-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"] == {"taskaction-operator.json": pack.DASHBOARD_FILE.read_text(encoding="utf-8")}
    served = [d for d in docs if d["kind"] not in MONITORING_KINDS]
    proc = kubectl.try_run("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(served))
    assert proc.returncode == 0, proc.stderr
    assert "configmap/taskaction-operator-dashboard created (server dry run)" in proc.stdout
    # Without the CRDs the API server refuses the rest by kind, never silently.
    refused = kubectl.try_run(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=yaml.safe_dump(_one(docs, "PrometheusRule", "taskaction-operator")),
    )
    assert refused.returncode != 0 and "monitoring.coreos.com/v1" in refused.stderr


# --- RBAC ---------------------------------------------------------------------------------------

#: (verb, resource, subresource, namespace or None for the test namespace, "*" for all namespaces)
ALLOWED = [
    *[
        (verb, "taskactions.flyte.org", "", ns)
        for verb in ("get", "list", "watch", "patch", "delete")
        for ns in (None, "default")
    ],
    ("list", "taskactions.flyte.org", "", "*"),
    ("watch", "taskactions.flyte.org", "", "*"),
    ("update", "taskactions.flyte.org", "finalizers", None),
    ("create", "events", "", None),
    ("patch", "events", "", "default"),
    ("create", "events.events.k8s.io", "", None),
    ("patch", "events.events.k8s.io", "", None),
    ("get", "leases.coordination.k8s.io", "", None),
    ("create", "leases.coordination.k8s.io", "", None),
    ("update", "leases.coordination.k8s.io", "", None),
    # Sharded recording: one LIST of the shard Leases per pass, a stopped replica's member Lease deleted.
    ("list", "leases.coordination.k8s.io", "", None),
    ("delete", "leases.coordination.k8s.io", "", None),
]
DENIED = [
    ("get", "secrets", "", None),
    ("list", "secrets", "", None),
    ("list", "secrets", "", "*"),
    ("create", "pods", "", None),
    ("create", "pods", "", "default"),
    *[
        (verb, "deployments.apps", "", None)
        for verb in ("get", "list", "create", "update", "patch", "delete")
    ],
    *[(verb, "configmaps", "", None) for verb in ("get", "list", "create", "update", "patch", "delete")],
    # Nothing beyond the operator's own writes on TaskActions.
    ("create", "taskactions.flyte.org", "", None),
    ("update", "taskactions.flyte.org", "", None),
    ("deletecollection", "taskactions.flyte.org", "", None),
    ("patch", "taskactions.flyte.org", "status", None),
    ("update", "taskactions.flyte.org", "status", None),
    # Leases only in the operator's own namespace.
    ("get", "leases.coordination.k8s.io", "", "kube-node-lease"),
    ("update", "leases.coordination.k8s.io", "", "kube-system"),
    ("list", "leases.coordination.k8s.io", "", "kube-system"),
    ("delete", "leases.coordination.k8s.io", "", "kube-node-lease"),
    # kopf's runtime scanning is off (controller/lifecycle.py), so no CRDs and no namespaces.
    *[(verb, "customresourcedefinitions.apiextensions.k8s.io", "", "*") for verb in ("get", "list", "watch")],
    ("list", "namespaces", "", "*"),
    ("watch", "namespaces", "", "*"),
    ("list", "events", "", None),
    ("create", "serviceaccounts/token", "", None),
    ("create", "rolebindings.rbac.authorization.k8s.io", "", None),
]


def _rbac_for(
    docs: list[dict[str, Any]], namespace: str, suffix: str, account: str = "taskaction-operator"
) -> list[dict[str, Any]]:
    """The base's ServiceAccount ``account`` and its RBAC (the objects named after it), moved into
    ``namespace`` with uniquely named cluster objects."""
    out = []
    for doc in docs:
        if doc["kind"] not in {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}:
            continue
        if not doc["metadata"]["name"].startswith(account):
            continue
        doc = json.loads(json.dumps(doc))
        meta = doc["metadata"]
        if doc["kind"].startswith("Cluster"):
            meta["name"] = f"{meta['name']}-{suffix}"
        else:
            meta["namespace"] = namespace
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] = f"{doc['roleRef']['name']}-{suffix}"
        for subject in doc.get("subjects", []):
            subject["namespace"] = namespace
        out.append(doc)
    return out


@pytest.fixture
def operator_account(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """The operator's ServiceAccount and RBAC from manifests/base, created for real in a test
    namespace (cluster-scoped objects suffixed, deleted afterwards); yields the user name."""
    suffix = uuid.uuid4().hex[:8]
    objects = _rbac_for(render(kubectl, "manifests/base"), namespace, suffix)
    assert sorted(d["kind"] for d in objects) == sorted(
        ["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
    )
    cluster_scoped = [d for d in objects if d["kind"].startswith("Cluster")]
    try:
        kubectl.run("apply", "-f", "-", input=yaml.safe_dump_all(objects))
        sa = _one(objects, "ServiceAccount", "taskaction-operator")["metadata"]["name"]
        yield f"system:serviceaccount:{namespace}:{sa}"
    finally:
        for doc in cluster_scoped:
            kubectl.run(
                "delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found", check=False
            )


def _can_i(kubectl: Kubectl, user: str, verb: str, resource: str, sub: str, ns: str) -> bool:
    scope = ["--all-namespaces"] if ns == "*" else ["-n", ns]
    args = ["auth", "can-i", verb, resource, "--as", user, *scope]
    if sub:
        args += ["--subresource", sub]
    proc = kubectl.try_run(*args)
    answer = proc.stdout.strip()
    assert answer in {"yes", "no"}, f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return answer == "yes"


def test_operator_account_can_do_exactly_what_the_operator_does(
    kubectl: Kubectl, namespace: str, operator_account: str
) -> None:
    def label(row: tuple[str, str, str, str | None]) -> str:
        verb, resource, sub, ns = row
        return f"{verb} {resource}{'/' + sub if sub else ''} in {ns or namespace}"

    missing = [label(r) for r in ALLOWED if not _can_i(kubectl, operator_account, *r[:3], r[3] or namespace)]
    extra = [label(r) for r in DENIED if _can_i(kubectl, operator_account, *r[:3], r[3] or namespace)]
    assert (missing, extra) == ([], []), f"the operator's RBAC lacks {missing} and grants too much: {extra}"


def token_kubeconfig(kubectl: Kubectl, token: str, path: Path) -> Kubectl:
    """A kubectl that authenticates with ``token`` alone: the admin kubeconfig's cluster, no client
    certificate (kind's admin is a certificate, which kubectl would present beside --token and be
    taken for the admin)."""
    admin = yaml.safe_load(Path(kubectl.kubeconfig).read_text())
    current = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == current["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "token", "user": {"token": token}}],
        "contexts": [{"name": "token", "context": {"cluster": cluster["name"], "user": "token"}}],
        "current-context": "token",
    }
    path.write_text(yaml.safe_dump(config))
    return Kubectl(str(path))


def test_operator_token_performs_the_operator_writes_and_is_refused_the_rest(
    kubectl: Kubectl, namespace: str, operator_account: str, tmp_path: Path
) -> None:
    sa = operator_account.rsplit(":", 1)[1]
    token = kubectl.run("create", "token", sa, "-n", namespace, "--duration=10m").strip()
    operator = token_kubeconfig(kubectl, token, tmp_path / "operator-kubeconfig")

    def as_operator(*args: str, input: str | None = None) -> Any:
        return operator.try_run(*args, input=input)

    whoami = json.loads(as_operator("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == operator_account

    # Parent and child TaskActions, created by the admin (the operator never creates them).
    example = Path(ROOT / "examples" / "flyte-taskaction.yaml").read_text()
    kubectl.run("apply", "-n", namespace, "-f", "-", input=example)
    parent = kubectl.json("get", "taskaction", "rdemo1-a0", "-n", namespace)
    child = {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {"name": "rdemo1-a1"},
        "spec": {
            "runName": "rdemo1",
            "project": "flytesnacks",
            "domain": "development",
            "actionName": "a1",
            "parentActionName": "a0",
        },
    }
    kubectl.run("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(child))

    # The operator's patch: owner reference (blockOwnerDeletion), record guard, recorded label.
    patch = {
        "metadata": {
            "ownerReferences": [
                {
                    "apiVersion": "flyte.org/v1",
                    "kind": "TaskAction",
                    "name": "rdemo1-a0",
                    "uid": parent["metadata"]["uid"],
                    "blockOwnerDeletion": True,
                }
            ],
            "finalizers": ["flyte.org/record-guard"],
            "labels": {"flyte.org/terminal-status-recorded": "true"},
        }
    }
    proc = as_operator(
        "patch", "taskaction", "rdemo1-a1", "-n", namespace, "--type", "merge", "-p", json.dumps(patch)
    )
    assert proc.returncode == 0, proc.stderr
    got = kubectl.json("get", "taskaction", "rdemo1-a1", "-n", namespace)["metadata"]
    assert got["ownerReferences"][0]["blockOwnerDeletion"] is True
    assert got["finalizers"] == ["flyte.org/record-guard"]
    assert as_operator("get", "taskactions", "--all-namespaces").returncode == 0
    assert (
        as_operator(
            "patch",
            "taskaction",
            "rdemo1-a1",
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
        ).returncode
        == 0
    )
    assert as_operator("delete", "taskaction", "rdemo1-a1", "-n", namespace, "--wait=false").returncode == 0

    # An Event (core/v1, as kopf posts) and the sweep's Lease in its own namespace.
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "rdemo1-a0."},
        "involvedObject": {
            "apiVersion": "flyte.org/v1",
            "kind": "TaskAction",
            "name": "rdemo1-a0",
            "namespace": namespace,
            "uid": parent["metadata"]["uid"],
        },
        "type": "Normal",
        "reason": "Recorded",
        "message": "rbac test",
        "source": {"component": "taskaction-operator"},
    }
    proc = as_operator("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(event))
    assert proc.returncode == 0, proc.stderr
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "taskaction-sweep"},
        "spec": {"holderIdentity": "replica-a"},
    }
    proc = as_operator("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(lease))
    assert proc.returncode == 0, proc.stderr
    current = json.loads(
        as_operator("get", "lease", "taskaction-sweep", "-n", namespace, "-o", "json").stdout
    )
    current["spec"]["holderIdentity"] = "replica-b"
    proc = as_operator("replace", "-n", namespace, "-f", "-", input=json.dumps(current))
    assert proc.returncode == 0, proc.stderr

    # Refused: reading Secrets, starting Pods, touching Deployments and ConfigMaps.
    for args in (
        ("get", "secrets", "-n", namespace),
        ("get", "secrets", "--all-namespaces"),
        ("run", "intruder", "-n", namespace, "--image", "busybox", "--restart", "Never"),
        ("get", "deployments", "-n", namespace),
        ("create", "configmap", "intruder", "-n", namespace, "--from-literal", "a=b"),
    ):
        proc = as_operator(*args)
        assert proc.returncode != 0 and "forbidden" in proc.stderr.lower(), (args, proc.stdout, proc.stderr)


# --- the API server (events.yaml, api-rbac.yaml) -------------------------------------------------
API_ALLOWED = [
    ("create", "tokenreviews.authentication.k8s.io", "", "*"),
    ("create", "subjectaccessreviews.authorization.k8s.io", "", "*"),
]
#: It reads the record from the database: no TaskAction, Secret or anything else in the cluster.
API_DENIED = [
    *[(verb, "taskactions.flyte.org", "", None) for verb in ("get", "list", "watch", "create", "delete")],
    ("get", "secrets", "", None),
    ("create", "localsubjectaccessreviews.authorization.k8s.io", "", None),
    ("create", "serviceaccounts/token", "", None),
    ("list", "pods", "", None),
]


@pytest.fixture
def api_account(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """The API server's ServiceAccount and RBAC from manifests/base, created for real in a test
    namespace (cluster-scoped objects suffixed, deleted afterwards); yields the user name."""
    suffix = uuid.uuid4().hex[:8]
    objects = _rbac_for(render(kubectl, "manifests/base"), namespace, suffix, account="taskaction-api")
    assert sorted(d["kind"] for d in objects) == ["ClusterRole", "ClusterRoleBinding", "ServiceAccount"]
    try:
        kubectl.run("apply", "-f", "-", input=yaml.safe_dump_all(objects))
        yield f"system:serviceaccount:{namespace}:taskaction-api"
    finally:
        for doc in objects:
            if doc["kind"].startswith("Cluster"):
                kubectl.run(
                    "delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found", check=False
                )


def test_api_account_may_review_tokens_and_access_and_nothing_else(
    kubectl: Kubectl, namespace: str, api_account: str
) -> None:
    missing = [r for r in API_ALLOWED if not _can_i(kubectl, api_account, *r[:3], r[3] or namespace)]
    extra = [r for r in API_DENIED if _can_i(kubectl, api_account, *r[:3], r[3] or namespace)]
    assert (missing, extra) == ([], []), f"the API server's RBAC lacks {missing} and grants too much: {extra}"


def test_the_api_reviews_every_caller_and_only_flytes_pods_reach_the_events_port(kubectl: Kubectl) -> None:
    docs = render(kubectl, "manifests/base")
    pod = _one(docs, "Deployment", "taskaction-events")["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    assert "--auth=kubernetes" in command and "--events-listen=0.0.0.0:8091" in command
    assert pod["serviceAccountName"] == "taskaction-api" and pod["automountServiceAccountToken"] is True
    ports = {p["name"]: p["port"] for p in _one(docs, "Service", "taskaction-events")["spec"]["ports"]}
    assert ports == {"connect": 8090, "events": 8091}
    policy = _one(docs, "NetworkPolicy", "taskaction-events")["spec"]
    by_port = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["ingress"]}
    assert by_port["connect"] is None  # anyone: every call on it is reviewed
    assert by_port["events"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "flyte"}}}
    ]
