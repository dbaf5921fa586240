"""Session-wide fixtures: the real PostgreSQL and the real control plane, started once per session.

Both are reused when the caller already provides them (``TASKACTION_DATABASE_URL``, ``KUBECONFIG``);
otherwise they are started through the project's own scripts (``hack/db/db.sh``,
``hack/cluster/cluster.sh``), which keep their state under ``.local/`` so a later session reuses the
running servers. E2E tests refuse a kube context that does not look like a test cluster unless
``TASKACTION_E2E_ALLOW_ANY_CONTEXT=1``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
#: tests/kind checks the operator deployed as Pods; only hack/kind/e2e.sh (make kind-e2e) deploys it.
collect_ignore = [] if os.environ.get("TASKACTION_KIND") == "1" else ["kind"]
#: Contexts that look like throwaway test clusters: ours, and kind's.
TEST_CONTEXT_PREFIXES = ("taskaction-local", "kind-")


def _script(*args: str, timeout: float = 1500) -> str:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    out = proc.stdout.strip()
    return out.splitlines()[-1] if out else ""


@pytest.fixture(scope="session")
def database_url() -> str:
    """A DSN (``postgresql://…``) of a real PostgreSQL: the caller's, or the project's throwaway one."""
    given = os.environ.get("TASKACTION_DATABASE_URL")
    if given:
        return given
    return _script("bash", "hack/db/db.sh", "up", timeout=300)


@pytest.fixture(scope="session")
def flyte_venv() -> Path:
    """Flyte's SDK and CLI from PyPI, in ``.local/flyte-venv`` exactly as hack/flyte-client.lock pins
    them (created on first use, from PyPI; reused while the lock is unchanged)."""
    return Path(_script("bash", "hack/flyte-client.sh", "venv", timeout=900))


@pytest.fixture
def kube(kubeconfig: str) -> Iterator[Any]:
    """KubeOps on the session's cluster (the e2e suites and tests/kind)."""
    from taskaction_operator.k8s import KubeOps

    ops = KubeOps.from_kubeconfig(kubeconfig)
    yield ops
    ops.close()


@pytest.fixture
def db(database_url: str) -> Any:
    """Direct reads of the record (``tests.e2e.operator.Db``)."""
    from tests.e2e.operator import Db

    return Db(database_url)


def current_context(kubeconfig: str) -> str:
    with open(kubeconfig, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    return str(cfg.get("current-context") or "")


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """Path of an admin kubeconfig for a real cluster: the caller's ``KUBECONFIG`` or the local one."""
    path = os.environ.get("KUBECONFIG") or _script("bash", "hack/cluster/cluster.sh", "up")
    ctx = current_context(path)
    allow_any = os.environ.get("TASKACTION_E2E_ALLOW_ANY_CONTEXT") == "1"
    if not ctx.startswith(TEST_CONTEXT_PREFIXES) and not allow_any:
        pytest.exit(
            f"refusing to run e2e tests against kube context {ctx!r} ({path}): it does not look like a test "
            "cluster (taskaction-local or kind-*); set TASKACTION_E2E_ALLOW_ANY_CONTEXT=1 to override",
            returncode=2,
        )
    return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item, so fixtures can tell at teardown whether the test failed."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
