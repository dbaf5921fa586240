"""Session-wide fixtures: the real PostgreSQL and the real control plane, started once per session.

Both are reused when the caller already provides them (``TASKACTION_DATABASE_URL``, ``KUBECONFIG``),
otherwise started through the project's own scripts (``hack/db/db.sh``, ``hack/cluster/cluster.sh``),
which leave their state under ``.local/`` so that a second session reuses the running servers.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"


def _script(*args: str, timeout: float = 1200) -> str:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


@pytest.fixture(scope="session")
def database_url() -> str:
    """A DSN (``postgresql://…``) of a real PostgreSQL: the caller's, or the project's throwaway one."""
    given = os.environ.get("TASKACTION_DATABASE_URL")
    if given:
        return given
    return _script("bash", "hack/db/db.sh", "up", timeout=300)
