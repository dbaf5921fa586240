"""``serve --auth kubernetes`` against the real control plane: ServiceAccount tokens reviewed by the
API server, each call allowed or refused by its RBAC on the namespace's TaskActions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from connectrpc.code import Code
from flyteidl2.common import identifier_pb2
from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.run_service_connect import RunServiceClient

from taskaction_operator.k8s import KubeOps
from taskaction_operator.k8s.reviews import Reviews
from taskaction_operator.model import ActionPhase, RunId
from taskaction_operator.repo import ActionRepo
from taskaction_operator.server.app import build_app
from taskaction_operator.server.auth import KubernetesAuth
from tests.connect_errors import refused
from tests.e2e.conftest import Kubectl
from tests.integration.repo.helpers import next_item
from tests.integration.server.conftest import serving
from tests.integration.server.records import seed_run

pytestmark = pytest.mark.cluster

DOMAIN = "development"
#: ServiceAccount → the verbs its Role grants on taskactions.flyte.org (none: no Role at all).
ACCOUNTS = {"reader": "get,list", "aborter": "get,list,delete", "nobody": ""}


@pytest.fixture
def tokens(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    """A token of each account of :data:`ACCOUNTS`, its Role bound in the test's namespace."""
    out = {}
    for account, verbs in ACCOUNTS.items():
        kubectl.run("create", "serviceaccount", account, "-n", namespace)
        if verbs:
            kubectl.run(
                "create",
                "role",
                account,
                f"--verb={verbs}",
                "--resource=taskactions.flyte.org",
                "-n",
                namespace,
            )
            binding = f"--serviceaccount={namespace}:{account}"
            kubectl.run("create", "rolebinding", account, f"--role={account}", binding, "-n", namespace)
        out[account] = kubectl.run("create", "token", account, "-n", namespace).strip()
    return out


@pytest.fixture
async def client(kubeconfig: str, repo: ActionRepo, namespace: str) -> AsyncIterator[RunServiceClient]:
    kube = KubeOps.from_kubeconfig(kubeconfig)
    try:
        app = build_app(repo, auth=KubernetesAuth(Reviews(kube), namespace))
        async with serving(app) as url, RunServiceClient(url) as c:
            yield c
    finally:
        kube.close()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_calls_without_a_valid_token_are_unauthenticated(
    client: RunServiceClient, namespace: str
) -> None:
    request = rs.ListRunsRequest(project_id=identifier_pb2.ProjectIdentifier(name=namespace, domain=DOMAIN))
    assert "bearer token is required" in await refused(client.list_runs(request), Code.UNAUTHENTICATED)
    assert "not accepted" in await refused(
        client.list_runs(request, headers=bearer("not-a-token")), Code.UNAUTHENTICATED
    )


async def test_each_call_needs_its_verb_on_the_namespaces_taskactions(
    client: RunServiceClient, repo: ActionRepo, namespace: str, tokens: dict[str, str]
) -> None:
    run_id = RunId(namespace, DOMAIN, "r0")
    await seed_run(repo, run_id)
    runs = rs.ListRunsRequest(project_id=identifier_pb2.ProjectIdentifier(name=namespace, domain=DOMAIN))
    denied = await refused(client.list_runs(runs, headers=bearer(tokens["nobody"])), Code.PERMISSION_DENIED)
    assert f"system:serviceaccount:{namespace}:nobody may not list taskactions.flyte.org" in denied
    nobody_watch = client.watch_actions(
        rs.WatchActionsRequest(run_id=run_id.to_proto()), headers=bearer(tokens["nobody"])
    )
    await refused(next_item(nobody_watch), Code.PERMISSION_DENIED)
    # get and list: reads and watches, not aborts.
    reader = bearer(tokens["reader"])
    assert [r.action.id.run.name for r in (await client.list_runs(runs, headers=reader)).runs] == ["r0"]
    details = await client.get_run_details(rs.GetRunDetailsRequest(run_id=run_id.to_proto()), headers=reader)
    assert details.details.action.id.name == "a0"
    watch = client.watch_actions(rs.WatchActionsRequest(run_id=run_id.to_proto()), headers=reader)
    assert len((await next_item(watch)).enriched_actions) == 4
    abort = rs.AbortRunRequest(run_id=run_id.to_proto(), reason="no")
    assert "may not delete" in await refused(client.abort_run(abort, headers=reader), Code.PERMISSION_DENIED)
    assert (await repo.get_run(run_id)).phase is ActionPhase.RUNNING
    # delete: aborts.
    await client.abort_run(
        rs.AbortRunRequest(run_id=run_id.to_proto(), reason="yes"), headers=bearer(tokens["aborter"])
    )
    assert (await repo.get_run(run_id)).phase is ActionPhase.ABORTED
