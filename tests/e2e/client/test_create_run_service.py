"""RunService.CreateRun (``serve --actions``) with flyteidl2's Connect client against the real control
plane and database: the root row as upstream's persistRunModel writes it, the root TaskAction
created, names given or generated, and what cannot be served refused with its reason.

Flyte's SDK is not the client here: its ``flyte.run`` uploads the code bundle and inputs through
DataProxyService first, which this server does not have, and its CreateRun call is internal to that
flow; flyteidl2's generated client sends the same CreateRunRequest."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from connectrpc.code import Code
from flyteidl2.common import identifier_pb2
from flyteidl2.task import common_pb2, run_pb2, task_definition_pb2
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.run_service_connect import RunServiceClient

from taskaction_operator.client.actions_client import ActionsClient
from taskaction_operator.k8s import KubeOps
from taskaction_operator.model import ActionPhase, RunId, cr_name
from taskaction_operator.repo import ActionRepo
from taskaction_operator.server.app import build_app
from taskaction_operator.server.create_run import RUN_NAME_ALPHABET
from tests.connect_errors import refused
from tests.e2e.client.conftest import DOMAIN, actions_of, task
from tests.integration.server.conftest import serving

pytestmark = pytest.mark.cluster

PREFIX = "s3://bucket/data"


@pytest.fixture
async def runs(client: ActionsClient, repo: ActionRepo) -> AsyncIterator[RunServiceClient]:
    await client.start_watching()
    async with (
        serving(build_app(repo, actions=client, storage_prefix=PREFIX)) as url,
        RunServiceClient(url) as c,
    ):
        yield c


def task_spec(namespace: str) -> task_definition_pb2.TaskSpec:
    (root,) = actions_of(namespace, "unused", task("a0"))
    return root.task.spec


async def test_create_run_writes_the_root_row_and_creates_its_taskaction(
    runs: RunServiceClient, repo: ActionRepo, kube: KubeOps, namespace: str
) -> None:
    run_id = RunId(namespace, DOMAIN, "rcreate")
    spec = run_pb2.RunSpec(labels=run_pb2.Labels(values={"team": "ml"}))
    answer = await runs.create_run(
        rs.CreateRunRequest(
            run_id=run_id.to_proto(), task_spec=task_spec(namespace), run_spec=spec, source=wf.RUN_SOURCE_WEB
        )
    )
    assert answer.run.action.id == run_id.root.to_proto()
    assert answer.run.action.status.phase == int(ActionPhase.QUEUED)
    row = await repo.get_run(run_id)
    base = f"{PREFIX}/{namespace}/{DOMAIN}/rcreate"
    info = row.get_detailed_info()
    assert info is not None and info.inputs_uri == f"{base}/inputs/inputs.pb"
    action_spec = row.get_action_spec()
    assert action_spec is not None
    assert (action_spec.input_uri, action_spec.run_output_base) == (f"{base}/inputs/inputs.pb", f"{base}/")
    stored_spec = row.get_run_spec()
    assert stored_spec is not None and stored_spec.labels.values["team"] == "ml"
    assert stored_spec.raw_data_storage.raw_data_prefix == PREFIX
    assert row.run_source == "RUN_SOURCE_WEB"
    cr = await kube.get_taskaction(namespace, cr_name(run_id.root))
    assert cr is not None and cr["spec"]["inputUri"] == f"{base}/inputs"
    assert cr["spec"]["runOutputBase"] == f"{base}/"
    # The same run again: refused, and the first one untouched.
    again = rs.CreateRunRequest(run_id=run_id.to_proto(), task_spec=task_spec(namespace))
    assert "already exists" in await refused(runs.create_run(again), Code.ALREADY_EXISTS)
    assert (await repo.get_run(run_id)).run_source == "RUN_SOURCE_WEB"


async def test_a_run_given_only_its_project_is_named_like_upstreams(
    runs: RunServiceClient, repo: ActionRepo, kube: KubeOps, namespace: str
) -> None:
    project = identifier_pb2.ProjectIdentifier(name=namespace, domain=DOMAIN)
    answer = await runs.create_run(rs.CreateRunRequest(project_id=project, task_spec=task_spec(namespace)))
    name = answer.run.action.id.run.name
    assert re.fullmatch(f"r[{RUN_NAME_ALPHABET}]{{19}}", name), name
    assert (await repo.get_run(RunId(namespace, DOMAIN, name))).phase is ActionPhase.QUEUED
    assert await kube.get_taskaction(namespace, cr_name(RunId(namespace, DOMAIN, name).root)) is not None


async def test_what_cannot_be_served_is_refused_and_writes_nothing(
    runs: RunServiceClient, repo: ActionRepo, kube: KubeOps, namespace: str
) -> None:
    run_id = RunId(namespace, DOMAIN, "rrefused")
    by_id = rs.CreateRunRequest(
        run_id=run_id.to_proto(), task_id=task_definition_pb2.TaskIdentifier(name="t", version="v")
    )
    assert "give task_spec" in await refused(runs.create_run(by_id), Code.UNIMPLEMENTED)
    inline = rs.CreateRunRequest(run_id=run_id.to_proto(), task_spec=task_spec(namespace))
    inline.inputs.literals.append(common_pb2.NamedLiteral(name="x"))
    assert "offloaded_input_data" in await refused(runs.create_run(inline), Code.UNIMPLEMENTED)
    bad = rs.CreateRunRequest(
        run_id=RunId(namespace, DOMAIN, "Bad_Name").to_proto(), task_spec=task_spec(namespace)
    )
    await refused(runs.create_run(bad), Code.INVALID_ARGUMENT)
    assert await kube.list_taskactions(namespace) == []
    with pytest.raises(Exception, match="not found"):
        await repo.get_run(run_id)
