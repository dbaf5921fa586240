"""``taskaction-operator serve`` as a process on a free port, for the suites that test it whole."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from taskaction_operator.devtools.operator_process import free_port
from tests.conftest import ROOT

__all__ = ["ServeProcess"]


class ServeProcess:
    """``serve --listen 127.0.0.1:PORT --database-url DSN [ARGS]``, its output in ``log_path``."""

    def __init__(self, dsn: str, log_path: Path, *args: str) -> None:
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._dsn = dsn
        self._proc: subprocess.Popen[bytes] | None = None
        self._signalled = False

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def start(self, timeout: float = 30) -> ServeProcess:
        """Started, and answering ``/healthz`` (else the test fails, naming the log)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            argv = [
                sys.executable,
                "-m",
                "taskaction_operator",
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
            ]
            argv += ["--database-url", self._dsn, *self.args]
            self._proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"serve did not answer /healthz within {timeout:g} s; see {self.log_path}"
                )
            time.sleep(0.1)
        return self

    def signal(self, sig: int) -> None:
        """Send ``sig``; a later :meth:`stop` then only waits (a second SIGTERM during the exit would
        meet Python's default handler and kill the process)."""
        assert self._proc is not None
        self._proc.send_signal(sig)
        self._signalled = True

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then its exit code and everything it printed."""
        assert self._proc is not None
        if self._proc.poll() is None and not self._signalled:
            self._proc.send_signal(signal.SIGTERM)
        code = self._proc.wait(timeout=30)
        return code, self.log_path.read_text(encoding="utf-8", errors="replace")
