"""Recording that scales out: replicas with ``TASKACTION_SHARDS`` split the runs between them, each
watching only its own shards' TaskActions (the webhook labels every creation with its run's bucket),
and a replica that dies or stops hands its shards over with nothing lost and every event once.

Real processes (or Pods on kind), the real API server's label filtering, real Leases."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER
from taskaction_operator.crd.shards import SHARD_LABEL, bucket, bucket_label, shard_of
from taskaction_operator.devtools.executor import StandInExecutor
from taskaction_operator.devtools.operator_process import free_port
from taskaction_operator.k8s import KubeOps
from tests.e2e.operator import Db, until
from tests.e2e.taskactions import taskaction

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

QUEUED, INIT, RUNNING, OK = 1, 3, 4, 5
DOMAIN = "development"
LEASE = 6.0
#: A dead replica's shard is claimed within one lease duration of its last renewal (two thirds
#: unchanged as the survivor sees it, then its next pass); plus room for a loaded machine.
TAKEOVER_BOUND = LEASE + 10
CHILDREN = ("a1", "a2", "a3")


def gauge(op: Any, name: str) -> float | None:
    try:
        text = op.metrics(timeout=2)
    except Exception:
        return None
    lines = [ln for ln in text.splitlines() if ln.startswith(f"{name} ")]
    return float(lines[0].split()[1]) if len(lines) == 1 else None


def received(op: Any) -> float:
    """Watch events this replica handled (its own shards' only: others' return before counting)."""
    text = op.metrics(timeout=5)
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^taskaction_events_received_total\{[^}]*\} (\S+)$", text, re.M)
    )


def shards_in_log(op: Any) -> set[int]:
    """The shards the replica's log last said it records ("recording shards 0,1 of 2 ...")."""
    lines = re.findall(r"recording shards (\S+) of \d+", op.log_text())
    assert lines, op.log_tail()
    return set() if lines[-1] == "none" else {int(x) for x in lines[-1].split(",")}


def runs_of_shard(project: str, shard: int, shards: int, count: int, prefix: str) -> list[str]:
    names = (f"{prefix}{i}" for i in range(10_000))
    return [n for n in names if shard_of(bucket(project, DOMAIN, n), shards) == shard][:count]


async def start_run(kube: KubeOps, ex: StandInExecutor, ns: str, project: str, run: str) -> None:
    """The root and three children created (as Flyte's executor creates them: plain creates), all
    Queued and Initializing."""
    await kube.create_taskaction(ns, taskaction(project, run, "a0"))
    await ex.run_through(ns, f"{run}-a0", ["Queued", "Initializing", "Executing"])
    for child in CHILDREN:
        await kube.create_taskaction(ns, taskaction(project, run, child, "a0"))
    await asyncio.gather(*(ex.run_through(ns, f"{run}-{c}", ["Queued", "Initializing"]) for c in CHILDREN))


async def finish_run(ex: StandInExecutor, ns: str, run: str) -> None:
    await asyncio.gather(*(ex.run_through(ns, f"{run}-{c}", ["Executing", "Completed"]) for c in CHILDREN))
    await ex.move(ns, f"{run}-a0", "Completed")


def all_recorded(db: Db, project: str, runs: list[str]) -> bool:
    return all(db.phases(project, run) == dict.fromkeys(("a0", *CHILDREN), OK) for run in runs)


def assert_every_event_once(db: Db, project: str, runs: list[str]) -> None:
    for run in runs:
        for action in ("a0", *CHILDREN):
            assert db.events(project, run, action) == [(1, p, 0) for p in (QUEUED, INIT, RUNNING, OK)], (
                run,
                action,
            )


async def all_released(kube: KubeOps, ns: str) -> bool:
    objs = await kube.list_taskactions(ns)
    return bool(objs) and all(
        RECORD_GUARD_FINALIZER not in (o["metadata"].get("finalizers") or []) for o in objs
    )


@pytest.mark.timeout(420)
async def test_two_replicas_split_the_runs_and_a_killed_ones_shard_is_taken_over_mid_run(
    start_operator: Any, kube: KubeOps, db: Db, namespace: str
) -> None:
    env = {"TASKACTION_SHARDS": "2", "TASKACTION_LEASE_DURATION": str(LEASE)}
    a = start_operator(**env, TASKACTION_WEBHOOK_LISTEN=f"127.0.0.1:{free_port()}")
    await until(
        lambda: gauge(a, "taskaction_shards_owned") == 2, timeout=60, what="a alone holding both shards"
    )
    b = start_operator(**env, TASKACTION_WEBHOOK_LISTEN=f"127.0.0.1:{free_port()}")
    await until(
        lambda: gauge(a, "taskaction_shards_owned") == 1 and gauge(b, "taskaction_shards_owned") == 1,
        timeout=60,
        what="one shard each",
    )
    project = namespace
    ex = StandInExecutor(kube)
    first = runs_of_shard(project, 0, 2, 4, "r") + runs_of_shard(project, 1, 2, 4, "r")
    await asyncio.gather(*(start_run(kube, ex, namespace, project, run) for run in first))
    await asyncio.gather(*(finish_run(ex, namespace, run) for run in first))
    await until(lambda: all_recorded(db, project, first), timeout=120, what="the first runs recorded")
    assert_every_event_once(db, project, first)
    for obj in await kube.list_taskactions(namespace):
        spec = obj["spec"]
        assert obj["metadata"]["labels"][SHARD_LABEL] == bucket_label(
            spec["project"], spec["domain"], spec["runName"]
        )
    # Each replica handled its own half, not everything (a replica of an unsharded pair handles all).
    ra, rb = received(a), received(b)
    assert 0.25 < ra / (ra + rb) < 0.75, (ra, rb)

    # b dies in the middle of runs of its own shard (SIGKILL: its Leases are left to expire).
    (b_shard,) = shards_in_log(b)
    second = runs_of_shard(project, b_shard, 2, 4, "s")
    await asyncio.gather(*(start_run(kube, ex, namespace, project, run) for run in second))
    await until(
        lambda: all(db.phases(project, run).get("a1") == INIT for run in second),
        timeout=60,
        what="the second runs recorded up to Initializing by b",
    )
    before = received(a)
    b.kill()
    killed = time.monotonic()
    await asyncio.gather(*(finish_run(ex, namespace, run) for run in second))
    await until(
        lambda: gauge(a, "taskaction_shards_owned") == 2,
        timeout=TAKEOVER_BOUND + 30,
        what="a taking b's shard",
    )
    took = time.monotonic() - killed
    assert took <= TAKEOVER_BOUND, f"took over after {took:.1f} s"
    await until(lambda: all_recorded(db, project, second), timeout=120, what="the second runs recorded by a")
    assert_every_event_once(db, project, second)
    assert received(a) > before
    await until(lambda: all_released(kube, namespace), timeout=60, what="every guard released")


@pytest.mark.timeout(300)
async def test_three_replicas_take_a_shard_each_and_a_stopped_one_hands_over_at_once(
    start_operator: Any, kube: KubeOps, db: Db, namespace: str
) -> None:
    env = {"TASKACTION_SHARDS": "3", "TASKACTION_LEASE_DURATION": str(LEASE)}
    ops = [start_operator(**env, TASKACTION_WEBHOOK_LISTEN=f"127.0.0.1:{free_port()}") for _ in range(3)]
    await until(
        lambda: [gauge(op, "taskaction_shards_owned") for op in ops] == [1, 1, 1],
        timeout=90,
        what="one shard each",
    )
    owned = [shards_in_log(op) for op in ops]
    assert set().union(*owned) == {0, 1, 2}
    project = namespace
    ex = StandInExecutor(kube)
    runs = [run for shard in range(3) for run in runs_of_shard(project, shard, 3, 2, "r")]
    await asyncio.gather(*(start_run(kube, ex, namespace, project, run) for run in runs))
    counts = [received(op) for op in ops]
    assert all(c > 0 for c in counts) and max(counts) / sum(counts) < 0.6, counts

    # A clean stop frees its Leases: the others claim the shard on their next pass, well within a
    # lease duration, and record the rest of its runs.
    leaving = ops[0]
    leaving.stop()
    stopped = time.monotonic()
    stayed = ops[1:]
    await until(
        lambda: sum(gauge(op, "taskaction_shards_owned") or 0 for op in stayed) == 3,
        timeout=LEASE + 30,
        what="the two left holding all three shards",
    )
    took = time.monotonic() - stopped
    assert took < LEASE, f"handed over after {took:.1f} s"
    await asyncio.gather(*(finish_run(ex, namespace, run) for run in runs))
    await until(lambda: all_recorded(db, project, runs), timeout=120, what="every run recorded")
    assert_every_event_once(db, project, runs)
