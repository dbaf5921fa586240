"""Flyte's own CLI and SDK (``flyte`` 2.12.1 from PyPI, in a venv of their own) pointed at our server
over the real PostgreSQL: they list, read, follow and abort our runs as they would Flyte's.

The CLI is run as Flyte's users run it (``flyte --endpoint http://HOST:PORT --insecure …``); the SDK
through ``tests/flyte_sdk_client.py`` under the venv's interpreter. Nothing of either is mocked.
"""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from taskaction_operator.model import ActionPhase, RunId
from taskaction_operator.repo import ActionRepo
from tests.flyte_client import CLIENT_TIMEOUT, FlyteClients, flyte_clients
from tests.integration.server.records import reported, seed_run

pytestmark = pytest.mark.db

DOMAIN = "development"


@pytest.fixture
async def flyte(flyte_venv: Path, server: str, tmp_path: Path) -> AsyncIterator[FlyteClients]:
    async for clients in flyte_clients(flyte_venv, server, tmp_path):
        yield clients


async def test_the_flyte_cli_lists_and_reads_our_runs_and_actions(
    flyte: FlyteClients, repo: ActionRepo, project: str
) -> None:
    await seed_run(repo, RunId(project, DOMAIN, "r0"))
    await seed_run(repo, RunId(project, DOMAIN, "r1"), offset=100)
    scope = ("--project", project, "--domain", DOMAIN)
    runs = json.loads(await flyte.ok("-of", "json-raw", "get", "run", *scope))
    assert [r["action"]["id"]["run"]["name"] for r in runs] == ["r0", "r1"]  # the SDK sorts created_at asc
    (run,) = ast.literal_eval(await flyte.ok("get", "run", "r0", *scope))
    assert run["action"]["status"]["phase"] == "ACTION_PHASE_RUNNING"
    assert run["action"]["metadata"]["task"]["id"]["name"] == "wf.pipeline"
    actions = json.loads(await flyte.ok("-of", "json-raw", "get", "action", "r0", *scope))
    assert [(a["id"]["name"], a["status"]["phase"]) for a in actions] == [
        ("a0", "ACTION_PHASE_RUNNING"),
        ("a1", "ACTION_PHASE_SUCCEEDED"),
        ("a1-1", "ACTION_PHASE_SUCCEEDED"),
        ("a2", "ACTION_PHASE_FAILED"),
    ]
    (a2,) = ast.literal_eval(await flyte.ok("get", "action", "r0", "a2", *scope))
    assert [a["attempt"] for a in a2["attempts"]] == [1, 2]
    assert a2["errorInfo"]["message"] == "node lost"
    code, _, err = await flyte.cli("get", "run", "nope", *scope)
    assert code != 0 and "not found" in err.lower()


async def test_the_flyte_cli_aborts_a_run_in_the_record(
    flyte: FlyteClients, repo: ActionRepo, project: str
) -> None:
    run_id = RunId(project, DOMAIN, "r0")
    await seed_run(repo, run_id)
    out = await flyte.ok(
        "abort", "run", "r0", "--reason", "from flyte", "--project", project, "--domain", DOMAIN
    )
    assert "has been aborted" in out
    root = await repo.get_run(run_id)
    assert root.phase is ActionPhase.ABORTED and root.abort_reason == "from flyte"
    assert root.action_id in [a.action_id for a in await repo.list_pending_aborts()]


async def test_the_flyte_sdk_follows_a_run_to_its_end(
    flyte: FlyteClients, repo: ActionRepo, project: str
) -> None:
    ids = await seed_run(repo, RunId(project, DOMAIN, "r0"))
    await repo.insert_reported_events([reported(ids["a0"], 1, ActionPhase.RUNNING, 30)])
    proc = await flyte.sdk(project, DOMAIN, "follow", "r0")
    assert await flyte.line(proc) == {"phase": "running", "done": False}
    await repo.update_action_phase(ids["a0"], ActionPhase.SUCCEEDED, 1, 0)
    await repo.insert_reported_events([reported(ids["a0"], 1, ActionPhase.SUCCEEDED, 40)])
    lines = [await flyte.line(proc)]
    while "end" not in lines[-1]:
        lines.append(await flyte.line(proc))
    assert lines[-2:] == [{"phase": "succeeded", "done": True}, {"end": "succeeded"}]
    assert await asyncio.wait_for(proc.wait(), CLIENT_TIMEOUT) == 0


async def test_the_flyte_sdk_aborts_a_run(flyte: FlyteClients, repo: ActionRepo, project: str) -> None:
    run_id = RunId(project, DOMAIN, "r0")
    await seed_run(repo, run_id)
    proc = await flyte.sdk(project, DOMAIN, "abort", "r0", "enough from the SDK")
    assert await flyte.line(proc) == {"aborted": "r0"}
    assert await asyncio.wait_for(proc.wait(), CLIENT_TIMEOUT) == 0
    root = await repo.get_run(run_id)
    assert root.phase is ActionPhase.ABORTED and root.abort_reason == "enough from the SDK"
