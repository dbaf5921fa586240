"""The ``restart`` phase: a fresh operator over many live, unfinished TaskActions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from _bench import dbwatch
from _bench.generator import LoadGenerator
from _bench.harness import Ctx, cleanup_namespace, open_phase, quiesce, r, recorded_rows
from _bench.operator_proc import metric_sum
from _bench.workload import workload


async def restart_phase(ctx: Ctx, size: int) -> dict[str, Any]:
    """N actions driven to RUNNING (nothing finished, so nothing is filtered out of the watch), the
    operator that recorded them stopped, a fresh one started: how long it takes to list and re-check
    all N, at what peak RSS and CPU, and that the records did not change."""
    what = f"{size} actions driven to RUNNING, then a fresh operator over them"
    ns, res = await open_phase(ctx, f"n{size}-restart", size, what)
    project = ns
    runs = workload(size, ctx.args.run_size)

    first, second = ctx.operator(ns, tag="first"), ctx.operator(ns, tag="second")
    try:
        await asyncio.to_thread(first.start)
        gen = LoadGenerator(
            ctx.api, ns, project, runs, rate=None, concurrency=ctx.args.concurrency, stop_at=lambda n: 3
        )
        planned = gen.transitions_planned
        gstats = await gen.run(max(300.0, planned / 20))
        recorded = await recorded_rows(ctx.dsn, project, planned, max(120.0, planned / 40))
        await quiesce(first)
        await asyncio.to_thread(first.stop)
        before = await asyncio.to_thread(dbwatch.event_rows, ctx.dsn, project)
        res["before"] = {
            "transitions": gstats.patches,
            "generator_errors": gstats.errors,
            "recorded": recorded is not None,
            "event_rows": len(before),
        }
        t0 = time.monotonic()
        await asyncio.to_thread(second.start)
        started = time.monotonic() - t0
        listed_at = None
        deadline = time.monotonic() + max(120.0, size / 20)
        while time.monotonic() < deadline:
            m = await asyncio.to_thread(second.scrape)
            if metric_sum(m, "taskaction_events_received_total", type="LISTED") >= size:
                listed_at = time.monotonic() - t0
                break
            await asyncio.sleep(0.25)
        await quiesce(second)
        caught_up = time.monotonic() - t0
        s1 = second.sample()
        m1 = await asyncio.to_thread(second.scrape)
        after = await asyncio.to_thread(dbwatch.event_rows, ctx.dsn, project)
        res["second"] = {
            "ready_s": r(started, 2),
            "all_listed_s": r(listed_at, 2) if listed_at is not None else None,
            "quiet_s": r(caught_up, 2),
            "listed": metric_sum(m1, "taskaction_events_received_total", type="LISTED"),
            "rss_peak_mb": r(s1.hwm_mb, 1) if s1 else None,
            "cpu_s": r(s1.cpu_s, 2) if s1 else None,
            "api_writes": metric_sum(m1, "taskaction_api_writes_total"),
            "event_rows_after": len(after),
            "records_unchanged": sorted(x[:4] for x in after) == sorted(x[:4] for x in before),
        }
    finally:
        for op in (first, second):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(op.stop)
        res["cleanup_s"] = r(await cleanup_namespace(ctx, ns), 1)
    return res
