"""Flyte's executor as the stand-in plays it whole, beside the operator and ``serve``: its own
finalizer, its abort on deletion (``handleAbortAndFinalize``), and every transition reported through
``EventsProxyService.Record`` before the status write that shows it (``updateTaskActionStatus``).
The record must hold one row per transition (the executor's), one end per attempt, and a signalled
condition's value and principal."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flyteidl2.common import identifier_pb2
from flyteidl2.core import literals_pb2
from flyteidl2.workflow import run_definition_pb2, run_info_pb2, run_service_pb2
from flyteidl2.workflow.run_service_connect import RunServiceClient

from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER
from taskaction_operator.devtools.executor import EXECUTOR_FINALIZER, EventsReporter, StandInExecutor
from taskaction_operator.k8s import KubeOps
from tests.e2e.operator import Db, until
from tests.e2e.taskactions import taskaction

pytestmark = pytest.mark.cluster

Q, INIT, R, OK, ABORTED = 1, 3, 4, 5, 7
RETRIED = ["Queued", "Initializing", "Executing", "RetryableFailure", "Initializing", "Executing"]


@pytest.fixture
async def executor(kube: KubeOps, namespace: str, api_server: str) -> AsyncIterator[StandInExecutor]:
    """The stand-in with its finalizer and its events, finalizing deletions in ``namespace``."""
    reporter = EventsReporter(api_server)
    ex = StandInExecutor(kube, finalizer=True, events=reporter)
    task = asyncio.create_task(ex.serve_deletions(namespace))
    try:
        yield ex
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await reporter.aclose()


@pytest.fixture(autouse=True)
def operator(start_operator: Any) -> None:
    start_operator()


def reported_by(db: Db, project: str, run: str, name: str) -> list[tuple[int, int, str]]:
    """(attempt, phase, cluster of the stored ActionEvent) of every row of the action."""
    rows = db.query(
        "SELECT attempt, phase, info FROM action_events WHERE project = %s AND run_name = %s AND name = %s"
        " ORDER BY attempt, phase, version",
        project,
        run,
        name,
    )
    out = []
    for r in rows:
        ev = run_definition_pb2.ActionEvent()
        ev.ParseFromString(bytes(r["info"]))
        out.append((r["attempt"], r["phase"], ev.cluster))
    return out


async def gone(kube: KubeOps, ns: str) -> bool:
    return not await kube.list_taskactions(ns)


async def finalized_by(executor: StandInExecutor, *keys: tuple[str, str]) -> None:
    """Wait for the executor's own account of its finalizations: an object is gone from the API
    server as soon as its last finalizer is removed, which may be before the executor has seen the
    answer to that patch and noted it."""
    await until(lambda: set(keys) <= set(executor.finalized), what=f"the executor finalizing {keys}")


async def test_a_retried_run_reported_by_the_executor_has_its_rows_and_no_end_added_by_its_gc(
    kube: KubeOps, db: Db, namespace: str, executor: StandInExecutor
) -> None:
    """Attempt 1 Q/I/R and attempt 2 Q/I/R/SUCCEEDED, each row the executor's own report; then the
    run's deletion, which the executor finalizes by recording ABORTED for every TaskAction, adds no
    second end to an attempt that SUCCEEDED (upstream would store it)."""
    ns, run = namespace, "rexec"
    await kube.create_taskaction(ns, taskaction(ns, run, "a0"))
    await kube.create_taskaction(ns, taskaction(ns, run, "a1", "a0"))
    await executor.run_through(ns, f"{run}-a0", ["Queued", "Initializing", "Executing"])
    await executor.run_through(ns, f"{run}-a1", [*RETRIED, "Completed"])
    await executor.move(ns, f"{run}-a0", "Completed")
    obj = await kube.get_taskaction(ns, f"{run}-a1")
    assert obj is not None and EXECUTOR_FINALIZER in obj["metadata"]["finalizers"]

    async def recorded() -> bool:
        objs = await kube.list_taskactions(ns, "flyte.org/terminal-status-recorded=true")
        return len(objs) == 2

    await until(recorded, what="both ends recorded and labelled")
    expected = [(1, Q), (1, INIT), (1, R), (2, Q), (2, INIT), (2, R), (2, OK)]
    assert [(a, p) for a, p, _ in reported_by(db, ns, run, "a1")] == expected
    assert {c for _, _, c in reported_by(db, ns, run, "a1")} == {"stand-in"}  # every row the report
    assert db.actions(ns, run)["a1"]["attempts"] == 2

    await kube.delete_taskaction(ns, f"{run}-a0")
    await until(lambda: gone(kube, ns), what="the run garbage-collected and finalized")
    await finalized_by(executor, (ns, f"{run}-a0"), (ns, f"{run}-a1"))
    assert sorted(executor.finalized) == [(ns, f"{run}-a0"), (ns, f"{run}-a1")]
    assert [(a, p) for a, p, _ in reported_by(db, ns, run, "a1")] == expected
    assert [(a, p) for a, p, _ in reported_by(db, ns, run, "a0")] == [(1, Q), (1, INIT), (1, R), (1, OK)]
    assert db.phases(ns, run) == {"a0": OK, "a1": OK}


async def test_the_executors_abort_of_a_running_action_is_one_aborted_event(
    kube: KubeOps, db: Db, namespace: str, executor: StandInExecutor
) -> None:
    ns, run = namespace, "rabort"
    await kube.create_taskaction(ns, taskaction(ns, run, "a0"))
    await kube.create_taskaction(ns, taskaction(ns, run, "a1", "a0"))
    await executor.run_through(ns, f"{run}-a0", ["Queued", "Executing"])
    await executor.run_through(ns, f"{run}-a1", ["Queued", "Initializing", "Executing"])

    async def guarded() -> bool:
        o = await kube.get_taskaction(ns, f"{run}-a1")
        return bool(o and RECORD_GUARD_FINALIZER in o["metadata"].get("finalizers", ()))

    await until(guarded, what="the record guard on a1")
    await kube.delete_taskaction(ns, f"{run}-a1")

    async def a1_gone() -> bool:
        return await kube.get_taskaction(ns, f"{run}-a1") is None

    await until(a1_gone, what="a1 finalized by the executor, then by the operator")
    await until(lambda: db.phases(ns, run).get("a1") == ABORTED, what="a1 ABORTED")
    rows = reported_by(db, ns, run, "a1")
    assert [(a, p) for a, p, _ in rows] == [(1, Q), (1, INIT), (1, R), (1, ABORTED)]
    assert rows[-1][2] == "stand-in"  # the one ABORTED row is the executor's report
    await finalized_by(executor, (ns, f"{run}-a1"))


def _condition(ns: str, run: str, action: str, parent: str) -> dict[str, Any]:
    body = taskaction(ns, run, action, parent)
    body["metadata"]["labels"]["flyte.org/action-type"] = "condition"
    spec = body["spec"]
    spec.pop("taskType")
    spec["actionType"] = "condition"
    cond = run_definition_pb2.ConditionAction(name="approve")
    spec["conditionSpec"] = base64.b64encode(cond.SerializeToString()).decode()
    return body


async def test_a_signalled_condition_keeps_its_value_and_principal_in_the_record(
    kube: KubeOps, db: Db, namespace: str, executor: StandInExecutor, api_server: str
) -> None:
    """As upstream: the signal's value and who sent it go into the action's RunInfo with its end
    (``mergeRunInfoOutput``), and GetActionDetails shows them (the CR may be gone by then)."""
    ns, run = namespace, "rsignal"
    await kube.create_taskaction(ns, taskaction(ns, run, "a0"))
    await kube.create_taskaction(ns, _condition(ns, run, "c1", "a0"))
    await executor.move(ns, f"{run}-a0", "Executing")
    await executor.move(ns, f"{run}-c1", "Paused", message="waiting for signal")
    obj = await kube.get_taskaction(ns, f"{run}-c1")
    assert obj is not None and EXECUTOR_FINALIZER not in (obj["metadata"].get("finalizers") or ())
    value = literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(boolean=True)))
    signal = {
        "signalValue": base64.b64encode(value.SerializeToString()).decode(),
        "signalledBy": "alice@example.com",
        "signalledAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    await kube.merge_patch_taskaction(ns, f"{run}-c1", {"status": signal}, status=True)  # Signal's write
    await executor.move(ns, f"{run}-c1", "Signaled", message='condition signalled by "alice@example.com"')
    await until(lambda: db.phases(ns, run).get("c1") == OK, what="c1 SUCCEEDED")

    info = run_info_pb2.RunInfo()
    info.ParseFromString(bytes(db.actions(ns, run)["c1"]["detailed_info"]))
    assert info.output == value
    assert info.principal.user.id.subject == "alice@example.com"
    assert info.condition.name == "approve"  # the rest of the RunInfo kept
    assert info.inputs_uri == f"s3://bucket/{run}/c1/inputs.pb"

    aid = identifier_pb2.ActionIdentifier(
        run=identifier_pb2.RunIdentifier(project=ns, domain="development", name=run), name="c1"
    )
    async with RunServiceClient(api_server) as client:
        details = await client.get_action_details(run_service_pb2.GetActionDetailsRequest(action_id=aid))
    assert details.details.signal_info.output == value
    assert details.details.signal_info.signalled_by.user.id.subject == "alice@example.com"
