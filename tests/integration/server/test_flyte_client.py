"""Flyte's own CLI and SDK (``flyte`` 2.12.1 from PyPI, in a venv of their own) pointed at our server
over the real PostgreSQL: they list, read, follow and abort our runs as they would Flyte's.

The CLI is run as Flyte's users run it (``flyte --endpoint http://HOST:PORT --insecure …``); the SDK
through ``flyte_sdk_client.py`` under the venv's interpreter. Nothing of either is mocked.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from taskaction_operator.model import ActionPhase, RunId
from taskaction_operator.repo import ActionRepo
from tests.integration.server.records import reported, seed_run

pytestmark = pytest.mark.db

DOMAIN = "development"
SDK_CLIENT = Path(__file__).with_name("flyte_sdk_client.py")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: The CLI and the SDK start in a few seconds; a busy machine makes it more.
CLIENT_TIMEOUT = 120.0


def _env(home: Path) -> dict[str, str]:
    # A home of its own (no user config), no colour and no line wrapping in what it prints.
    return {**os.environ, "HOME": str(home), "NO_COLOR": "1", "COLUMNS": "100000", "TERM": "dumb"}


async def flyte_cli(venv: Path, server: str, home: Path, *args: str) -> tuple[int, str, str]:
    """``flyte --endpoint SERVER --insecure ARGS…``: its exit code, stdout (without escapes), stderr."""
    proc = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "flyte"),
        "--endpoint",
        server,
        "--insecure",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(home),
    )
    out, err = await asyncio.wait_for(proc.communicate(), CLIENT_TIMEOUT)
    return int(proc.returncode or 0), _ANSI.sub("", out.decode()), _ANSI.sub("", err.decode())


async def flyte_ok(venv: Path, server: str, home: Path, *args: str) -> str:
    code, out, err = await flyte_cli(venv, server, home, *args)
    assert code == 0, f"flyte {' '.join(args)} exited {code}: {err.strip()[-2000:]}"
    return out


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
async def sdk(flyte_venv: Path, server: str, home: Path) -> AsyncIterator[Any]:
    """Starts ``flyte_sdk_client.py COMMAND RUN …`` for a project; yields the starter, ends leftovers."""
    started: list[asyncio.subprocess.Process] = []

    async def start(project: str, *args: str) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            str(flyte_venv / "bin" / "python"),
            str(SDK_CLIENT),
            server,
            project,
            DOMAIN,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_env(home),
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), CLIENT_TIMEOUT)
    if not raw:
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode()
        raise AssertionError(f"the SDK client ended early: {err[-2000:]}")
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


async def test_the_flyte_cli_lists_and_reads_our_runs_and_actions(
    flyte_venv: Path, server: str, home: Path, repo: ActionRepo, project: str
) -> None:
    await seed_run(repo, RunId(project, DOMAIN, "r0"))
    await seed_run(repo, RunId(project, DOMAIN, "r1"), offset=100)
    scope = ("--project", project, "--domain", DOMAIN)
    runs = json.loads(await flyte_ok(flyte_venv, server, home, "-of", "json-raw", "get", "run", *scope))
    assert [r["action"]["id"]["run"]["name"] for r in runs] == ["r0", "r1"]  # the SDK sorts created_at asc
    (run,) = ast.literal_eval(await flyte_ok(flyte_venv, server, home, "get", "run", "r0", *scope))
    assert run["action"]["status"]["phase"] == "ACTION_PHASE_RUNNING"
    assert run["action"]["metadata"]["task"]["id"]["name"] == "wf.pipeline"
    actions = json.loads(
        await flyte_ok(flyte_venv, server, home, "-of", "json-raw", "get", "action", "r0", *scope)
    )
    assert [(a["id"]["name"], a["status"]["phase"]) for a in actions] == [
        ("a0", "ACTION_PHASE_RUNNING"),
        ("a1", "ACTION_PHASE_SUCCEEDED"),
        ("a1-1", "ACTION_PHASE_SUCCEEDED"),
        ("a2", "ACTION_PHASE_FAILED"),
    ]
    (a2,) = ast.literal_eval(await flyte_ok(flyte_venv, server, home, "get", "action", "r0", "a2", *scope))
    assert [a["attempt"] for a in a2["attempts"]] == [1, 2]
    assert a2["errorInfo"]["message"] == "node lost"
    code, _, err = await flyte_cli(flyte_venv, server, home, "get", "run", "nope", *scope)
    assert code != 0 and "not found" in err.lower()


async def test_the_flyte_cli_aborts_a_run_in_the_record(
    flyte_venv: Path, server: str, home: Path, repo: ActionRepo, project: str
) -> None:
    run_id = RunId(project, DOMAIN, "r0")
    await seed_run(repo, run_id)
    scope = ("--project", project, "--domain", DOMAIN)
    out = await flyte_ok(flyte_venv, server, home, "abort", "run", "r0", "--reason", "from flyte", *scope)
    assert "has been aborted" in out
    root = await repo.get_run(run_id)
    assert root.phase is ActionPhase.ABORTED and root.abort_reason == "from flyte"
    assert root.action_id in [a.action_id for a in await repo.list_pending_aborts()]


async def test_the_flyte_sdk_follows_a_run_to_its_end(sdk: Any, repo: ActionRepo, project: str) -> None:
    run_id = RunId(project, DOMAIN, "r0")
    ids = await seed_run(repo, run_id)
    await repo.insert_reported_events([reported(ids["a0"], 1, ActionPhase.RUNNING, 30)])
    proc = await sdk(project, "follow", "r0")
    assert await _line(proc) == {"phase": "running", "done": False}
    await repo.update_action_phase(ids["a0"], ActionPhase.SUCCEEDED, 1, 0)
    await repo.insert_reported_events([reported(ids["a0"], 1, ActionPhase.SUCCEEDED, 40)])
    lines = [await _line(proc)]
    while "end" not in lines[-1]:
        lines.append(await _line(proc))
    assert lines[-2] == {"phase": "succeeded", "done": True}
    assert lines[-1] == {"end": "succeeded"}
    assert await asyncio.wait_for(proc.wait(), CLIENT_TIMEOUT) == 0


async def test_the_flyte_sdk_aborts_a_run(sdk: Any, repo: ActionRepo, project: str) -> None:
    run_id = RunId(project, DOMAIN, "r0")
    await seed_run(repo, run_id)
    proc = await sdk(project, "abort", "r0", "enough from the SDK")
    assert await _line(proc) == {"aborted": "r0"}
    assert await asyncio.wait_for(proc.wait(), CLIENT_TIMEOUT) == 0
    root = await repo.get_run(run_id)
    assert root.phase is ActionPhase.ABORTED and root.abort_reason == "enough from the SDK"
