"""``taskaction-operator serve`` as a process: it answers, records, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from flyteidl2.common import identifier_pb2, phase_pb2
from flyteidl2.workflow import events_proxy_service_pb2, run_definition_pb2
from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.events_proxy_service_connect import EventsProxyServiceClient
from flyteidl2.workflow.run_service_connect import RunServiceClient

from taskaction_operator.model import ActionId, RunId
from taskaction_operator.repo import ActionRepo
from tests.integration.repo.helpers import action, next_item
from tests.integration.server.records import seed_run
from tests.serve_process import ServeProcess

pytestmark = pytest.mark.db


async def test_serve_records_events_and_stops_on_sigterm(
    repo: ActionRepo, repo_dsn: str, project: str, tmp_path: Path
) -> None:
    server = await asyncio.to_thread(ServeProcess(repo_dsn, tmp_path / "serve.log").start)
    try:
        aid = ActionId(RunId(project, "d", "r1"), "a0")
        await repo.create_action(action(aid))
        ev = run_definition_pb2.ActionEvent(
            id=identifier_pb2.ActionIdentifier(
                run=identifier_pb2.RunIdentifier(project=project, domain="d", name="r1"), name="a0"
            ),
            attempt=1,
            phase=phase_pb2.ACTION_PHASE_RUNNING,
        )
        async with EventsProxyServiceClient(server.url) as client:
            await client.record(events_proxy_service_pb2.RecordRequest(events=[ev]))
        assert [(e.attempt, e.phase) for e in await repo.list_events(aid)] == [(1, 4)]
    finally:
        code, out = await asyncio.to_thread(server.stop)
    assert code == 0, out
    assert "WITHOUT authentication" in out


async def test_on_sigterm_open_watches_end_cleanly_at_once(
    repo: ActionRepo, repo_dsn: str, project: str, tmp_path: Path
) -> None:
    run_id = RunId(project, "development", "r0")
    await seed_run(repo, run_id)
    server = await asyncio.to_thread(ServeProcess(repo_dsn, tmp_path / "serve.log").start)
    try:
        async with RunServiceClient(server.url) as client:
            stream = client.watch_actions(rs.WatchActionsRequest(run_id=run_id.to_proto()))
            await next_item(stream)
            loop = asyncio.get_running_loop()
            signalled = loop.time()
            server.signal(signal.SIGTERM)
            with pytest.raises(StopAsyncIteration):  # ended, not failed
                await next_item(stream, timeout=10)
            # Well before hypercorn's graceful timeout (5 s) would have cut it.
            assert loop.time() - signalled < 3
    finally:
        code, out = await asyncio.to_thread(server.stop)
    assert code == 0, out
