"""The observability pack against the real exporters: a running operator and a running ``serve`` are
driven until every series the PrometheusRule and the dashboard read exists (a run recorded, an abort
given up, a row the database refuses, a guard released, RPCs and a watch), then scraped; every metric
and label name the pack uses must be one of theirs, so a renamed metric or label fails here.

Labels that Prometheus attaches from the target (job, pod, …) and its own ``up`` series are never in a
/metrics response: tests/unit/test_observability_pack.py checks the jobs against the ServiceMonitors.
"""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from typing import Any

import pytest
from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.run_service_connect import RunServiceClient
from prometheus_client.parser import text_string_to_metric_families

from taskaction_operator.devtools.executor import SUCCESS_PATH, StandInExecutor
from taskaction_operator.k8s import KubeOps
from taskaction_operator.model import ActionId, RunId
from taskaction_operator.repo import ActionRepo
from tests import observability_pack as pack
from tests.conftest import LOCAL
from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Db, until
from tests.e2e.taskactions import taskaction
from tests.serve_process import ServeProcess

pytestmark = pytest.mark.cluster
QUEUED, OK = 1, 5
SERVER_METRICS = "taskaction_rpc_"
#: Label values matched that these scenarios cannot produce, and where each is checked instead.
UNPRODUCED_VALUES = {
    # a temporary database error needs PostgreSQL down: tests/unit/controller/test_instruments.py
    ("taskaction_db_errors_total", "kind", "temporary"),
}


def exported(text: str) -> dict[str, set[str]]:
    """Sample name -> the label names its series carry, from Prometheus's text format."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def values(text: str, name: str, label: str) -> set[str]:
    return {
        s.labels[label]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and label in s.labels
    }


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def warned(kubectl: Kubectl, ns: str, reason: str) -> bool:
    return any(e["reason"] == reason for e in kubectl.json("get", "events", "-n", ns)["items"])


async def test_every_metric_and_label_of_the_rules_and_dashboard_is_exported_by_the_running_processes(
    kube: KubeOps,
    db: Db,
    repo: ActionRepo,
    kubectl: Kubectl,
    namespace: str,
    start_operator: Any,
    database_url: str,
) -> None:
    op = start_operator(
        TASKACTION_ABORT_MAX_ATTEMPTS="2",
        TASKACTION_ABORT_INITIAL_DELAY="0.1",
        TASKACTION_ABORT_MAX_DELAY="0.2",
    )
    project = namespace
    # A run recorded to its end: events, lag, batches, patches, tracked objects, leadership.
    await kube.create_taskaction(namespace, taskaction(project, "rok", "a0"))
    await until(lambda: db.phases(project, "rok").get("a0") == QUEUED, what="rok recorded")
    await kube.create_taskaction(namespace, taskaction(project, "rok", "a1", "a0"))
    ex = StandInExecutor(kube)
    for name in ("rok-a1", "rok-a0"):
        await ex.run_through(namespace, name, SUCCESS_PATH)
    await until(lambda: db.phases(project, "rok") == {"a0": OK, "a1": OK}, what="rok succeeded")
    # An abort that cannot be carried out (another finalizer holds the TaskAction): retry, gave_up.
    await kube.create_taskaction(
        namespace, taskaction(project, "rheld", "a0", finalizers=["e2e.flyte.org/hold"])
    )
    await until(lambda: db.phases(project, "rheld").get("a0") == QUEUED, what="rheld recorded")
    await repo.abort_action(ActionId.of(project, "development", "rheld", "a0"), "held")
    # A row PostgreSQL refuses for good (NUL in TEXT), then deleted: a permanent database error and a
    # guard released unrecorded.
    body = taskaction(project, "rnul", "a0", task_type="py\x00thon")
    await kube.create_taskaction(namespace, body)
    await until(lambda: warned(kubectl, namespace, "RecordFailed"), what="RecordFailed")
    kubectl.run("delete", "taskaction", body["metadata"]["name"], "-n", namespace, "--wait=false")
    await until(lambda: warned(kubectl, namespace, "GuardReleased"), timeout=60, what="GuardReleased")
    await until(lambda: warned(kubectl, namespace, "AbortGaveUp"), timeout=60, what="AbortGaveUp")

    def operator_ready() -> str | None:
        text = op.metrics()
        ready = (
            {"retry", "gave_up"} <= values(text, "taskaction_abort_attempts_total", "outcome")
            and values(text, "taskaction_guards_released_unrecorded_total", "reason")
            and "permanent" in values(text, "taskaction_db_errors_total", "kind")
            and "taskaction_sweep_leader 1.0" in text
        )
        return text if ready else None

    operator_text = await until(operator_ready, what="every operator series in the scrape")

    server = await asyncio.to_thread(
        ServeProcess(database_url, LOCAL / "e2e-logs" / f"serve-{uuid.uuid4().hex[:8]}.log").start
    )
    try:
        run_id = RunId(project, "development", "rok")
        async with RunServiceClient(server.url) as client:
            await client.list_runs(rs.ListRunsRequest())
            stream = client.watch_actions(rs.WatchActionsRequest(run_id=run_id.to_proto()))
            first = await anext(aiter(stream))
            assert first is not None
            server_text = await asyncio.to_thread(scrape, server.url + "/metrics")
            await stream.aclose()
    finally:
        code, out = await asyncio.to_thread(server.stop)
    assert code == 0, out

    scraped = {**exported(operator_text), **exported(server_text)}
    used = pack.all_uses()
    recorded = pack.recorded_names()
    checked = 0
    for metric, labels in sorted(used.labels.items()):
        if metric in recorded or metric in pack.SCRAPE_SERIES:
            continue
        source = "serve" if metric.startswith(SERVER_METRICS) else "the operator"
        assert metric in scraped, f"{metric} is used by the pack but not exported by {source}"
        missing = labels - pack.TARGET_LABELS - scraped[metric]
        assert not missing, f"{metric}: labels {sorted(missing)} are not on its series from {source}"
        checked += 1
    assert checked >= 15
    text = operator_text + server_text
    for metric, label, op_, value in used.matchers:
        if label in pack.TARGET_LABELS or op_ != "=" or (metric, label, value) in UNPRODUCED_VALUES:
            continue
        assert value in values(text, metric, label), f"{metric}{{{label}={value!r}}} never exported"
