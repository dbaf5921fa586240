"""Flyte's own CLI and SDK (``flyte`` 2.12.1 from PyPI) against the whole thing: the real control
plane, the operator recording TaskActions into the real PostgreSQL, and ``taskaction-operator
serve`` as a process. The SDK follows a run the executor drives to its end; the CLI shows the tree
and aborts a run, which ends ABORTED in the record and gone from the cluster."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskaction_operator.devtools.executor import SUCCESS_PATH, StandInExecutor
from taskaction_operator.devtools.operator_process import free_port
from taskaction_operator.k8s import KubeOps
from tests.conftest import LOCAL, ROOT
from tests.e2e.operator import Db, eventually, until
from tests.e2e.taskactions import taskaction
from tests.flyte_client import CLIENT_TIMEOUT, FlyteClients, flyte_clients

pytestmark = pytest.mark.cluster

DOMAIN = "development"
RUNNING, SUCCEEDED, ABORTED = 4, 5, 7


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture
def api_server(database_url: str) -> Iterator[str]:
    """``taskaction-operator serve`` as a process on a free port; its output in .local/e2e-logs."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_dir = LOCAL / "e2e-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"serve-{port}.log", "w", encoding="utf-8") as log:
        argv = [sys.executable, "-m", "taskaction_operator", "serve", "--listen", f"127.0.0.1:{port}"]
        proc = subprocess.Popen(
            [*argv, "--database-url", database_url], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            eventually(lambda: _healthy(url), what="serve answers /healthz")
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


@pytest.fixture
async def flyte(flyte_venv: Path, api_server: str, tmp_path: Path) -> AsyncIterator[FlyteClients]:
    async for clients in flyte_clients(flyte_venv, api_server, tmp_path):
        yield clients


async def _create(kube: KubeOps, ns: str, run: str, action: str, parent: str | None = None) -> dict[str, Any]:
    return await kube.create_taskaction(ns, taskaction(ns, run, action, parent))


async def test_the_flyte_sdk_follows_a_run_the_executor_drives_to_its_end(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any, flyte: FlyteClients
) -> None:
    start_operator()
    run = "rfollow"
    ex = StandInExecutor(kube)
    await _create(kube, namespace, run, "a0")
    await _create(kube, namespace, run, "a1", "a0")
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
    kube: KubeOps, db: Db, namespace: str, start_operator: Any, flyte: FlyteClients
) -> None:
    start_operator()
    run = "rabort"
    ex = StandInExecutor(kube)
    await _create(kube, namespace, run, "a0")
    await _create(kube, namespace, run, "a1", "a0")
    await _create(kube, namespace, run, "a2", "a1")
    await ex.run_through(namespace, f"{run}-a2", ["Queued", "Executing"])
    await until(lambda: len(db.phases(namespace, run)) == 3, what="run recorded")

    async def owned() -> bool:
        objs = await kube.list_taskactions(namespace)
        return all(o["metadata"].get("ownerReferences") for o in objs if o["spec"]["actionName"] != "a0")

    await until(owned, what="children owned by their parents")
    scope = ("--project", namespace, "--domain", DOMAIN)
    listed = json.loads(await flyte.ok("-of", "json-raw", "get", "action", run, *scope))
    assert sorted(a["id"]["name"] for a in listed) == ["a0", "a1", "a2"]
    assert "has been aborted" in await flyte.ok("abort", "run", run, "--reason", "stop from flyte", *scope)
    await until(
        lambda: db.phases(namespace, run) == {"a0": ABORTED, "a1": ABORTED, "a2": ABORTED},
        what="the whole run ABORTED in the record",
    )

    async def none_left() -> bool:
        return not await kube.list_taskactions(namespace)

    await until(none_left, what="every TaskAction of the run gone from the cluster")
    assert db.actions(namespace, run)["a0"]["abort_reason"] == "stop from flyte"
