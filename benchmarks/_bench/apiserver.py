"""The API server's own request counters (``apiserver_request_total``, by verb, resource and response
code), read through kubectl, and the control plane's CPU (``/proc`` of the processes ``hack/cluster``
started, by their pid files, and of the PostgreSQL server ``hack/db`` started: its postmaster, its live
backends and the backends it has reaped)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from _bench.operator_proc import CLK_TCK, ProcSample, proc_sample

ROOT = Path(__file__).resolve().parent.parent.parent
_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

Key = tuple[str, str, str, str, str]  # verb, group, resource, subresource, code


def kubectl() -> str:
    local = ROOT / ".local" / "bin" / "kubectl"
    return str(local) if local.exists() else (shutil.which("kubectl") or "kubectl")


def request_counts(kubeconfig: str) -> Counter[Key]:
    out = subprocess.run(
        [kubectl(), "--kubeconfig", kubeconfig, "get", "--raw", "/metrics"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    counts: Counter[Key] = Counter()
    for line in out.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        lb = dict(_LABEL.findall(m.group("labels")))
        key = (
            lb.get("verb", ""),
            lb.get("group", ""),
            lb.get("resource", ""),
            lb.get("subresource", ""),
            lb.get("code", ""),
        )
        counts[key] += int(float(m.group("value")))
    return counts


def delta(before: Counter[Key], after: Counter[Key]) -> dict[Key, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}


def control_plane_pids() -> dict[str, int]:
    """Pids of the local control plane's processes (``.local/cluster/<name>.pid``) that are alive."""
    pids: dict[str, int] = {}
    for name in ("kube-apiserver", "etcd"):
        path = ROOT / ".local" / "cluster" / f"{name}.pid"
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{pid}").exists():
            pids[name] = pid
    try:
        datadir = Path((ROOT / ".local" / "db" / "datadir").read_text().strip())
        pid = int((datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return pids
    if Path(f"/proc/{pid}").exists():
        pids["postgres"] = pid
    return pids


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def server_tree_sample(pid: int) -> ProcSample | None:
    """CPU of a forking server: its own, its reaped children's (cutime, cstime) and its live
    children's, so that the difference of two samples covers backends that came and went between."""
    own = proc_sample(pid)
    fields = _stat_fields(pid)
    if own is None or fields is None:
        return None
    ticks = int(fields[13]) + int(fields[14])  # cutime, cstime (fields 16, 17)
    for child in Path("/proc").iterdir():
        if not child.name.isdigit() or child.name == str(pid):
            continue
        f = _stat_fields(int(child.name))
        if f is not None and f[1] == str(pid):  # ppid (field 4)
            ticks += int(f[11]) + int(f[12])
    return ProcSample(own.t, own.cpu_s + ticks / CLK_TCK, own.rss_mb, own.hwm_mb)


def control_plane_samples(pids: dict[str, int]) -> dict[str, ProcSample | None]:
    """One CPU sample of each process of :func:`control_plane_pids` (PostgreSQL with its backends)."""
    return {
        name: server_tree_sample(pid) if name == "postgres" else proc_sample(pid)
        for name, pid in pids.items()
    }
