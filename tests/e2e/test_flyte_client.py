"""Flyte's own CLI and SDK (``flyte`` 2.12.1 from PyPI) against the whole thing: the real control
plane, the operator recording TaskActions into the real PostgreSQL, and ``taskaction-operator
serve`` as a process. The SDK follows a run the executor drives to its end; the CLI shows the tree
and aborts a run, which ends ABORTED in the record and gone from the cluster."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from taskaction_operator.devtools.executor import SUCCESS_PATH, StandInExecutor
from taskaction_operator.k8s import KubeOps
from tests.e2e.operator import Db, until
from tests.e2e.test_operator_recording import children_owned, create
from tests.flyte_client import CLIENT_TIMEOUT, FlyteClients, flyte_clients

pytestmark = pytest.mark.cluster

DOMAIN = "development"
RUNNING, SUCCEEDED, ABORTED = 4, 5, 7


@pytest.fixture(autouse=True)
def operator(start_operator: Any) -> None:
    start_operator()


async def _start_run(kube: KubeOps, ns: str, run: str, *tree: tuple[str, str | None]) -> StandInExecutor:
    """The run's TaskActions created (``(action, parent)`` in order); the executor that drives them."""
    for action, parent in tree:
        await create(kube, ns, ns, run, action, parent)
    return StandInExecutor(kube)


async def _no_taskactions(kube: KubeOps, ns: str) -> bool:
    return not await kube.list_taskactions(ns)


@pytest.fixture
async def flyte(flyte_venv: Path, api_server: str, tmp_path: Path) -> AsyncIterator[FlyteClients]:
    async for clients in flyte_clients(flyte_venv, api_server, tmp_path):
        yield clients


async def test_the_flyte_sdk_follows_a_run_the_executor_drives_to_its_end(
    kube: KubeOps, db: Db, namespace: str, flyte: FlyteClients
) -> None:
    run = "rfollow"
    ex = await _start_run(kube, namespace, run, ("a0", None), ("a1", "a0"))
    await until(lambda: db.phases(namespace, run).get("a0") == RUNNING, what="a0 promoted by its child")
    proc = await flyte.sdk(namespace, DOMAIN, "follow", run)
    assert (await flyte.line(proc))["done"] is False
    await ex.run_through(namespace, f"{run}-a1", SUCCESS_PATH)
    await ex.run_through(namespace, f"{run}-a0", ["Executing", "Completed"])
    last = await flyte.line(proc)
    while "end" not in last:
        last = await flyte.line(proc)
    assert last == {"end": "succeeded"}
    assert await asyncio.wait_for(proc.wait(), CLIENT_TIMEOUT) == 0
    actions = json.loads(
        await flyte.ok("-of", "json-raw", "get", "action", run, "--project", namespace, "--domain", DOMAIN)
    )
    assert {a["id"]["name"]: a["status"]["phase"] for a in actions} == {
        "a0": "ACTION_PHASE_SUCCEEDED",
        "a1": "ACTION_PHASE_SUCCEEDED",
    }


async def test_the_flyte_cli_aborts_a_run_which_ends_aborted_and_gone_from_the_cluster(
    kube: KubeOps, db: Db, namespace: str, flyte: FlyteClients
) -> None:
    run = "rabort"
    ex = await _start_run(kube, namespace, run, ("a0", None), ("a1", "a0"), ("a2", "a1"))
    await ex.run_through(namespace, f"{run}-a2", ["Queued", "Executing"])
    await until(lambda: len(db.phases(namespace, run)) == 3, what="run recorded")
    await until(lambda: children_owned(kube, namespace), what="children owned by their parents")
    scope = ("--project", namespace, "--domain", DOMAIN)
    listed = json.loads(await flyte.ok("-of", "json-raw", "get", "action", run, *scope))
    assert sorted(a["id"]["name"] for a in listed) == ["a0", "a1", "a2"]
    assert "has been aborted" in await flyte.ok("abort", "run", run, "--reason", "stop from flyte", *scope)
    await until(
        lambda: db.phases(namespace, run) == {"a0": ABORTED, "a1": ABORTED, "a2": ABORTED},
        what="the whole run ABORTED in the record",
    )
    await until(
        lambda: _no_taskactions(kube, namespace), what="every TaskAction of the run gone from the cluster"
    )
    assert db.actions(namespace, run)["a0"]["abort_reason"] == "stop from flyte"
