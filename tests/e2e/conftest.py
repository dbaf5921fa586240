"""E2E fixtures: kubectl against the real cluster, a fresh namespace per test, and on failure a dump
of the operator log, the namespace's TaskActions and its Events."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskaction_operator.repo import ActionRepo
from tests.conftest import LOCAL, ROOT
from tests.e2e.operator import new_operator


class Kubectl:
    """The pinned kubectl (``.local/bin/kubectl``, or ``kubectl`` on PATH for a kind run)."""

    def __init__(self, kubeconfig: str) -> None:
        local = ROOT / ".local" / "bin" / "kubectl"
        self.binary = str(local) if local.exists() else "kubectl"
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> str:
        proc = subprocess.run(
            [self.binary, "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubectlError(args, proc.returncode, proc.stderr.strip())
        return proc.stdout

    def try_run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json"))


class KubectlError(RuntimeError):
    def __init__(self, args: tuple[str, ...], code: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} exited {code}: {stderr}")
        self.stderr = stderr


@pytest.fixture(scope="session")
def local_components(kubeconfig: str, database_url: str) -> None:
    """Fault tests stop and restart the control plane and PostgreSQL through hack/ scripts; on a
    cluster or database those scripts did not start (kind, a given DSN) they cannot, so they skip."""
    from tests.conftest import current_context

    local_db = (LOCAL / "db" / "dsn").exists() and (LOCAL / "db" / "dsn").read_text().strip() == database_url
    if not current_context(kubeconfig).startswith("taskaction-local") or not local_db:
        pytest.skip("needs the control plane and PostgreSQL started by hack/cluster and hack/db (not kind)")


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace for one test; on failure its TaskActions and Events are dumped."""
    name = f"ta-e2e-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    yield name
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        dump_namespace(request, kubectl, name)
    # Strip finalizers a failed test may have left, then delete without waiting.
    for item in json.loads(
        kubectl.run("get", "taskactions", "-n", name, "-o", "json", check=False) or "{}"
    ).get("items", []):
        if item["metadata"].get("finalizers"):
            kubectl.run(
                "patch",
                "taskaction",
                item["metadata"]["name"],
                "-n",
                name,
                "--type",
                "merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
                check=False,
            )
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def dump_namespace(request: pytest.FixtureRequest, kubectl: Kubectl, name: str) -> None:
    sections = [f"===== diagnostics for {request.node.nodeid} (namespace {name})"]
    for log in getattr(request.node, "operator_logs", []):
        text = Path(log).read_text(errors="replace") if Path(log).exists() else "(missing)"
        sections.append(f"----- operator log {log} (last 200 lines)\n" + "\n".join(text.splitlines()[-200:]))
    sections.append(
        "----- TaskActions\n" + kubectl.run("get", "taskactions", "-n", name, "-o", "yaml", check=False)
    )
    sections.append(
        "----- Events\n" + kubectl.run("get", "events", "-n", name, "--sort-by=.lastTimestamp", check=False)
    )
    text = "\n".join(sections)
    out = ROOT / ".local" / "e2e-diagnostics" / f"{name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    request.node.add_report_section("teardown", "diagnostics", text[-20000:])
    if os.environ.get("CI"):
        print(text[-20000:])


@pytest.fixture
async def repo(database_url: str) -> AsyncIterator[ActionRepo]:
    r = await ActionRepo.connect(database_url)
    yield r
    await r.close()


@pytest.fixture
def start_operator(
    request: pytest.FixtureRequest, kubeconfig: str, database_url: str, namespace: str
) -> Iterator[Any]:
    """``start_operator(**env)`` starts one more operator for the test's namespace and returns it: a
    process, or on kind a Pod (tests.e2e.operator.new_operator); all are stopped at the end."""
    started: list[Any] = []

    def start(**env: str) -> Any:
        op = new_operator(
            kubeconfig=kubeconfig, dsn=database_url, namespace=namespace, log_dir=LOCAL / "e2e-logs", **env
        )
        request.node.operator_logs = [*getattr(request.node, "operator_logs", []), str(op.log_path)]
        started.append(op.start())
        return op

    yield start
    for op in started:
        op.stop()


@pytest.fixture
def api_server(database_url: str) -> Iterator[str]:
    """``taskaction-operator serve`` as a process (its URL); its output in .local/e2e-logs."""
    from tests.serve_process import ServeProcess

    server = ServeProcess(database_url, LOCAL / "e2e-logs" / f"serve-{uuid.uuid4().hex[:8]}.log").start()
    try:
        yield server.url
    finally:
        server.stop()
