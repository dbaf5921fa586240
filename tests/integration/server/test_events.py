"""The events endpoint over real HTTP, with flyteidl2's generated Connect clients (the ones Flyte's
executor's Go client mirrors), against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import urllib.request

import pyqwest
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from flyteidl2.common import identifier_pb2, phase_pb2
from flyteidl2.core import execution_pb2
from flyteidl2.workflow import (
    events_proxy_service_pb2,
    internal_run_service_pb2,
    run_definition_pb2,
)
from flyteidl2.workflow.events_proxy_service_connect import EventsProxyServiceClient
from flyteidl2.workflow.internal_run_service_connect import InternalRunServiceClient

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import ActionEvent, ActionRepo
from tests.integration.repo.helpers import action

pytestmark = pytest.mark.db


def event(
    project: str, name: str, attempt: int, phase: int, *, version: int = 0, kind: int = 0
) -> run_definition_pb2.ActionEvent:
    ev = run_definition_pb2.ActionEvent(
        id=identifier_pb2.ActionIdentifier(
            run=identifier_pb2.RunIdentifier(project=project, domain="d", name="r1"), name=name
        ),
        attempt=attempt,
        phase=phase,
        version=version,
        cluster="c1",
    )
    if kind:
        ev.error_info.CopyFrom(run_definition_pb2.ErrorInfo(message="boom", kind=kind))
    ev.log_info.append(execution_pb2.TaskLog(uri="http://logs/1", name="pod"))
    return ev


async def test_record_stores_the_executors_events_as_upstream_does(
    server: str, repo: ActionRepo, project: str
) -> None:
    aid = ActionId(RunId(project, "d", "r1"), "a1")
    await repo.create_action(action(aid))
    sent = [
        event(project, "a1", 1, phase_pb2.ACTION_PHASE_QUEUED),
        event(project, "a1", 1, phase_pb2.ACTION_PHASE_RUNNING),
        event(project, "a1", 1, phase_pb2.ACTION_PHASE_FAILED, kind=run_definition_pb2.ErrorInfo.KIND_USER),
    ]
    async with EventsProxyServiceClient(server) as client:
        await client.record(events_proxy_service_pb2.RecordRequest(events=sent))
        await client.record(events_proxy_service_pb2.RecordRequest(events=sent))  # at-least-once: resent
        await client.record(events_proxy_service_pb2.RecordRequest())  # nothing to record
    stored = await repo.list_events(aid)
    assert [(e.attempt, e.phase, e.version) for e in stored] == [(1, 1, 0), (1, 4, 0), (1, 6, 0)]
    assert [e.info for e in stored] == [ev.SerializeToString() for ev in sent]
    assert [e.error_kind for e in stored] == [None, None, "KIND_USER"]


async def test_a_report_replaces_the_row_the_operator_derived_first(
    server: str, repo: ActionRepo, project: str
) -> None:
    aid = ActionId(RunId(project, "d", "r1"), "a1")
    await repo.create_action(action(aid))
    derived = ActionEvent(project, "d", "r1", "a1", 1, ActionPhase.RUNNING, 0)
    await repo.insert_events([derived])
    report = event(project, "a1", 1, phase_pb2.ACTION_PHASE_RUNNING)
    # gRPC this time (HTTP/2 over cleartext, prior knowledge), the protocol grpc-go clients speak.
    async with (
        EventsProxyServiceClient(
            server,
            protocol=ProtocolType.GRPC,
            http_client=pyqwest.Client(pyqwest.HTTPTransport(http_version=pyqwest.HTTPVersion.HTTP2)),
        ) as client,
    ):
        await client.record(events_proxy_service_pb2.RecordRequest(events=[report]))
    (stored,) = await repo.list_events(aid)
    assert stored.info == report.SerializeToString()
    # ... and the operator's later derivation of the same transition changes nothing.
    await repo.insert_events([derived])
    (again,) = await repo.list_events(aid)
    assert again.info == report.SerializeToString()


async def test_an_invalid_event_is_refused_with_invalid_argument_and_nothing_is_stored(
    server: str, repo: ActionRepo, project: str
) -> None:
    aid = ActionId(RunId(project, "d", "r1"), "a1")
    bad = event(project, "a1", 0, phase_pb2.ACTION_PHASE_QUEUED)  # attempts count from 1
    async with EventsProxyServiceClient(server) as client:
        with pytest.raises(ConnectError) as info:
            await client.record(events_proxy_service_pb2.RecordRequest(events=[bad]))
    assert info.value.code is Code.INVALID_ARGUMENT
    assert "attempt" in info.value.message
    assert await repo.list_events(aid) == []


async def test_record_action_events_answers_in_band_and_other_methods_are_unimplemented(
    server: str, repo: ActionRepo, project: str
) -> None:
    aid = ActionId(RunId(project, "d", "r1"), "a2")
    async with InternalRunServiceClient(server) as client:
        ok = await client.record_action_events(
            internal_run_service_pb2.RecordActionEventsRequest(
                events=[event(project, "a2", 1, phase_pb2.ACTION_PHASE_QUEUED)]
            )
        )
        assert ok.status.code == 0
        bad = await client.record_action_events(
            internal_run_service_pb2.RecordActionEventsRequest(events=[run_definition_pb2.ActionEvent()])
        )
        assert bad.status.code == 3 and bad.status.message  # INVALID_ARGUMENT, in-band as upstream
        with pytest.raises(ConnectError) as info:
            await client.record_action(internal_run_service_pb2.RecordActionRequest())
        assert info.value.code is Code.UNIMPLEMENTED
    assert [(e.attempt, e.phase) for e in await repo.list_events(aid)] == [(1, 1)]


async def test_health_readiness_and_metrics(server: str) -> None:
    def fetch(path: str) -> tuple[int, str]:
        with urllib.request.urlopen(server + path, timeout=10) as resp:
            return resp.status, resp.read().decode()

    async def get(path: str) -> tuple[int, str]:
        return await asyncio.to_thread(fetch, path)  # the server runs on this event loop

    assert await get("/healthz") == (200, "ok\n")
    assert await get("/readyz") == (200, "ok\n")
    status, text = await get("/metrics")
    assert status == 200 and "taskaction_rpc_requests_total" in text


async def test_an_attempt_that_ended_gets_no_second_end_from_a_report(
    server: str, repo: ActionRepo, project: str
) -> None:
    """Flyte's executor records ABORTED for every TaskAction it finalizes, a SUCCEEDED one too (its
    run's garbage collection); upstream stores that as a second end of the attempt, here it is not."""
    aid = ActionId(RunId(project, "d", "r1"), "a1")
    await repo.create_action(action(aid))
    ended = [
        event(project, "a1", 1, phase_pb2.ACTION_PHASE_RUNNING),
        event(project, "a1", 1, phase_pb2.ACTION_PHASE_SUCCEEDED),
    ]
    async with EventsProxyServiceClient(server) as client:
        await client.record(events_proxy_service_pb2.RecordRequest(events=ended))
        await client.record(
            events_proxy_service_pb2.RecordRequest(
                events=[
                    event(project, "a1", 1, phase_pb2.ACTION_PHASE_ABORTED),  # the finalizer's: dropped
                    event(project, "a1", 1, phase_pb2.ACTION_PHASE_SUCCEEDED),  # a resend: kept once
                    event(project, "a1", 2, phase_pb2.ACTION_PHASE_ABORTED),  # an attempt still open
                ]
            )
        )
    stored = await repo.list_events(aid)
    assert sorted((e.attempt, e.phase) for e in stored) == [(1, 4), (1, 5), (2, 7)]
