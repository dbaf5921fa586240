"""The API server's own request counters (``apiserver_request_total``, by verb, resource and response
code), read through kubectl, and the control plane's CPU (``/proc`` of the processes ``hack/cluster``
started, by their pid files)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

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
    return pids
