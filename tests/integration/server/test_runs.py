"""RunService's unary methods over real HTTP, with flyteidl2's generated Connect client, against the
real PostgreSQL: what Flyte's SDK and CLI call to list, read and abort runs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pyqwest
import pytest
from connectrpc.code import Code
from connectrpc.protocol import ProtocolType
from flyteidl2.common import identifier_pb2, list_pb2, phase_pb2
from flyteidl2.core import execution_pb2
from flyteidl2.dataproxy import dataproxy_service_pb2
from flyteidl2.dataproxy.dataproxy_service_connect import DataProxyServiceClient
from flyteidl2.task import common_pb2 as task_common_pb2
from flyteidl2.task import task_definition_pb2
from flyteidl2.workflow import run_info_pb2
from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.run_service_connect import RunServiceClient

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import ActionRepo
from tests.connect_errors import refused
from tests.integration.server.records import reported, seed_run

pytestmark = pytest.mark.db

DOMAIN = "development"
ASCENDING = list_pb2.Sort.ASCENDING


@pytest.fixture
async def client(server: str) -> AsyncIterator[RunServiceClient]:
    async with RunServiceClient(server) as c:
        yield c


@pytest.fixture
async def ids(repo: ActionRepo, project: str) -> dict[str, ActionId]:
    """The actions of run ``r0`` of this test's project, written by :func:`seed_run`."""
    return await seed_run(repo, RunId(project, DOMAIN, "r0"))


def project_id(project: str) -> identifier_pb2.ProjectIdentifier:
    return identifier_pb2.ProjectIdentifier(name=project, domain=DOMAIN)


async def test_list_runs_scopes_to_the_project_and_pages_with_upstreams_decimal_token(
    client: RunServiceClient, repo: ActionRepo, project: str
) -> None:
    for i in range(3):
        await seed_run(repo, RunId(project, DOMAIN, f"r{i}"), offset=100 * i)
    await seed_run(repo, RunId(project + "-other", DOMAIN, "r0"))
    newest_first = list_pb2.Sort(key="created_at", direction=list_pb2.Sort.DESCENDING)
    first = await client.list_runs(
        rs.ListRunsRequest(
            project_id=project_id(project), request=list_pb2.ListRequest(limit=2, sort_by=newest_first)
        )
    )
    assert [r.action.id.run.name for r in first.runs] == ["r2", "r1"]
    assert first.token == "2"
    assert all(r.action.id.name == "a0" for r in first.runs)  # roots only
    run = first.runs[0].action
    assert run.status.phase == phase_pb2.ACTION_PHASE_RUNNING
    assert run.metadata.task.id.name == "wf.pipeline" and run.metadata.source == 2  # RUN_SOURCE_CLI
    rest = await client.list_runs(
        rs.ListRunsRequest(
            project_id=project_id(project),
            request=list_pb2.ListRequest(limit=2, sort_by=newest_first, token=first.token),
        )
    )
    assert [r.action.id.run.name for r in rest.runs] == ["r0"] and rest.token == ""


async def test_list_runs_filters_as_upstream_and_refuses_what_it_cannot_filter(
    client: RunServiceClient, repo: ActionRepo, project: str
) -> None:
    await seed_run(repo, RunId(project, DOMAIN, "r0"))
    await repo.abort_run(RunId(project, DOMAIN, "r0"), "stop")
    await seed_run(repo, RunId(project, DOMAIN, "r1"), offset=100)
    aborted = list_pb2.Filter(
        field="phase", function=list_pb2.Filter.EQUAL, values=[str(phase_pb2.ACTION_PHASE_ABORTED)]
    )
    resp = await client.list_runs(
        rs.ListRunsRequest(project_id=project_id(project), request=list_pb2.ListRequest(filters=[aborted]))
    )
    assert [r.action.id.run.name for r in resp.runs] == ["r0"]
    for bad in (
        list_pb2.Filter(field="labels.team", function=list_pb2.Filter.EXISTS),  # not a column
        list_pb2.Filter(field="phase", function=list_pb2.Filter.EQUAL, values=["sideways"]),
    ):
        request = list_pb2.ListRequest(filters=[bad])
        call = client.list_runs(rs.ListRunsRequest(project_id=project_id(project), request=request))
        await refused(call, Code.INVALID_ARGUMENT)
    too_many = client.list_runs(rs.ListRunsRequest(request=list_pb2.ListRequest(limit=201)))
    assert "200" in await refused(too_many, Code.INVALID_ARGUMENT)
    bad_token = client.list_runs(rs.ListRunsRequest(request=list_pb2.ListRequest(token="next")))
    assert "token" in await refused(bad_token, Code.INVALID_ARGUMENT)


async def test_list_actions_answers_the_runs_actions_with_upstreams_short_metadata(
    client: RunServiceClient, repo: ActionRepo, project: str, ids: dict[str, ActionId]
) -> None:
    run_id = ids["a0"].run
    resp = await client.list_actions(
        rs.ListActionsRequest(
            run_id=run_id.to_proto(),
            request=list_pb2.ListRequest(sort_by=list_pb2.Sort(key="created_at", direction=ASCENDING)),
        )
    )
    assert [(a.id.name, a.metadata.parent) for a in resp.actions] == [
        ("a0", ""),
        ("a1", "a0"),
        ("a1-1", "a1"),
        ("a2", "a0"),
    ]
    a2 = resp.actions[3]
    assert a2.status.phase == phase_pb2.ACTION_PHASE_FAILED and a2.status.attempts == 2
    assert a2.status.duration_ms == 5000
    assert not a2.metadata.HasField("task")  # upstream's convertActionToEnrichedProto: parent and group only
    assert "run_id.project" in await refused(
        client.list_actions(rs.ListActionsRequest()), Code.INVALID_ARGUMENT
    )


async def test_get_action_details_merges_the_attempts_from_the_recorded_events(
    client: RunServiceClient, repo: ActionRepo, ids: dict[str, ActionId]
) -> None:
    resp = await client.get_action_details(rs.GetActionDetailsRequest(action_id=ids["a2"].to_proto()))
    details = resp.details
    assert [a.attempt for a in details.attempts] == [1, 2]
    first, second = details.attempts
    assert first.phase == phase_pb2.ACTION_PHASE_FAILED and first.error_info.message == "oom"
    assert [t.phase for t in first.phase_transitions] == [
        phase_pb2.ACTION_PHASE_QUEUED,
        phase_pb2.ACTION_PHASE_RUNNING,
        phase_pb2.ACTION_PHASE_FAILED,
    ]
    assert first.phase_transitions[0].end_time == first.phase_transitions[1].start_time
    assert [log.uri for log in first.log_info] == ["http://logs/a2"]
    assert first.end_time.ToSeconds() - first.start_time.ToSeconds() == 2
    # FAILED: the result is the last attempt's error, since the events show that attempt.
    assert details.WhichOneof("result") == "error_info" and details.error_info.message == "node lost"
    assert second.cluster == "c1"
    assert details.metadata.task.id.name == "wf.train" and details.metadata.funtion_name == "train"
    assert details.status.attempts == 2


async def test_get_run_details_and_unknown_ids_answer_not_found(
    client: RunServiceClient, repo: ActionRepo, project: str, ids: dict[str, ActionId]
) -> None:
    run_id = ids["a0"].run
    resp = await client.get_run_details(rs.GetRunDetailsRequest(run_id=run_id.to_proto()))
    assert resp.details.action.id.name == "a0"
    assert resp.details.action.status.phase == phase_pb2.ACTION_PHASE_RUNNING
    missing = RunId(project, DOMAIN, "nope")
    call = client.get_run_details(rs.GetRunDetailsRequest(run_id=missing.to_proto()))
    assert "nope" in await refused(call, Code.NOT_FOUND)
    unknown = ActionId(run_id, "a9").to_proto()
    await refused(client.get_action_details(rs.GetActionDetailsRequest(action_id=unknown)), Code.NOT_FOUND)


async def test_abort_run_marks_the_root_aborted_and_requests_its_abort(
    client: RunServiceClient, repo: ActionRepo, project: str, ids: dict[str, ActionId]
) -> None:
    run_id = ids["a0"].run
    await client.abort_run(rs.AbortRunRequest(run_id=run_id.to_proto(), reason="enough"))
    root = await repo.get_run(run_id)
    assert root.phase is ActionPhase.ABORTED and root.abort_reason == "enough"
    assert root.action_id in [a.action_id for a in await repo.list_pending_aborts()]
    details = await client.get_run_details(rs.GetRunDetailsRequest(run_id=run_id.to_proto()))
    assert details.details.action.WhichOneof("result") == "abort_info"
    assert details.details.action.abort_info.reason == "enough"
    missing = RunId(project, DOMAIN, "nope").to_proto()
    await refused(client.abort_run(rs.AbortRunRequest(run_id=missing)), Code.NOT_FOUND)


async def test_abort_action_uses_upstreams_default_reason(
    client: RunServiceClient, repo: ActionRepo, ids: dict[str, ActionId]
) -> None:
    await client.abort_action(rs.AbortActionRequest(action_id=ids["a1-1"].to_proto()))
    row = await repo.get_action(ids["a1-1"])
    assert row.phase is ActionPhase.ABORTED and row.abort_reason == "User requested abort"
    assert (await repo.get_run(ids["a0"].run)).phase is ActionPhase.RUNNING  # only that action


async def test_methods_not_served_answer_unimplemented_with_the_reason(client: RunServiceClient) -> None:
    assert "--actions" in await refused(client.create_run(rs.CreateRunRequest()), Code.UNIMPLEMENTED)
    await refused(client.signal_event(rs.SignalEventRequest()), Code.UNIMPLEMENTED)
    stream = client.watch_groups(rs.WatchGroupsRequest())
    assert "WatchGroups" in await refused(anext(stream), Code.UNIMPLEMENTED)


async def test_log_context_and_data_uris_come_from_the_events_and_the_run_info(
    client: RunServiceClient, repo: ActionRepo, ids: dict[str, ActionId]
) -> None:
    a1 = ids["a1"]
    info = run_info_pb2.RunInfo(inputs_uri="s3://bucket/r0/a1/inputs.pb")
    await repo.update_action_detailed_info(a1, info)
    log_context = execution_pb2.LogContext(primary_pod_name="r0-a1-0")
    outputs = task_common_pb2.OutputReferences(output_uri="s3://bucket/r0/a1/outputs.pb")
    await repo.insert_reported_events(
        [
            reported(a1, 1, ActionPhase.RUNNING, 20),
            # Upstream reads the attempt's latest event by phase: the terminal one, as the executor sends it.
            reported(a1, 1, ActionPhase.SUCCEEDED, 21, outputs=outputs, log_context=log_context),
        ]
    )
    got = await client.get_action_log_context(
        rs.GetActionLogContextRequest(action_id=a1.to_proto(), attempt=1)
    )
    assert got.log_context.primary_pod_name == "r0-a1-0" and got.cluster == "c1"
    missing = client.get_action_log_context(rs.GetActionLogContextRequest(action_id=a1.to_proto(), attempt=2))
    assert "attempt 2" in await refused(missing, Code.NOT_FOUND)
    uris = await client.get_action_data_u_r_is(rs.GetActionDataURIsRequest(action_id=a1.to_proto()))
    assert (uris.inputs_uri, uris.outputs_uri) == (
        "s3://bucket/r0/a1/inputs.pb",
        "s3://bucket/r0/a1/outputs.pb",
    )
    # a2 FAILED: no outputs to point at, and no RunInfo stored at all.
    no_info = client.get_action_data_u_r_is(rs.GetActionDataURIsRequest(action_id=ids["a2"].to_proto()))
    assert "run data not available" in await refused(no_info, Code.NOT_FOUND)


async def test_list_runs_scopes_by_task_and_by_paused_actions(
    client: RunServiceClient, repo: ActionRepo, project: str
) -> None:
    await seed_run(repo, RunId(project, DOMAIN, "r0"))
    paused = await seed_run(repo, RunId(project, DOMAIN, "r1"), offset=100)
    await repo.update_action_phase(paused["a1-1"], ActionPhase.PAUSED, 1, 0)

    def names(resp: rs.ListRunsResponse) -> list[str]:
        return sorted(r.action.id.run.name for r in resp.runs)

    by_task = rs.ListRunsRequest(
        task_name=task_definition_pb2.TaskName(project=project, domain=DOMAIN, name="wf.pipeline")
    )
    assert names(await client.list_runs(by_task)) == ["r0", "r1"]
    other_version = task_definition_pb2.TaskIdentifier(
        project=project, domain=DOMAIN, name="wf.pipeline", version="v2"
    )
    assert names(await client.list_runs(rs.ListRunsRequest(task_id=other_version))) == []
    only_paused = rs.ListRunsRequest(project_id=project_id(project), paused_actions_only=True)
    assert names(await client.list_runs(only_paused)) == ["r1"]


@contextlib.asynccontextmanager
async def data_proxy(server: str, protocol: ProtocolType) -> AsyncIterator[DataProxyServiceClient]:
    """A client of a service this server does not serve; gRPC needs HTTP/2."""
    h2 = pyqwest.Client(pyqwest.HTTPTransport(http_version=pyqwest.HTTPVersion.HTTP2))
    http = {"http_client": h2} if protocol is ProtocolType.GRPC else {}
    async with DataProxyServiceClient(server, protocol=protocol, **http) as proxy:
        yield proxy


@pytest.mark.parametrize("protocol", [ProtocolType.CONNECT, ProtocolType.GRPC_WEB, ProtocolType.GRPC])
async def test_a_service_not_served_answers_unimplemented_naming_what_is(
    server: str, protocol: ProtocolType
) -> None:
    # Flyte's SDK reads logs and data through DataProxyService, which this server does not have.
    async with data_proxy(server, protocol) as proxy:
        unary = proxy.get_action_data(dataproxy_service_pb2.GetActionDataRequest())
        assert "flyteidl2.workflow.RunService" in await refused(unary, Code.UNIMPLEMENTED)
        stream = proxy.tail_logs(dataproxy_service_pb2.TailLogsRequest())
        assert "DataProxyService is not served here" in await refused(anext(stream), Code.UNIMPLEMENTED)


@pytest.mark.parametrize("protocol", [ProtocolType.CONNECT, ProtocolType.GRPC_WEB, ProtocolType.GRPC])
async def test_calls_of_any_size_to_a_service_not_served_each_answer_unimplemented(
    server: str, protocol: ProtocolType
) -> None:
    # The answer must not race the request body: over HTTP/2 a stream answered while its body is
    # still arriving broke the connection (the client saw a broken pipe, not the status) about one
    # call in a hundred.
    async with data_proxy(server, protocol) as proxy:
        for size in [10, 100_000, 2_000_000] * 100:
            big = identifier_pb2.ActionIdentifier(name="x" * size)
            call = proxy.get_action_data(dataproxy_service_pb2.GetActionDataRequest(action_id=big))
            assert "is not served here" in await refused(call, Code.UNIMPLEMENTED)
