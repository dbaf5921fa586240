"""ActionsService over Connect (``serve --actions``), as Flyte's in-pod controller calls it, against
the real control plane: children enqueued, followed, updated and aborted through the server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from connectrpc.code import Code
from flyteidl2.actions import actions_service_pb2 as acts
from flyteidl2.actions.actions_service_connect import ActionsServiceClient
from flyteidl2.workflow import run_definition_pb2

from taskaction_operator.client.actions_client import ActionsClient
from taskaction_operator.devtools.executor import StandInExecutor
from taskaction_operator.k8s import KubeOps
from taskaction_operator.model import ActionId, RunId, cr_name
from taskaction_operator.repo import ActionRepo
from taskaction_operator.server.app import build_app
from tests.connect_errors import refused
from tests.e2e.client.conftest import DOMAIN, actions_of, task
from tests.e2e.operator import until
from tests.integration.repo.helpers import next_item, next_matching
from tests.integration.server.conftest import serving

pytestmark = pytest.mark.cluster

RUNNING, ABORTED = 4, 7


@pytest.fixture
async def service(client: ActionsClient, repo: ActionRepo) -> AsyncIterator[ActionsServiceClient]:
    await client.start_watching()
    async with serving(build_app(repo, actions=client)) as url, ActionsServiceClient(url) as c:
        yield c


async def test_enqueue_watch_and_abort_children_through_the_server(
    service: ActionsServiceClient, kube: KubeOps, namespace: str
) -> None:
    run = RunId(namespace, DOMAIN, "rsvc")
    root, child = actions_of(namespace, run.name, task("a0"), task("a1", "a0"))
    await service.enqueue(acts.EnqueueRequest(action=root))
    await service.enqueue(acts.EnqueueRequest(action=child))
    assert await kube.get_taskaction(namespace, cr_name(ActionId(run, "a1"))) is not None
    stream = service.watch_for_updates(acts.WatchForUpdatesRequest(parent_action_id=run.root.to_proto()))
    snapshot = []
    while not (message := await next_item(stream)).HasField("control_message"):
        snapshot.append(message.action_update.action_id.name)
    assert message.control_message.sentinel and sorted(snapshot) == ["a0", "a1"]
    await StandInExecutor(kube).run_through(namespace, cr_name(ActionId(run, "a1")), ["Queued", "Executing"])
    running = await next_matching(stream, lambda m: m.action_update.phase == RUNNING)
    assert running.action_update.action_id.name == "a1"
    a1 = ActionId(run, "a1").to_proto()
    await service.update(
        acts.UpdateRequest(action_id=a1, attempt=2, status=run_definition_pb2.ActionStatus())
    )
    status = (await kube.get_taskaction(namespace, cr_name(ActionId(run, "a1"))) or {}).get("status") or {}
    assert status.get("attempts") == 2
    await service.abort(acts.AbortRequest(action_id=a1, reason="enough"))
    aborted = await next_matching(stream, lambda m: m.action_update.phase == ABORTED)
    assert aborted.action_update.action_id.name == "a1"

    async def a1_gone() -> bool:
        return await kube.get_taskaction(namespace, cr_name(ActionId(run, "a1"))) is None

    await until(a1_gone, what="a1's TaskAction deleted")


async def test_bad_enqueues_and_unknown_aborts_are_classified(
    service: ActionsServiceClient, namespace: str
) -> None:
    (root,) = actions_of(namespace, "rbad", task("a0"))
    await service.enqueue(acts.EnqueueRequest(action=root))
    assert "already exists" in await refused(
        service.enqueue(acts.EnqueueRequest(action=root)), Code.ALREADY_EXISTS
    )
    empty = acts.Action(action_id=root.action_id)
    await refused(service.enqueue(acts.EnqueueRequest(action=empty)), Code.INVALID_ARGUMENT)
    orphan = acts.Action()
    orphan.CopyFrom(root)
    orphan.action_id.name, orphan.parent_action_name = "a9", "nope"
    await refused(service.enqueue(acts.EnqueueRequest(action=orphan)), Code.NOT_FOUND)
    unknown = ActionId(RunId(namespace, DOMAIN, "rbad"), "zz").to_proto()
    await refused(service.abort(acts.AbortRequest(action_id=unknown)), Code.NOT_FOUND)
    watch = service.watch_for_updates(acts.WatchForUpdatesRequest())
    await refused(next_item(watch), Code.INVALID_ARGUMENT)


async def test_without_actions_the_service_says_how_to_serve_it(repo: ActionRepo) -> None:
    async with serving(build_app(repo)) as url, ActionsServiceClient(url) as c:
        message = await refused(c.enqueue(acts.EnqueueRequest()), Code.UNIMPLEMENTED)
    assert "--actions" in message
