"""``sharded-R`` (and ``sharded-R-kill``): R operator replicas with ``TASKACTION_SHARDS=R`` recording
one workload at full speed, each watching only its own shards (the API server filters by the
``flyte.org/record-shard`` label the webhook sets at creation).

Figures: each replica's CPU (from /proc) and events handled, their sum and the largest share, the
total recorded rate, the API server's and etcd's CPU; with ``kill``, one replica is SIGKILLed when
half the transitions are recorded, and the phase reports how long the survivors took to hold every
shard, whether every transition was recorded, and whether any was recorded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import Any

from _bench import apiserver, dbwatch
from _bench.generator import LoadGenerator
from _bench.harness import Ctx, cleanup_namespace, log, r, wait_recorded
from _bench.operator_proc import BenchOperator, metric_delta, metric_sum, proc_sample
from _bench.phases.operator_run import until_labelled
from _bench.workload import Node


async def _shards_settled(ops: list[BenchOperator], replicas: int, timeout: float = 120) -> float:
    """Seconds until the live replicas hold every shard between them, one share each."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        owned = []
        for op in ops:
            try:
                owned.append(metric_sum(await asyncio.to_thread(op.scrape), "taskaction_shards_owned"))
            except Exception:
                owned.append(-1)
        share = -(-replicas // len(ops))
        if sum(owned) == replicas and all(0 < o <= share for o in owned):
            return time.monotonic() - t0
        await asyncio.sleep(0.2)
    raise TimeoutError(f"shards not settled among {len(ops)} replicas in {timeout:.0f} s")


async def sharded_phase(
    ctx: Ctx, size: int, runs: list[list[Node]], replicas: int, *, kill: bool
) -> dict[str, Any]:
    label = f"n{size}-sharded{replicas}{'-kill' if kill else ''}"
    ns = f"bench-{ctx.stamp}-{label}"
    n = sum(len(run) for run in runs)
    expect = 4 * n
    res: dict[str, Any] = {"phase": label, "namespace": ns, "actions": n, "replicas": replicas, "kill": kill}
    log(
        f"phase {label}: {n} actions, {replicas} replicas, full speed{', one killed mid-run' if kill else ''}"
    )
    await ctx.kube.ensure_namespace(ns)
    env = {"TASKACTION_SHARDS": str(replicas), "TASKACTION_LEASE_DURATION": "15"}
    ops = [ctx.operator(ns, webhook=True, tag=f"r{i}", env=env) for i in range(replicas)]
    poller: dbwatch.CountPoller | None = None
    try:
        for op in ops:
            await asyncio.to_thread(op.start)
        res["settled_s"] = r(await _shards_settled(ops, replicas), 1)
        cp_pids = apiserver.control_plane_pids()
        cp0 = {name: proc_sample(pid) for name, pid in cp_pids.items()}
        m0 = [await asyncio.to_thread(op.scrape) for op in ops]
        s0 = [op.sample() for op in ops]
        poller = dbwatch.CountPoller(ctx.dsn, ns)
        poller.start()
        gen = LoadGenerator(ctx.api, ns, ns, runs, rate=None, concurrency=ctx.args.concurrency)
        gen_task = asyncio.create_task(gen.run(ctx.args.gen_timeout or max(120.0, expect / 40)))
        victim: BenchOperator | None = None
        if kill:
            await wait_recorded(poller, expect // 2, max(120.0, expect / 40))
            victim = ops[-1]
            s_victim = victim.sample()
            m_victim = await asyncio.to_thread(victim.scrape)
            victim.kill()
            killed = time.monotonic()
            done = poller.latest().events if poller.latest() else 0  # type: ignore[union-attr]
            log(f"  killed replica {replicas - 1} at {done}/{expect}")
            await _shards_settled(ops[:-1], replicas)
            res["takeover_s"] = r(time.monotonic() - killed, 1)
        gstats = await gen_task
        t_rec = await wait_recorded(poller, expect, max(120.0, expect / 40))
        await until_labelled(ctx, ns, max(60.0, expect / 40))
        poller.stop()
        live_ops = ops[:-1] if kill else ops
        m1 = [await asyncio.to_thread(op.scrape) for op in live_ops]
        s1 = [op.sample() for op in live_ops]
        cp1 = {name: proc_sample(pid) for name, pid in cp_pids.items()}
        if kill:
            s1.append(s_victim)
            m1.append(m_victim)
        rows = await asyncio.to_thread(dbwatch.event_rows, ctx.dsn, ns)
    finally:
        if poller is not None and poller.is_alive():
            poller.stop()
        for op in ops:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(op.stop)
        res["cleanup_s"] = r(await cleanup_namespace(ctx, ns), 1)
    keys = Counter((run, action, attempt, phase) for run, action, attempt, phase, _ in rows)
    res["recorded"] = {
        "events": len(keys),
        "expected": expect,
        "complete": len(keys) >= expect,
        "recorded_twice": sum(1 for c in keys.values() if c > 1),
        "recorded_per_s": r(len(keys) / (t_rec - gstats.started)) if t_rec else None,
        "generator_s": r(gstats.finished - gstats.started, 1),
        "generator_errors": gstats.errors,
    }
    per = []
    for i, (a, b, ma, mb) in enumerate(zip(s0, s1, m0, m1, strict=True)):
        cpu = (b.cpu_s - a.cpu_s) if a and b else None
        per.append(
            {
                "replica": i,
                "cpu_s": r(cpu, 2),
                "cpu_ms_per_transition": r(cpu * 1000 / expect) if cpu is not None else None,
                "events_handled": int(metric_delta(ma, mb, "taskaction_events_received_total")),
                "api_writes": int(metric_delta(ma, mb, "taskaction_api_writes_total")),
                "rss_peak_mb": r(b.hwm_mb, 1) if b else None,
            }
        )
    res["replicas_figures"] = per
    total = sum(p["cpu_s"] or 0 for p in per)
    res["cpu_ms_per_transition_total"] = r(total * 1000 / expect)
    res["largest_cpu_share"] = r(max((p["cpu_s"] or 0) for p in per) / total) if total else None
    handled = sum(p["events_handled"] for p in per)
    res["largest_events_share"] = r(max(p["events_handled"] for p in per) / handled) if handled else None
    res["control_plane_cpu_ms_per_transition"] = {
        name: r((cp1[name].cpu_s - cp0[name].cpu_s) * 1000 / expect)  # type: ignore[union-attr]
        for name in cp0
        if cp0.get(name) and cp1.get(name)
    }
    log(
        f"  {label}: {len(keys)}/{expect} recorded, {res['recorded']['recorded_twice']} twice, "
        f"per-replica CPU ms/transition {[p['cpu_ms_per_transition'] for p in per]}, "
        f"largest share {res['largest_cpu_share']}"
    )
    return res
