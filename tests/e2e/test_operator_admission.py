"""The operator's own writes at an action's start: none for a TaskAction created with the record guard
and its ownerReference, by our actions client or through the operator's admission webhook; the
first-sight patch as the fallback when the webhook cannot answer. The real control plane, the real
PostgreSQL, the operator as a process (on kind a Pod, its webhook served on the Pod's IP as
manifests/components/admission serves it); its writes counted by its own metrics."""

from __future__ import annotations

import re
import signal
from typing import Any

import pytest

from taskaction_operator.client.actions_client import ActionsClient
from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_LABEL
from taskaction_operator.devtools.operator_process import free_port
from taskaction_operator.k8s import KubeOps
from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Db, until
from tests.e2e.taskactions import taskaction
from tests.unit.client.actions import task

DOMAIN = "development"
SUCCEEDED = {
    "conditions": [
        {
            "type": "Succeeded",
            "status": "True",
            "reason": "Completed",
            "message": "",
            "lastTransitionTime": "2026-11-23T10:00:00Z",
        }
    ]
}


def writes(metrics: str, metric: str = "taskaction_api_writes_total") -> dict[str, float]:
    """The operator's patches by kind (``owner+guard``, ``release+label``, …)."""
    out: dict[str, float] = {}
    for m in re.finditer(rf'^{metric}\{{kind="([^"]*)"\}} (\S+)$', metrics, re.MULTILINE):
        out[m.group(1)] = float(m.group(2))
    return out


def first_sight(metrics: str) -> float:
    """Patches that set the ownerReference or added the guard: what a creation left to do."""
    return sum(v for k, v in writes(metrics).items() if "owner" in k.split("+") or "guard" in k.split("+"))


async def recorded(db: Db, project: str, run: str, n: int) -> bool:
    return len(db.actions(project, run)) >= n


async def test_actions_created_by_our_client_cost_the_operator_no_first_sight_patch(
    start_operator: Any, kube: KubeOps, namespace: str, database_url: str
) -> None:
    op = start_operator()
    client = ActionsClient(kube, namespace, record_guard=True)
    for name, parent in (("a0", None), ("a1", "a0"), ("a2", "a0")):
        created = await client.enqueue(task(name, parent, run="rc1", project=namespace, domain=DOMAIN))
        assert created["metadata"]["finalizers"] == [RECORD_GUARD_FINALIZER]
        assert bool(created["metadata"].get("ownerReferences")) == (parent is not None)
    db = Db(database_url)
    await until(lambda: recorded(db, namespace, "rc1", 3), what="the three actions recorded")
    for name in ("a1", "a2", "a0"):  # children first, as Flyte ends them
        await kube.merge_patch_taskaction(namespace, f"rc1-{name}", {"status": SUCCEEDED}, status=True)

    async def labelled() -> bool:
        items = await kube.list_taskactions(namespace, f"{RECORDED_LABEL}=true")
        return len(items) == 3 and all(
            RECORD_GUARD_FINALIZER not in (i["metadata"].get("finalizers") or []) for i in items
        )

    await until(labelled, what="all three labelled recorded, their guards released")
    metrics = op.metrics()
    assert first_sight(metrics) == 0, writes(metrics)
    assert writes(metrics).get("release+label") == 3, writes(metrics)
    assert sum(writes(metrics, "taskaction_api_writes_rejected_total").values()) == 0


async def all_guarded(kube: KubeOps, namespace: str) -> bool:
    items = await kube.list_taskactions(namespace)
    return all(RECORD_GUARD_FINALIZER in (i["metadata"].get("finalizers") or []) for i in items)


async def _create_until_admitted(kube: KubeOps, namespace: str, project: str) -> tuple[str, dict[str, Any]]:
    """Create roots (a new run each) until one comes back holding the guard: the API server calls the
    webhook from then on. Returns the run and its stored root."""
    attempt = 0

    async def admitted() -> tuple[str, dict[str, Any]] | None:
        nonlocal attempt
        attempt += 1
        run = f"rw{attempt}"
        obj = await kube.create_taskaction(namespace, taskaction(project, run, "a0"))
        if RECORD_GUARD_FINALIZER in (obj["metadata"].get("finalizers") or []):
            return run, obj
        return None

    found: tuple[str, dict[str, Any]] = await until(
        admitted, timeout=60, interval=0.5, what="the webhook answering"
    )
    return found


async def test_a_plain_create_arrives_with_the_guard_and_the_ownerreference_through_the_webhook(
    start_operator: Any, kube: KubeOps, kubectl: Kubectl, namespace: str, database_url: str
) -> None:
    op = start_operator(TASKACTION_WEBHOOK_LISTEN=f"127.0.0.1:{free_port()}")
    configuration = f"taskaction-operator.{namespace}"
    run, root = await _create_until_admitted(kube, namespace, namespace)
    db = Db(database_url)
    await until(lambda: recorded(db, namespace, run, 1), what="the root seen and recorded")
    # Roots created before the API server called the webhook got the guard by the fallback patch.
    await until(lambda: all_guarded(kube, namespace), what="the earlier roots guarded by their patch")
    before = first_sight(op.metrics())

    child = await kube.create_taskaction(namespace, taskaction(namespace, run, "a1", "a0"))
    assert child["metadata"]["finalizers"] == [RECORD_GUARD_FINALIZER]
    (owner,) = child["metadata"]["ownerReferences"]
    assert owner["uid"] == root["metadata"]["uid"] and owner["name"] == root["metadata"]["name"]
    kept = taskaction(namespace, run, "a2", "a0", finalizers=["example.com/keep"])
    other = await kube.create_taskaction(namespace, kept)
    assert other["metadata"]["finalizers"] == ["example.com/keep", RECORD_GUARD_FINALIZER]
    await until(lambda: recorded(db, namespace, run, 3), what="the children recorded")
    metrics = op.metrics()
    assert first_sight(metrics) == before, writes(metrics)
    assert 'taskaction_admissions_total{added="guard+owner"} 2.0' in metrics

    hook = kubectl.json("get", "mutatingwebhookconfiguration", configuration, "-o", "json")["webhooks"][0]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == [namespace]
    op.stop()
    gone = kubectl.try_run("get", "mutatingwebhookconfiguration", configuration)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, "the configuration is deleted at exit"


@pytest.mark.timeout(240)
async def test_with_the_webhook_unavailable_a_creation_succeeds_and_the_first_sight_patch_adds_the_guard(
    start_operator: Any, kube: KubeOps, kubectl: Kubectl, namespace: str, database_url: str
) -> None:
    configuration = f"taskaction-operator.{namespace}"
    serving = start_operator(TASKACTION_WEBHOOK_LISTEN=f"127.0.0.1:{free_port()}")
    try:
        await _create_until_admitted(kube, namespace, namespace)
        serving.stop(signal.SIGKILL)  # no clean-up: the configuration still points at a dead port
        assert kubectl.try_run("get", "mutatingwebhookconfiguration", configuration).returncode == 0

        plain = await kube.create_taskaction(namespace, taskaction(namespace, "rdown", "a0"))
        assert not plain["metadata"].get("finalizers"), "created as sent: failurePolicy Ignore"

        fallback = start_operator()  # no webhook: the first-sight patch

        async def guarded() -> bool:
            obj = await kube.get_taskaction(namespace, "rdown-a0") or {}
            return RECORD_GUARD_FINALIZER in (obj.get("metadata", {}).get("finalizers") or [])

        await until(guarded, timeout=60, what="the guard added by the first-sight patch")
        assert first_sight(fallback.metrics()) >= 1
    finally:
        kubectl.try_run("delete", "mutatingwebhookconfiguration", configuration, "--ignore-not-found")
