"""``taskaction-operator run`` with the database down, as a process: every start-up retry is one log
line (what failed, when it retries), never a traceback; ``-vv`` adds the traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT

CLI = ROOT / ".venv" / "bin" / "taskaction-operator"


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_for(seconds: float, tmp_path: Path, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKACTION_")}
    env.update(
        TASKACTION_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{_closed_port()}/none",
        TASKACTION_CONFIG=str(tmp_path / "none.yaml"),
        TASKACTION_METRICS_PORT="0",
        TASKACTION_LIVENESS="",
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
    )
    proc = subprocess.Popen(
        [str(CLI), "run", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        time.sleep(seconds)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return err


def test_database_down_logs_one_line_per_start_up_retry(tmp_path: Path) -> None:
    err = _run_for(6, tmp_path)
    retries = [line for line in err.splitlines() if "startup" in line and "retry" in line]
    assert len(retries) >= 2, err  # retried with a short backoff, not once a minute
    assert "Traceback" not in err, err
    for line in retries:
        assert "database" in line and "Connection refused" in line, line
    assert all(line.startswith("[") for line in err.splitlines() if line.strip()), err  # no continuations


def test_database_down_with_vv_shows_the_traceback(tmp_path: Path) -> None:
    err = _run_for(3, tmp_path, "-vv")
    assert "Traceback" in err, err
