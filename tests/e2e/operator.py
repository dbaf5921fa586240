"""The operator as a real process for e2e tests (with the e2e settings), polling helpers, and direct
database reads for assertions.

Assertions read PostgreSQL with plain psycopg (not through the repository under test), so a bug in
the repository cannot hide itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
import yaml
from psycopg.rows import dict_row

from taskaction_operator.devtools import operator_process as devtools_operator
from tests.conftest import ROOT

T = TypeVar("T")


def eventually(
    fn: Callable[[], T], *, timeout: float = 30, interval: float = 0.1, what: str = "condition"
) -> T:
    """Poll ``fn`` until it returns a truthy value; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


async def until(
    fn: Callable[[], Any], *, timeout: float = 30, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Async ``eventually``: ``fn`` may return a value or an awaitable."""
    import asyncio
    import inspect

    deadline = time.monotonic() + timeout
    while True:
        last = fn()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")
        await asyncio.sleep(interval)


class OperatorProcess(devtools_operator.OperatorProcess):
    """The operator process of :mod:`taskaction_operator.devtools.operator_process` with the e2e
    settings: run from the checkout, its log under ``log_dir``, a 3 s lease and a 2 s sweep.
    ``api_port`` is the API server's port as the process reaches it (its kubeconfig's server)."""

    def __init__(self, *, kubeconfig: str, dsn: str, namespace: str, log_dir: Path, **env: str) -> None:
        super().__init__(
            kubeconfig=kubeconfig,
            dsn=dsn,
            namespace=namespace,
            log_dir=log_dir,
            env={"TASKACTION_LEASE_DURATION": "3", "TASKACTION_SWEEP_INTERVAL": "2", **env},
            cwd=ROOT,
        )
        with open(self.env["KUBECONFIG"], encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
        context = next(c for c in cfg["contexts"] if c["name"] == cfg["current-context"])["context"]
        server = next(c for c in cfg["clusters"] if c["name"] == context["cluster"])["cluster"]["server"]
        self.api_port = urlsplit(server).port or 443


#: On kind (hack/kind/e2e.sh) each test's operator is a Pod of the locally built image, not a process.
ON_KIND = os.environ.get("TASKACTION_KIND") == "1"


def new_operator(*, kubeconfig: str, dsn: str, namespace: str, log_dir: Path, **env: str) -> Any:
    """The operator of one test, not started: a :class:`tests.e2e.pod_operator.PodOperator` on kind,
    an :class:`OperatorProcess` otherwise (the same interface)."""
    if ON_KIND:
        from tests.e2e.pod_operator import PodOperator

        return PodOperator(kubeconfig=kubeconfig, dsn=dsn, namespace=namespace, log_dir=log_dir, **env)
    return OperatorProcess(kubeconfig=kubeconfig, dsn=dsn, namespace=namespace, log_dir=log_dir, **env)


class Db:
    """Read-only views of the record, straight from PostgreSQL."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.dsn, row_factory=dict_row, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]

    def actions(self, project: str, run: str) -> dict[str, dict[str, Any]]:
        rows = self.query("SELECT * FROM actions WHERE project = %s AND run_name = %s", project, run)
        return {r["name"]: r for r in rows}

    def phases(self, project: str, run: str) -> dict[str, int]:
        return {name: r["phase"] for name, r in self.actions(project, run).items()}

    def events(self, project: str, run: str, name: str) -> list[tuple[int, int, int]]:
        rows = self.query(
            "SELECT attempt, phase, version FROM action_events"
            " WHERE project = %s AND run_name = %s AND name = %s ORDER BY attempt, phase, version",
            project,
            run,
            name,
        )
        return [(r["attempt"], r["phase"], r["version"]) for r in rows]
