"""Fixtures of the client suite: an ActionsClient on the test's namespace, flyteidl2 actions to enqueue,
and the command line as a subprocess with its environment pointing at the real cluster and database.

The test's namespace doubles as its project, so rows of different tests never meet.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flyteidl2.actions import actions_service_pb2
from flyteidl2.core import types_pb2

from taskaction_operator.client.actions_client import ActionsClient
from taskaction_operator.client.run_file import parse_run_file
from taskaction_operator.k8s import KubeOps
from taskaction_operator.repo import upgrade
from tests.cli_result import CliProcess, Result

DOMAIN = "development"


@pytest.fixture(scope="session")
def migrated(database_url: str) -> str:
    upgrade(database_url)
    return database_url


@pytest.fixture
async def client(kube: KubeOps, namespace: str) -> AsyncIterator[ActionsClient]:
    # No operator runs beside these tests to release a record guard: their TaskActions are created
    # without it, as for an operator with the guard off (test_operator_admission has the guarded case).
    c = ActionsClient(kube, namespace, watch_timeout=30, record_guard=False)
    yield c
    await c.stop_watching()


def actions_of(project: str, run: str, *decls: dict[str, Any]) -> list[actions_service_pb2.Action]:
    """flyteidl2 actions from run-file declarations (parents first), through the real parser."""
    data = {"project": project, "domain": DOMAIN, "run": run, "actions": list(decls)}
    return list(parse_run_file(data, source="test").actions)


def task(name: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "taskType": "python", **({"parent": parent} if parent else {}), **extra}


def condition(name: str, parent: str) -> dict[str, Any]:
    return {"name": name, "parent": parent, "condition": {"type": "boolean", "prompt": "ok?"}}


BOOLEAN = types_pb2.SimpleType.BOOLEAN


class Cli(CliProcess):
    """``.venv/bin/taskaction-operator`` with KUBECONFIG, TASKACTION_DATABASE_URL and the test's scope."""

    def __init__(self, kubeconfig: str, dsn: str, namespace: str, tmp: Path) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TASKACTION_")},
            "KUBECONFIG": kubeconfig,
            "TASKACTION_DATABASE_URL": dsn,
            "TASKACTION_PROJECT": namespace,
            "TASKACTION_DOMAIN": DOMAIN,
            "TASKACTION_NAMESPACE": namespace,
            "TASKACTION_CONFIG": str(tmp / "no-config.yaml"),
        }
        self.tmp = tmp

    def __call__(self, *args: str, input: str | None = None, timeout: float = 120) -> Result:
        return self.run(*args, input=input, timeout=timeout)

    def write(self, name: str, data: Any) -> str:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
        return str(path)


@pytest.fixture
def cli(kubeconfig: str, migrated: str, namespace: str, tmp_path: Path) -> Cli:
    return Cli(kubeconfig, migrated, namespace, tmp_path)


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.code == code, (result.code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("taskaction-operator: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
