"""``taskaction-operator --server URL`` against a real ``serve --auth kubernetes`` on the real control
plane: the CLI sends the bearer token of the kubeconfig it is given (a ``token``, or an exec plugin's),
the API server reviews it, and each call is allowed or refused by the ServiceAccount's RBAC."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from connectrpc.code import Code
from flyteidl2.workflow import events_proxy_service_pb2, run_definition_pb2
from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.events_proxy_service_connect import EventsProxyServiceClient
from flyteidl2.workflow.run_service_connect import RunServiceClient

from taskaction_operator.devtools.operator_process import free_port
from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import ActionRepo
from tests.connect_errors import refused
from tests.e2e.client.conftest import DOMAIN, Cli, assert_one_line_error
from tests.e2e.conftest import Kubectl
from tests.integration.server.records import seed_run
from tests.serve_process import ServeProcess

pytestmark = pytest.mark.cluster

#: ServiceAccount → the verbs its Role grants on taskactions.flyte.org (none: no Role at all).
ACCOUNTS = {"reader": "get,list", "aborter": "get,list,delete", "nobody": ""}


def kubeconfig_for(kubectl: Kubectl, path: Path, user: dict[str, Any]) -> str:
    """A kubeconfig for the test cluster whose only user is ``user``."""
    admin = json.loads(kubectl.run("config", "view", "--raw", "--minify", "-o", "json"))
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": admin["clusters"][0]["name"], "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture
def kubeconfigs(kubectl: Kubectl, namespace: str, tmp_path: Path) -> dict[str, str]:
    """A kubeconfig per account of :data:`ACCOUNTS` (the aborter's token from an exec plugin), and
    one whose user has no credentials at all (``anonymous``)."""
    out = {}
    for account, verbs in ACCOUNTS.items():
        kubectl.run("create", "serviceaccount", account, "-n", namespace)
        if verbs:
            resource = "--resource=taskactions.flyte.org"
            kubectl.run("create", "role", account, f"--verb={verbs}", resource, "-n", namespace)
            binding = f"--serviceaccount={namespace}:{account}"
            kubectl.run("create", "rolebinding", account, f"--role={account}", binding, "-n", namespace)
        token = kubectl.run("create", "token", account, "-n", namespace).strip()
        user: dict[str, Any] = {"token": token}
        if account == "aborter":
            credential = tmp_path / "credential.json"
            credential.write_text(
                json.dumps(
                    {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "kind": "ExecCredential",
                        "status": {"token": token},
                    }
                )
            )
            user = {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": "cat",
                    "args": [str(credential)],
                    "interactiveMode": "Never",
                }
            }
        out[account] = kubeconfig_for(kubectl, tmp_path / f"{account}.kubeconfig", user)
    out["anonymous"] = kubeconfig_for(kubectl, tmp_path / "anonymous.kubeconfig", {})
    return out


EVENTS_PORT = free_port()


@pytest.fixture
def server(database_url: str, kubeconfig: str, namespace: str, tmp_path: Path) -> Iterator[str]:
    """``serve --auth kubernetes`` with the events endpoint also on :data:`EVENTS_PORT`, unreviewed."""
    args = ("--auth", "kubernetes", "-n", namespace, "--kubeconfig", kubeconfig)
    process = ServeProcess(
        database_url, tmp_path / "serve.log", *args, "--events-listen", f"127.0.0.1:{EVENTS_PORT}"
    ).start()
    try:
        yield process.url
    finally:
        process.stop()


async def test_the_events_listener_takes_the_executors_tokenless_events_and_nothing_else(
    server: str, repo: ActionRepo, namespace: str
) -> None:
    run_id = RunId(namespace, DOMAIN, "r0")
    ids = await seed_run(repo, run_id)
    event = run_definition_pb2.ActionEvent(id=ids["a1"].to_proto(), attempt=1, phase=int(ActionPhase.RUNNING))
    record = events_proxy_service_pb2.RecordRequest(events=[event])
    async with EventsProxyServiceClient(server) as reviewed:
        await refused(reviewed.record(record), Code.UNAUTHENTICATED)
    events_url = f"http://127.0.0.1:{EVENTS_PORT}"
    async with EventsProxyServiceClient(events_url) as executor:
        await executor.record(record)
    assert [(e.attempt, e.phase) for e in await repo.list_events(ids["a1"])] == [(1, ActionPhase.RUNNING)]
    async with RunServiceClient(events_url) as runs:
        message = await refused(
            runs.get_run_details(rs.GetRunDetailsRequest(run_id=run_id.to_proto())), Code.UNIMPLEMENTED
        )
    assert "RunService is not served here" in message


async def test_reads_need_list_and_get_aborts_need_delete(
    cli: Cli, server: str, kubeconfigs: dict[str, str], repo: ActionRepo, namespace: str
) -> None:
    run_id = RunId(namespace, DOMAIN, "r0")
    await seed_run(repo, run_id)
    cli.env["TASKACTION_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"  # never read with --server

    def as_(account: str, *args: str) -> Any:
        return cli(*args, "--server", server, "--kubeconfig", kubeconfigs[account])

    listed = as_("reader", "runs", "list", "-o", "json")
    assert listed.code == 0, listed.stderr
    assert [r["run"] for r in listed.json()["items"]] == ["r0"]
    for args in (["runs", "get", "r0"], ["runs", "tree", "r0"], ["actions", "get", "r0", "a2"],
                 ["events", "r0", "a2"]):  # fmt: skip
        result = as_("reader", *args)
        assert result.code == 0 and result.stdout, (args, result.stderr)

    assert_one_line_error(
        as_("reader", "abort", "r0"),
        1,
        f"{server}: permission denied: system:serviceaccount:{namespace}:reader may not delete "
        f"taskactions.flyte.org in namespace {namespace}",
    )
    root = await repo.get_run(run_id)
    assert root.phase is ActionPhase.RUNNING and root.abort_requested_at is None  # nothing aborted
    assert_one_line_error(
        as_("nobody", "runs", "list"), 1, "permission denied", f"{namespace}:nobody may not list"
    )
    assert_one_line_error(
        as_("anonymous", "runs", "get", "r0"),
        1,
        f"{server}: not authenticated: a Kubernetes bearer token is required",
        "the kubeconfig's user has no bearer token",
    )

    # The exec plugin's token: the aborter may abort, and the run then waits out as ABORTED.
    aborted = as_("aborter", "abort", "r0", "a2", "--force", "--reason", "by the aborter")
    assert aborted.code == 0, aborted.stderr
    assert (await repo.get_action(ActionId(run_id, "a2"))).phase is ActionPhase.ABORTED
    assert as_("aborter", "abort", "r0").code == 0
    assert (await repo.get_run(run_id)).phase is ActionPhase.ABORTED
    waited = as_("reader", "runs", "wait", "r0", "--timeout", "30")
    assert waited.code == 4, waited.stderr
