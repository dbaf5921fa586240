"""``TASKACTION_DELETE_RECORDED_AFTER``: the operator deletes the TaskActions of a run recorded
through and through once the grace period has passed (the child with its parent, through the
ownerReference), keeps every TaskAction of a run with an action still running, and the database
keeps the record of both."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskaction_operator.devtools.executor import SUCCESS_PATH, StandInExecutor
from taskaction_operator.k8s import KubeOps
from tests.e2e.operator import Db, until
from tests.e2e.taskactions import taskaction

pytestmark = pytest.mark.cluster
SUCCEEDED, RUNNING = 5, 4


async def test_recorded_runs_leave_the_cluster_after_the_grace_period_busy_ones_stay(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any
) -> None:
    start_operator(TASKACTION_DELETE_RECORDED_AFTER="2", TASKACTION_GUARD_SWEEP_INTERVAL="1")
    ex = StandInExecutor(kube)
    for run in ("rexp", "rbusy"):
        await kube.create_taskaction(namespace, taskaction(namespace, run, "a0"))
        await kube.create_taskaction(namespace, taskaction(namespace, run, "a1", "a0"))
    await ex.run_through(namespace, "rexp-a1", SUCCESS_PATH)
    await ex.run_through(namespace, "rexp-a0", SUCCESS_PATH)
    await ex.run_through(namespace, "rbusy-a0", SUCCESS_PATH)  # its child stays Executing
    await ex.move(namespace, "rbusy-a1", "Executing")

    async def gone(*names: str) -> bool:
        return all([await kube.get_taskaction(namespace, n) is None for n in names])

    await until(lambda: gone("rexp-a0", "rexp-a1"), timeout=90, what="the recorded run deleted")
    assert db.phases(namespace, "rexp") == {"a0": SUCCEEDED, "a1": SUCCEEDED}  # the record stays
    await asyncio.sleep(4)  # several more passes, past the grace period of rbusy-a0
    assert not await gone("rbusy-a0") and not await gone("rbusy-a1")
    assert db.phases(namespace, "rbusy") == {"a0": SUCCEEDED, "a1": RUNNING}
