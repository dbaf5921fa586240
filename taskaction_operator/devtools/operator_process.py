"""The operator as a real subprocess, for the e2e tests and the benchmark: start it with a given
environment, wait until its liveness endpoint answers, stop it with SIGTERM (then SIGKILL), its output
in a log file. Not used by the operator itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

#: ``run_operator(Settings.from_env())`` in a fresh interpreter: what ``taskaction-operator run`` does
#: with its settings taken from the environment alone.
RUN_OPERATOR: tuple[str, ...] = (
    sys.executable,
    "-c",
    "from taskaction_operator.config import Settings;"
    "from taskaction_operator.controller.main import run_operator;"
    "run_operator(Settings.from_env())",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorNotReady(RuntimeError):
    """The operator exited, or its liveness endpoint did not answer in time."""


class OperatorProcess:
    """One operator process watching ``namespace`` (its sweep lease there too), recording to ``dsn``.

    Its liveness endpoint is on ``port`` and its metrics on ``metrics_port`` (both free ports of
    127.0.0.1); ``env`` is added last, over ``os.environ`` and the settings above. The log goes to
    ``log_path``, or to ``operator-<namespace>-<port>.log`` under ``log_dir``.
    """

    def __init__(
        self,
        *,
        kubeconfig: str,
        dsn: str,
        namespace: str,
        log_path: Path | None = None,
        log_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] = RUN_OPERATOR,
        cwd: Path | None = None,
    ) -> None:
        self.port = free_port()
        if log_path is None:
            if log_dir is None:
                raise ValueError("OperatorProcess needs log_path or log_dir")
            log_path = log_dir / f"operator-{namespace}-{self.port}.log"
        self.log_path = log_path
        self.command = list(command)
        self.cwd = cwd
        self.env: dict[str, str] = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "TASKACTION_DATABASE_URL": dsn,
            "TASKACTION_NAMESPACES": namespace,
            "TASKACTION_LEASE_NAMESPACE": namespace,
            "TASKACTION_LIVENESS": f"http://127.0.0.1:{self.port}/healthz",
            "TASKACTION_METRICS_PORT": str(free_port()),
            **(env or {}),
        }
        self.metrics_port = int(self.env["TASKACTION_METRICS_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the operator process is not started")
        return self.proc.pid

    def start(self, timeout: float = 60, poll: float = 0.1) -> OperatorProcess:
        """Start the process and return once ``/healthz`` answers 200; on failure stop it and raise."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise OperatorNotReady(f"operator exited with {self.proc.returncode}{self._see_log()}")
            if self.live():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise OperatorNotReady(f"operator not live within {timeout} s{self._see_log()}")
            time.sleep(poll)

    def live(self) -> bool:
        """Whether the liveness endpoint answers 200 now."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig``, wait up to ``timeout`` s, then SIGKILL; the exit code (0 if never started)."""
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

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process (SIGSTOP, SIGCONT, SIGKILL ...) without waiting for it."""
        if self.proc is None:
            raise RuntimeError("the operator process is not started")
        self.proc.send_signal(sig)

    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for the process to exit; its exit code."""
        if self.proc is None:
            raise RuntimeError("the operator process is not started")
        return self.proc.wait(timeout)

    def metrics(self, timeout: float = 5) -> str:
        """The Prometheus text of the metrics endpoint."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return str(resp.read().decode())

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _see_log(self) -> str:
        return f"; log {self.log_path}:\n{self.log_tail()}"
