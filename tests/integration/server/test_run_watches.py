"""RunService's watches over real HTTP against the real PostgreSQL: the first answer, each change
after it, when a stream ends, and the bounds (open streams, lifetime, deadline, a client gone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from flyteidl2.common import identifier_pb2, list_pb2, phase_pb2
from flyteidl2.workflow import run_definition_pb2
from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.run_service_connect import RunServiceClient
from sqlalchemy import text

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import ActionRepo
from taskaction_operator.server.app import build_app
from taskaction_operator.server.bounds import StreamLimits
from taskaction_operator.server.observability import REGISTRY
from tests.integration.repo.helpers import eventually, next_item, next_matching
from tests.integration.server.conftest import serving
from tests.integration.server.records import reported, row, seed_run

pytestmark = pytest.mark.db

DOMAIN = "development"
SUCCEEDED, FAILED, RUNNING = phase_pb2.ACTION_PHASE_SUCCEEDED, phase_pb2.ACTION_PHASE_FAILED, 4


@pytest.fixture
async def client(server: str) -> AsyncIterator[RunServiceClient]:
    async with RunServiceClient(server) as c:
        yield c


@pytest.fixture
async def a3(repo: ActionRepo, project: str) -> ActionId:
    """A RUNNING child ``a3`` of run ``r0``'s root (the rest of :func:`seed_run`'s tree beside it)."""
    ids = await seed_run(repo, RunId(project, DOMAIN, "r0"))
    a3 = ActionId(ids["a0"].run, "a3")
    await repo.create_action(row(a3, "a0", ActionPhase.RUNNING, "wf.eval", 9))
    return a3


async def test_watch_action_details_sends_each_change_and_ends_once_the_events_are_terminal(
    client: RunServiceClient, repo: ActionRepo, a3: ActionId
) -> None:
    await repo.insert_reported_events([reported(a3, 1, ActionPhase.RUNNING, 20)])
    stream = client.watch_action_details(rs.WatchActionDetailsRequest(action_id=a3.to_proto()))
    first = await next_item(stream)
    assert first.details.status.phase == RUNNING and [a.phase for a in first.details.attempts] == [RUNNING]
    # The row ends first: the stream stays open until the events show the end too (upstream).
    await repo.update_action_phase(a3, ActionPhase.SUCCEEDED, 1, 0)
    second = await next_item(stream)
    assert second.details.status.phase == SUCCEEDED and second.details.attempts[-1].phase == RUNNING
    await repo.insert_reported_events([reported(a3, 1, ActionPhase.SUCCEEDED, 25)])
    last = await next_item(stream)
    assert last.details.attempts[-1].phase == SUCCEEDED
    with pytest.raises(StopAsyncIteration):
        await next_item(stream)


async def test_watch_action_details_of_a_finished_action_answers_once_and_unknown_is_not_found(
    client: RunServiceClient, repo: ActionRepo, project: str
) -> None:
    ids = await seed_run(repo, RunId(project, DOMAIN, "r0"))
    answers = [
        m
        async for m in client.watch_action_details(
            rs.WatchActionDetailsRequest(action_id=ids["a2"].to_proto())
        )
    ]
    assert [m.details.status.phase for m in answers] == [FAILED]
    with pytest.raises(ConnectError) as info:
        async for _ in client.watch_action_details(
            rs.WatchActionDetailsRequest(action_id=ActionId(ids["a0"].run, "zz").to_proto())
        ):
            pass
    assert info.value.code is Code.NOT_FOUND


async def test_watch_actions_sends_the_tree_then_each_change_with_descendant_phase_counts(
    client: RunServiceClient, repo: ActionRepo, project: str
) -> None:
    ids = await seed_run(repo, RunId(project, DOMAIN, "r0"))
    stream = client.watch_actions(rs.WatchActionsRequest(run_id=ids["a0"].run.to_proto()))
    snapshot = (await next_item(stream)).enriched_actions
    by_name = {e.action.id.name: e for e in snapshot}
    assert [e.action.id.name for e in snapshot] == ["a0", "a1", "a1-1", "a2"]  # parents first
    assert dict(by_name["a0"].children_phase_counts) == {SUCCEEDED: 2, FAILED: 1}
    assert dict(by_name["a1"].children_phase_counts) == {SUCCEEDED: 1}
    assert all(e.meets_filter for e in snapshot)
    assert by_name["a2"].action.metadata.task.short_name == "train"
    a3 = ActionId(ids["a0"].run, "a3")
    await repo.create_action(row(a3, "a1", ActionPhase.RUNNING, "wf.eval", 9))
    change = (await next_item(stream)).enriched_actions
    # The new action and every ancestor whose counts moved.
    assert [e.action.id.name for e in change] == ["a0", "a1", "a3"]
    assert dict(change[0].children_phase_counts) == {SUCCEEDED: 2, FAILED: 1, RUNNING: 1}


async def test_watch_actions_filters_show_matches_with_their_ancestors_and_bad_filters_are_refused(
    client: RunServiceClient, repo: ActionRepo, project: str
) -> None:
    ids = await seed_run(repo, RunId(project, DOMAIN, "r0"))
    failed = list_pb2.Filter(field="PHASE", function=list_pb2.Filter.VALUE_IN, values=[str(FAILED)])
    stream = client.watch_actions(rs.WatchActionsRequest(run_id=ids["a0"].run.to_proto(), filter=[failed]))
    assert [e.action.id.name for e in (await next_item(stream)).enriched_actions] == ["a0", "a2"]
    a3 = ActionId(ids["a0"].run, "a3")
    await repo.create_action(row(a3, "a1-1", ActionPhase.RUNNING, "wf.eval", 9))
    await repo.update_action_phase(a3, ActionPhase.FAILED, 1, 0)
    # Its creation (RUNNING) shows nothing new but a0's counts; its failure shows it and its path.
    update = await next_matching(stream, lambda m: any(e.action.id.name == "a3" for e in m.enriched_actions))
    shown = {e.action.id.name: e.meets_filter for e in update.enriched_actions}
    assert shown == {"a0": True, "a1": True, "a1-1": True, "a3": True}
    bad = list_pb2.Filter(field="phase", function=list_pb2.Filter.EQUAL, values=["6"])
    with pytest.raises(ConnectError) as info:
        async for _ in client.watch_actions(
            rs.WatchActionsRequest(run_id=ids["a0"].run.to_proto(), filter=[bad])
        ):
            pass
    assert info.value.code is Code.INVALID_ARGUMENT and "not supported" in info.value.message
    with pytest.raises(ConnectError) as info:
        async for _ in client.watch_actions(
            rs.WatchActionsRequest(run_id=RunId(project, DOMAIN, "no").to_proto())
        ):
            pass
    assert info.value.code is Code.NOT_FOUND


async def test_watch_runs_sends_the_projects_runs_then_its_new_runs_only(
    client: RunServiceClient, repo: ActionRepo, project: str
) -> None:
    await seed_run(repo, RunId(project, DOMAIN, "r0"))
    target = identifier_pb2.ProjectIdentifier(name=project, domain=DOMAIN)
    stream = client.watch_runs(rs.WatchRunsRequest(project_id=target))
    assert [r.action.id.run.name for r in (await next_item(stream)).runs] == ["r0"]
    other = RunId(project + "-x", DOMAIN, "r9")
    await repo.create_action(row(other.root, None, ActionPhase.QUEUED, "wf.p", 0))
    await repo.update_action_phase(other.root, ActionPhase.RUNNING, 1, 0)
    mine = RunId(project, DOMAIN, "r1")
    await repo.create_action(row(mine.root, None, ActionPhase.QUEUED, "wf.p", 0))
    await repo.update_action_phase(mine.root, ActionPhase.RUNNING, 1, 0)
    update = await next_item(stream)
    assert [(r.action.id.run.name, r.action.status.phase) for r in update.runs] == [("r1", RUNNING)]


async def test_watch_run_details_sends_the_details_then_the_abort(
    client: RunServiceClient, repo: ActionRepo, project: str
) -> None:
    run_id = RunId(project, DOMAIN, "r0")
    await seed_run(repo, run_id)
    stream = client.watch_run_details(rs.WatchRunDetailsRequest(run_id=run_id.to_proto()))
    assert (await next_item(stream)).details.action.status.phase == RUNNING
    await repo.abort_run(run_id, "stop it")
    aborted = (await next_item(stream)).details.action
    assert aborted.status.phase == phase_pb2.ACTION_PHASE_ABORTED and aborted.abort_info.reason == "stop it"


async def _listener_connections(repo: ActionRepo) -> int:
    async with repo.engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'taskaction-operator-listener' AND datname = current_database()"
            )
        )
        return int(result.scalar_one())


async def test_many_streams_share_one_listener_connection_and_one_subscription_per_key(
    client: RunServiceClient, repo: ActionRepo, project: str
) -> None:
    ids = await seed_run(repo, RunId(project, DOMAIN, "r0"))
    before = await _listener_connections(repo)
    streams = [
        client.watch_action_details(rs.WatchActionDetailsRequest(action_id=ids["a0"].to_proto()))
        for _ in range(5)
    ]
    streams += [
        client.watch_actions(rs.WatchActionsRequest(run_id=ids["a0"].run.to_proto())) for _ in range(5)
    ]
    for stream in streams:
        await next_item(stream)
    assert await _listener_connections(repo) == before + 1
    assert repo.listener.watchers == 2  # one subscription for a0's row, one for the run's actions
    await repo.update_action_phase(ids["a0"], ActionPhase.SUCCEEDED, 1, 0)
    for stream in streams:  # every one of them hears the change through that one connection
        await next_item(stream)


async def test_streams_beyond_the_maximum_are_refused_and_a_gone_client_frees_its_slot(
    repo: ActionRepo, project: str
) -> None:
    ids = await seed_run(repo, RunId(project, DOMAIN, "r0"))
    limits = StreamLimits(max_streams=1)
    request = rs.WatchActionsRequest(run_id=ids["a0"].run.to_proto())
    async with serving(build_app(repo, limits=limits)) as url:
        async with RunServiceClient(url) as first:
            stream = first.watch_actions(request)
            await next_item(stream)
            async with RunServiceClient(url) as second:
                with pytest.raises(ConnectError) as info:
                    await next_item(second.watch_actions(request))
                assert info.value.code is Code.RESOURCE_EXHAUSTED
            await stream.aclose()  # type: ignore[attr-defined]  # an async generator
        # The first client is gone while its run is quiet: the server notices and frees the slot.
        await eventually(lambda: limits.open == 0, what="the gone client's stream to end")
        async with RunServiceClient(url) as third:
            assert (await next_item(third.watch_actions(request))).enriched_actions


async def test_a_stream_ends_cleanly_at_the_server_lifetime_and_with_deadline_exceeded_at_the_clients(
    repo: ActionRepo, project: str
) -> None:
    ids = await seed_run(repo, RunId(project, DOMAIN, "r0"))
    request = rs.WatchActionsRequest(run_id=ids["a0"].run.to_proto())
    async with (
        serving(build_app(repo, limits=StreamLimits(max_seconds=0.5))) as url,
        RunServiceClient(url) as c,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert len([m async for m in c.watch_actions(request)]) == 1
        assert 0.4 < loop.time() - started < 10
    async with serving(build_app(repo)) as url, RunServiceClient(url) as c:
        stream = c.watch_actions(request, timeout_ms=500)
        await next_item(stream)
        with pytest.raises(ConnectError) as info:
            await next_item(stream)
        assert info.value.code is Code.DEADLINE_EXCEEDED


async def test_metrics_count_each_rpc_and_each_stream_message_and_large_requests_are_refused(
    repo: ActionRepo, project: str
) -> None:
    ids = await seed_run(repo, RunId(project, DOMAIN, "r0"))
    service = "flyteidl2.workflow.RunService"

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"service": service, **labels}) or 0.0

    ok_before = sample("taskaction_rpc_requests_total", method="GetRunDetails", code="ok")
    sent_before = sample("taskaction_rpc_stream_messages_total", method="WatchActions")
    async with serving(build_app(repo, read_max_bytes=1024)) as url, RunServiceClient(url) as c:
        await c.get_run_details(rs.GetRunDetailsRequest(run_id=ids["a0"].run.to_proto()))
        stream = c.watch_actions(rs.WatchActionsRequest(run_id=ids["a0"].run.to_proto()))
        await next_item(stream)
        assert sample("taskaction_rpc_in_flight", method="WatchActions") == 1
        huge = list_pb2.Filter(field="task_name", function=list_pb2.Filter.EQUAL, values=["x" * 4096])
        with pytest.raises(ConnectError) as info:
            await c.list_runs(rs.ListRunsRequest(request=list_pb2.ListRequest(filters=[huge])))
        assert info.value.code is Code.RESOURCE_EXHAUSTED
    assert sample("taskaction_rpc_requests_total", method="GetRunDetails", code="ok") == ok_before + 1
    assert sample("taskaction_rpc_stream_messages_total", method="WatchActions") == sent_before + 1
    assert sample("taskaction_rpc_in_flight", method="WatchActions") == 0


async def test_watch_cluster_events_sends_the_attempts_events_as_recorded_and_ends_at_its_end(
    client: RunServiceClient, repo: ActionRepo, a3: ActionId
) -> None:
    def pulled(reason: str) -> run_definition_pb2.ClusterEvent:
        return run_definition_pb2.ClusterEvent(reason=reason, message=f"{reason} the image")

    await repo.insert_reported_events(
        [reported(a3, 1, ActionPhase.QUEUED, 20, cluster_events=[pulled("Pulling")])]
    )
    stream = client.watch_cluster_events(rs.WatchClusterEventsRequest(id=a3.to_proto(), attempt=1))
    assert [e.reason for e in (await next_item(stream)).cluster_events] == ["Pulling"]
    await repo.insert_reported_events(
        [reported(a3, 1, ActionPhase.RUNNING, 21, cluster_events=[pulled("Pulled")])]
    )
    assert [e.reason for e in (await next_item(stream)).cluster_events] == ["Pulled"]
    await repo.insert_reported_events([reported(a3, 1, ActionPhase.SUCCEEDED, 22)])
    with pytest.raises(StopAsyncIteration):
        await next_item(stream)
