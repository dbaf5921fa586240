"""The API server's own request counters (``apiserver_request_total``), read through kubectl."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

Key = tuple[str, str, str, str]  # verb, group, resource, subresource


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
        key = (lb.get("verb", ""), lb.get("group", ""), lb.get("resource", ""), lb.get("subresource", ""))
        counts[key] += int(float(m.group("value")))
    return counts


def delta(before: Counter[Key], after: Counter[Key]) -> dict[Key, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}
