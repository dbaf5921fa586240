"""``taskaction-operator run`` with the database down, as a process: every start-up retry is one log
line (what failed, when it retries), never a traceback; ``-vv`` adds the traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import ROOT

CLI = ROOT / ".venv" / "bin" / "taskaction-operator"


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _retries(err: str) -> list[str]:
    return [line for line in err.splitlines() if "startup" in line and "retry" in line]


def _run_until(done: Callable[[str], bool], tmp_path: Path, *extra: str, deadline: float = 30) -> str:
    """Run the operator until its stderr satisfies ``done`` (or ``deadline`` seconds pass); stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKACTION_")}
    env.update(
        TASKACTION_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{_closed_port()}/none",
        TASKACTION_CONFIG=str(tmp_path / "none.yaml"),
        TASKACTION_METRICS_PORT="0",
        TASKACTION_LIVENESS="",
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
    )
    err_path = tmp_path / "stderr"
    with err_path.open("w") as err_file:
        proc = subprocess.Popen(
            [str(CLI), "run", *extra], stdout=subprocess.DEVNULL, stderr=err_file, env=env
        )
        try:
            end = time.monotonic() + deadline
            while time.monotonic() < end and proc.poll() is None and not done(err_path.read_text()):
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return err_path.read_text()


def test_database_down_logs_one_line_per_start_up_retry(tmp_path: Path) -> None:
    err = _run_until(lambda text: len(_retries(text)) >= 3, tmp_path)
    retries = _retries(err)
    assert len(retries) >= 3, err  # retried with a short backoff (1 s, 2 s, …), not once a minute
    assert "Traceback" not in err, err
    for line in retries:
        assert "database" in line and "Connection refused" in line, line
    assert all(line.startswith("[") for line in err.splitlines() if line.strip()), err  # no continuations


def test_database_down_with_vv_shows_the_traceback(tmp_path: Path) -> None:
    err = _run_until(lambda text: len(_retries(text)) >= 1 and "Traceback" in text, tmp_path, "-vv")
    assert _retries(err) and "Traceback" in err, err
