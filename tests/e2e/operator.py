"""The operator as a real process for e2e tests, and direct database reads for assertions.

Assertions read PostgreSQL with plain psycopg (not through the repository under test), so a bug in
the repository cannot hide itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from tests.conftest import ROOT

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class OperatorProcess:
    """``taskaction-operator run`` in a subprocess, with its log in a file."""

    def __init__(self, *, kubeconfig: str, dsn: str, namespace: str, log_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"operator-{namespace}-{self.port}.log"
        self.env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "TASKACTION_DATABASE_URL": dsn,
            "TASKACTION_NAMESPACES": namespace,
            "TASKACTION_LIVENESS": f"http://127.0.0.1:{self.port}/healthz",
            "TASKACTION_METRICS_PORT": str(free_port()),
            "TASKACTION_LEASE_NAMESPACE": namespace,
            "TASKACTION_LEASE_DURATION": "3",
            "TASKACTION_SWEEP_INTERVAL": "2",
            **env,
        }
        self.metrics_port = int(self.env["TASKACTION_METRICS_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> OperatorProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from taskaction_operator.config import Settings;"
                "from taskaction_operator.controller.main import run_operator;"
                "run_operator(Settings.from_env())",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"operator not live within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


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
