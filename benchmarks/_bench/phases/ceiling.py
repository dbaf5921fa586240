"""The ``ceiling`` phase: the offered-rate workload with no operator at all."""

from __future__ import annotations

import asyncio
from typing import Any

from _bench.generator import LoadGenerator
from _bench.harness import Ctx, cleanup_namespace, finish_watcher, log, r, start_watcher, watcher_ready
from _bench.phases.figures import watch_lag
from _bench.stats import rate_from_times
from _bench.workload import Node


async def ceiling_phase(ctx: Ctx, size: int, runs: list[list[Node]], rate: float) -> dict[str, Any]:
    """The offered-rate workload with no operator at all, the bare watch client its only reader: what
    the API server (and the machine) can deliver without the operator's share of the cores, and the
    lag floor under it. The operator's rate-phase lag is to be read against this."""
    ns = f"bench-{ctx.stamp}-n{size}-ceiling"
    n = sum(len(run) for run in runs)
    expect = 4 * n
    log(f"phase n{size}-ceiling: {n} actions, rate {rate}, no operator")
    await ctx.kube.ensure_namespace(ns)
    gen_timeout = expect / rate * 3 + 60
    watcher = start_watcher(ctx, ns, expect, gen_timeout + 60, "ceiling")
    try:
        await watcher_ready(watcher)
        gen = LoadGenerator(ctx.api, ns, ns, runs, rate=rate, concurrency=ctx.args.concurrency)
        gstats = await gen.run(gen_timeout)
        live = await asyncio.to_thread(finish_watcher, watcher[0], watcher[1], 60)
    finally:
        if watcher[0].poll() is None:
            watcher[0].kill()
        cleanup_s = await cleanup_namespace(ctx, ns)
    times = live.get("times") or []
    return {
        "phase": f"n{size}-ceiling",
        "actions": n,
        "offered_rate": rate,
        "generator_per_s_steady": r(rate_from_times(sorted(gstats.acks.values())), 1),
        "generator_errors": gstats.errors,
        "bare_watch_per_s_steady": r(rate_from_times(times), 1),
        "bare_watch_transitions": live.get("transitions"),
        "bare_watch_lag_s": watch_lag(gstats.acks, live, runs),
        "error": live.get("error"),
        "cleanup_s": r(cleanup_s, 1),
    }
