"""CreateRun against the real database and cluster: the row first, then the TaskAction; a failure in
between leaves an abort request (never a silent orphan); an existing run is never touched."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskaction_operator.client.actions_client import ActionsClient
from taskaction_operator.client.runs import CreateRunError, RunExistsError, create_run
from taskaction_operator.k8s import KubeOps
from taskaction_operator.k8s.errors import KubeError
from taskaction_operator.model import ActionPhase, ActionType, RunId, RunSource
from taskaction_operator.repo import ActionRepo, NotFoundError
from tests.e2e.client.conftest import DOMAIN, actions_of, task

pytestmark = pytest.mark.cluster


@pytest.fixture
async def repo(migrated: str) -> AsyncIterator[ActionRepo]:
    r = await ActionRepo.connect(migrated, pool_size=2, max_overflow=2)
    yield r
    await r.close()


async def test_create_run_writes_the_root_row_then_its_taskaction(
    repo: ActionRepo, client: ActionsClient, kube: KubeOps, namespace: str
) -> None:
    (root,) = actions_of(namespace, "rc1", task("a0", task="wf.main", version="v2"))
    row = await create_run(repo, client, root, None, source=RunSource.CLI)
    assert (row.name, row.parent_action_name, row.phase, row.action_type) == (
        "a0", None, ActionPhase.QUEUED, ActionType.TASK
    )  # fmt: skip
    assert (row.attempts, row.action_details, row.run_source) == (1, b"{}", "RUN_SOURCE_CLI")
    assert (row.task_name, row.task_version, row.task_type) == ("wf.main", "v2", "python")
    spec = row.get_action_spec()
    assert spec is not None and spec.action_id.name == "a0"
    assert row.get_run_spec() is not None
    obj = await kube.get_taskaction(namespace, "rc1-a0")
    assert obj is not None and obj["spec"]["taskType"] == "python"
    assert (await repo.get_run(RunId(namespace, DOMAIN, "rc1"))).created_at == row.created_at


async def test_an_existing_run_is_refused_and_left_alone(
    repo: ActionRepo, client: ActionsClient, kube: KubeOps, namespace: str
) -> None:
    (root,) = actions_of(namespace, "rc2", task("a0"))
    first = await create_run(repo, client, root)
    with pytest.raises(RunExistsError, match="already exists"):
        await create_run(repo, client, root)
    again = await repo.get_run(RunId(namespace, DOMAIN, "rc2"))
    assert (again.phase, again.abort_requested_at, again.updated_at) == (first.phase, None, first.updated_at)
    assert len(await kube.list_taskactions(namespace)) == 1


async def test_a_failed_enqueue_leaves_the_run_aborted_with_an_abort_request(
    repo: ActionRepo, kube: KubeOps, namespace: str
) -> None:
    (root,) = actions_of(namespace, "rc3", task("a0"))
    # A real failure from the API server: this namespace name is invalid, so ensuring it fails (422).
    broken = ActionsClient(kube, "Not_A_Namespace")
    with pytest.raises(CreateRunError, match="marked ABORTED with an abort request") as info:
        await create_run(repo, broken, root)
    assert info.value.aborted
    row = await repo.get_run(RunId(namespace, DOMAIN, "rc3"))
    assert row.phase is ActionPhase.ABORTED
    assert row.abort_requested_at is not None
    assert (
        row.abort_reason is not None and "CreateRun could not create the root TaskAction" in row.abort_reason
    )
    assert await kube.list_taskactions(namespace) == []


async def test_an_invalid_root_writes_nothing(
    repo: ActionRepo, client: ActionsClient, namespace: str
) -> None:
    (root,) = actions_of(namespace, "rc4", task("a0"))
    root.task.spec.task_template.type = "t" * 64
    with pytest.raises(ValueError, match="taskType is 64 characters"):
        await create_run(repo, client, root)
    with pytest.raises(NotFoundError):
        await repo.get_run(RunId(namespace, DOMAIN, "rc4"))


async def test_ensuring_the_namespace_first_fails_before_anything_is_written(
    repo: ActionRepo, client: ActionsClient, kube: KubeOps, namespace: str
) -> None:
    """What ``enqueue`` does: an existing run is refused first, then the API server is reached, and
    only then is the row written; a refused namespace leaves no row (and no abort request) behind."""
    broken = ActionsClient(kube, "Not_A_Namespace")
    (existing,) = actions_of(namespace, "rc5", task("a0"))
    await create_run(repo, client, existing)
    with pytest.raises(RunExistsError, match="already exists"):
        await create_run(repo, broken, existing, ensure_namespace_first=True)
    (root,) = actions_of(namespace, "rc6", task("a0"))
    with pytest.raises(KubeError):
        await create_run(repo, broken, root, ensure_namespace_first=True)
    with pytest.raises(NotFoundError):
        await repo.get_run(RunId(namespace, DOMAIN, "rc6"))
    assert [o["metadata"]["name"] for o in await kube.list_taskactions(namespace)] == ["rc5-a0"]
