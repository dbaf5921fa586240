"""The ``abort`` phase: one run driven part-way, then ``ActionRepo.abort_run``; how long until every row
is ABORTED or terminal and every TaskAction is gone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _bench import apiserver, dbwatch
from _bench.generator import LoadGenerator
from _bench.harness import Ctx, cleanup_namespace, count_crs, log, quiesce, r, wait_recorded
from _bench.operator_proc import BenchOperator, metric_delta
from _bench.workload import DOMAIN, TERMINAL, Node, run_tree
from taskaction_operator.crd.names import GROUP, PLURAL, VERSION
from taskaction_operator.model import RunId
from taskaction_operator.repo import ActionRepo

RUN_NAME = "r0000"


async def abort_phase(ctx: Ctx, size: int) -> dict[str, Any]:
    label = f"abort{size}"
    ns = f"bench-{ctx.stamp}-{label}"
    log(f"phase {label}: one run of {size} actions, driven part-way, then abort_run")
    res: dict[str, Any] = {"phase": label, "namespace": ns, "project": ns, "actions": size}
    await ctx.kube.ensure_namespace(ns)
    op = ctx.operator(ns)
    repo = None
    try:
        await asyncio.to_thread(op.start)
        repo = await ActionRepo.connect(ctx.dsn)
        res["before"] = await _drive_part_way(ctx, op, ns, size)
        res.update(await _abort(ctx, op, repo, ns, size))
    finally:
        if repo is not None:
            await repo.close()
        await asyncio.to_thread(op.stop)
        res["cleanup_s"] = r(await cleanup_namespace(ctx, ns), 1)
    return res


def _stop_at(node: Node) -> int:
    if node.parent is None or node.children:
        return 3  # a0 and children RUNNING
    return {0: 1, 1: 1, 2: 3, 3: 3, 4: 4}[node.index % 5]  # QUEUED, RUNNING, some ended


async def _drive_part_way(ctx: Ctx, op: BenchOperator, ns: str, size: int) -> dict[str, Any]:
    """The run's actions moved part-way, recorded, and every child owned by its parent."""
    gen = LoadGenerator(
        ctx.api, ns, ns, [run_tree(RUN_NAME, size)], rate=None, concurrency=ctx.args.concurrency,
        stop_at=_stop_at,
    )  # fmt: skip
    planned = gen.transitions_planned
    gstats = await gen.run(300)
    poller = dbwatch.CountPoller(ctx.dsn, ns)
    poller.start()
    try:
        await wait_recorded(poller, planned, 120)
    finally:
        poller.stop()
    # every child must carry its ownerReference before the cascade can reach it
    deadline = time.monotonic() + 120
    owned = 0
    while time.monotonic() < deadline:
        listed: Any = await asyncio.to_thread(
            ctx.kube.custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL
        )
        items = listed.get("items", [])
        owned = sum(1 for i in items if i["metadata"].get("ownerReferences"))
        if owned >= size - 1 and len(items) == size:
            break
        await asyncio.sleep(1)
    await quiesce(op)
    before = await asyncio.to_thread(dbwatch.action_phases, ctx.dsn, ns, RUN_NAME)
    return {
        "phases": before,
        "owned": owned,
        "generator_errors": gstats.errors,
        "transitions": gstats.patches,
    }


async def _abort(ctx: Ctx, op: BenchOperator, repo: ActionRepo, ns: str, size: int) -> dict[str, Any]:
    """``abort_run`` and the time until the rows have all ended and the TaskActions are all gone."""
    m0 = await asyncio.to_thread(op.scrape)
    api0 = await asyncio.to_thread(apiserver.request_counts, ctx.kubeconfig)
    t0 = time.time()
    await repo.abort_run(RunId(ns, DOMAIN, RUN_NAME), "benchmark abort")
    t_db = t_crs = None
    deadline = time.monotonic() + ctx.args.abort_timeout
    terminal = ",".join(str(p) for p in TERMINAL)
    while time.monotonic() < deadline and (t_db is None or t_crs is None):
        if t_db is None:
            phases = await asyncio.to_thread(dbwatch.action_phases, ctx.dsn, ns, RUN_NAME)
            open_rows = sum(c for p, c in phases.items() if str(p) not in terminal.split(","))
            if open_rows == 0 and sum(phases.values()) == size:
                t_db = time.time()
        if t_crs is None and not await count_crs(ctx.kube, ns, f"flyte.org/run={RUN_NAME}"):
            t_crs = time.time()
        await asyncio.sleep(0.25)
    after = await asyncio.to_thread(dbwatch.action_phases, ctx.dsn, ns, RUN_NAME)
    await quiesce(op, timeout=10)
    m1 = await asyncio.to_thread(op.scrape)
    api1 = await asyncio.to_thread(apiserver.request_counts, ctx.kubeconfig)
    abort_s = r(max(t_db, t_crs) - t0, 2) if t_db and t_crs else None
    return {
        "after": {"phases": after},
        "db_all_ended_s": r(t_db - t0, 2) if t_db else None,
        "crs_gone_s": r(t_crs - t0, 2) if t_crs else None,
        "abort_s": abort_s,
        "timed_out": abort_s is None,
        "aborted_rows": after.get(7, 0),
        "abort_attempts": {
            k: metric_delta(m0, m1, "taskaction_abort_attempts_total", outcome=k)
            for k in ("cleared", "retry", "gave_up")
        },
        "deleted_events": metric_delta(m0, m1, "taskaction_events_received_total", type="DELETED"),
        # The API server's counters are keyed by response code too (``apiserver.request_counts``).
        "apiserver_delta": {
            f"{v} {rs}{'/' + s if s else ''} {code}": c
            for (v, _g, rs, s, code), c in apiserver.delta(api0, api1).items()
        },
    }
