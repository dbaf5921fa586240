"""The operator under test as a separate process (:mod:`taskaction_operator.devtools.operator_process`)
with the benchmark's extras: its launcher's statement counters, /proc sampling, parsed metrics, py-spy."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from taskaction_operator.devtools import operator_process

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def metric_delta(m0: Metrics, m1: Metrics, name: str, **labels: str) -> float:
    """How much ``name`` (summed over the samples matching ``labels``) grew from ``m0`` to ``m1``."""
    return metric_sum(m1, name, **labels) - metric_sum(m0, name, **labels)


class BenchOperator(operator_process.OperatorProcess):
    """The operator started by ``launch_operator.py`` (its in-process counters as ``bench_*`` metrics),
    or with ``plain`` as ``python -m taskaction_operator run``; ``guard`` sets TASKACTION_RECORD_GUARD."""

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
        if plain:
            cmd = [sys.executable, "-m", "taskaction_operator", "run"]
        else:
            cmd = [sys.executable, str(HERE / "launch_operator.py")]
        super().__init__(
            kubeconfig=kubeconfig,
            dsn=dsn,
            namespace=namespace,
            log_path=log_path,
            env={"TASKACTION_RECORD_GUARD": "true" if guard else "false", **(env or {})},
            command=cmd,
            cwd=ROOT,
        )
        self.namespace = namespace
        self.pyspy: subprocess.Popen[bytes] | None = None
        self.pyspy_out: Path | None = None

    def start(self, timeout: float = 90, poll: float = 0.2) -> BenchOperator:
        super().start(timeout, poll)
        return self

    def scrape(self) -> Metrics:
        """The metrics endpoint, parsed."""
        return parse_metrics(self.metrics(timeout=10))

    def sample(self) -> ProcSample | None:
        return proc_sample(self.pid)

    def start_profile(self, out: Path, rate: int = 100) -> bool:
        """Attach py-spy (raw collapsed stacks); False when py-spy is not installed. Only the thread
        holding the GIL is sampled (``--gil``): the profile is where the process runs Python, not
        where its threads wait (a thread blocked in a socket read counts as busy to py-spy)."""
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
                "--gil",
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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        self.stop_profile()
        return super().stop(sig, timeout)
