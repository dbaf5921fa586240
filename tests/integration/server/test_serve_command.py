"""``taskaction-operator serve`` as a process: it answers, records, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import urllib.request

import pytest
from flyteidl2.common import identifier_pb2, phase_pb2
from flyteidl2.workflow import events_proxy_service_pb2, run_definition_pb2
from flyteidl2.workflow.events_proxy_service_connect import EventsProxyServiceClient

from taskaction_operator.devtools.operator_process import free_port
from taskaction_operator.model import ActionId, RunId
from taskaction_operator.repo import ActionRepo
from tests.conftest import ROOT
from tests.integration.repo.helpers import action, eventually

pytestmark = pytest.mark.db


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def test_serve_records_events_and_stops_on_sigterm(
    repo: ActionRepo, repo_dsn: str, project: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(  # noqa: ASYNC220  (spawning returns at once)
        [
            sys.executable,
            "-m",
            "taskaction_operator",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--database-url",
            repo_dsn,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        await eventually(lambda: asyncio.to_thread(_healthy, url), what="serve answers /healthz")
        aid = ActionId(RunId(project, "d", "r1"), "a0")
        await repo.create_action(action(aid))
        ev = run_definition_pb2.ActionEvent(
            id=identifier_pb2.ActionIdentifier(
                run=identifier_pb2.RunIdentifier(project=project, domain="d", name="r1"), name="a0"
            ),
            attempt=1,
            phase=phase_pb2.ACTION_PHASE_RUNNING,
        )
        async with EventsProxyServiceClient(url) as client:
            await client.record(events_proxy_service_pb2.RecordRequest(events=[ev]))
        assert [(e.attempt, e.phase) for e in await repo.list_events(aid)] == [(1, 4)]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, out
    assert "WITHOUT authentication" in out
