"""The operator under test as a separate process: start, liveness, /proc sampling, metrics, py-spy."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProcSample:
    t: float
    cpu_s: float  # utime + stime of the process (all its threads)
    rss_mb: float
    hwm_mb: float


def proc_sample(pid: int) -> ProcSample | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)
    kb = {}
    for line in status.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            kb[key] = int(value.split()[0])
    return ProcSample(time.time(), cpu, kb.get("VmRSS", 0) / 1024, kb.get("VmHWM", 0) / 1024)


Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Metrics:
    out: Metrics = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric_sum(m: Metrics, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, lb), v in m.items()
        if n == name and all(dict(lb).get(k) == val for k, val in labels.items())
    )


class OperatorProcess:
    def __init__(
        self,
        *,
        namespace: str,
        dsn: str,
        kubeconfig: str,
        log_path: Path,
        guard: bool = True,
        plain: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.log_path = log_path
        self.plain = plain
        self.live_port = free_port()
        self.metrics_port = free_port()
        self.env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "TASKACTION_DATABASE_URL": dsn,
            "TASKACTION_NAMESPACES": namespace,
            "TASKACTION_LEASE_NAMESPACE": namespace,
            "TASKACTION_LIVENESS": f"http://127.0.0.1:{self.live_port}/healthz",
            "TASKACTION_METRICS_PORT": str(self.metrics_port),
            "TASKACTION_RECORD_GUARD": "true" if guard else "false",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.pyspy: subprocess.Popen[bytes] | None = None
        self.pyspy_out: Path | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 90) -> OperatorProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.plain:
            cmd = [sys.executable, "-m", "taskaction_operator", "run"]
        else:
            cmd = [sys.executable, str(HERE / "launch_operator.py")]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.live_port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"operator not live within {timeout} s; see {self.log_path}")
            time.sleep(0.2)

    def metrics(self) -> Metrics:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return parse_metrics(resp.read().decode())

    def sample(self) -> ProcSample | None:
        return proc_sample(self.pid)

    def start_profile(self, out: Path, rate: int = 100) -> bool:
        """Attach py-spy (raw collapsed stacks); False when py-spy is not installed."""
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(exe).exists():
            return False
        out.parent.mkdir(parents=True, exist_ok=True)
        self.pyspy_out = out
        self.pyspy = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(rate),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(out.with_suffix(".log"), "wb"),  # noqa: SIM115
            stdin=subprocess.DEVNULL,
        )
        return True

    def stop_profile(self, timeout: float = 30) -> Path | None:
        if self.pyspy is None:
            return None
        if self.pyspy.poll() is None:
            self.pyspy.send_signal(signal.SIGINT)
            try:
                self.pyspy.wait(timeout)
            except subprocess.TimeoutExpired:
                self.pyspy.kill()
                self.pyspy.wait(10)
        self.pyspy = None
        return self.pyspy_out if self.pyspy_out and self.pyspy_out.exists() else None

    def stop(self, timeout: float = 40) -> int:
        self.stop_profile()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)
