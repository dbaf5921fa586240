"""One operator phase (``rate``, ``full``, ``noguard``, ``profile``): a fresh operator process on a fresh
namespace, the load generator playing Flyte's executor, and optionally the bare watch client beside it
and a replay of the same events to the bare watch client alone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from _bench import apiserver, dbwatch
from _bench.generator import LoadGenerator
from _bench.harness import (
    Ctx,
    cleanup_namespace,
    count_crs,
    finish_watcher,
    log,
    quiesce,
    r,
    start_watcher,
    wait_recorded,
    watcher_ready,
)
from _bench.operator_proc import BenchOperator, metric_sum
from _bench.phases.figures import Observed, phase_figures
from _bench.workload import Node
from taskaction_operator.crd.names import UNRECORDED_SELECTOR


async def until_labelled(ctx: Ctx, ns: str, timeout: float) -> bool:
    """Until no TaskAction of ``ns`` is left without the recorded label (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not await count_crs(ctx.kube, ns, UNRECORDED_SELECTOR):
            return True
        await asyncio.sleep(0.5)
    return False


def _probe(name: str) -> dict[str, Any]:
    """A root TaskAction of a project of its own, to see whether the webhook answers."""
    labels = {"flyte.org/project": "webhook-probe", "flyte.org/run": name, "flyte.org/action": "a0"}
    return {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {"name": name, "labels": labels},
        "spec": {"project": "webhook-probe", "domain": "development", "runName": name, "actionName": "a0"},
    }


async def run_phase(
    ctx: Ctx,
    label: str,
    runs: list[list[Node]],
    *,
    rate: float | None,
    guard: bool = True,
    webhook: bool | None = None,
    watch: bool = False,
    replay: bool = False,
    profile: bool = False,
) -> dict[str, Any]:
    ns = f"bench-{ctx.stamp}-{label}"
    n = sum(len(run) for run in runs)
    res: dict[str, Any] = {
        "phase": label,
        "namespace": ns,
        "project": ns,
        "actions": n,
        "runs": len(runs),
        "offered_rate": rate,
        "guard": guard,
    }
    webhook = ctx.args.webhook if webhook is None else webhook
    res["webhook"] = webhook
    log(
        f"phase {label}: {n} actions in {len(runs)} runs, rate {rate or 'full speed'}, guard {guard}, "
        f"webhook {webhook}"
    )
    await ctx.kube.ensure_namespace(ns)
    op = ctx.operator(ns, guard=guard, webhook=webhook)
    phase = _Phase(ctx, ns, op, 4 * n, rate)
    try:
        await asyncio.to_thread(op.start)
        res["operator_pid"] = op.pid
        if webhook:
            res["webhook_ready_s"] = r(await phase.webhook_ready(), 2)
        observed = await phase.observe(runs, watch=watch, replay=replay, profile=profile)
    finally:
        phase.close()
        await asyncio.to_thread(op.stop)
        res["cleanup_s"] = r(await cleanup_namespace(ctx, ns), 1)
    res.update(phase_figures(observed, runs, watch=watch, concurrency=ctx.args.concurrency))
    return res


class _Phase:
    """The helpers of one phase (bare watch client, row poller, NOTIFY listener), for clean-up."""

    def __init__(self, ctx: Ctx, ns: str, op: BenchOperator, expect: int, rate: float | None) -> None:
        self.ctx, self.ns, self.op, self.expect, self.rate = ctx, ns, op, expect, rate
        self.watcher: Any = None
        self.poller: dbwatch.CountPoller | None = None
        self.listener: dbwatch.NotifyListener | None = None
        self.gen_timeout = ctx.args.gen_timeout or (
            (expect / rate * 3 + 60) if rate else max(120.0, expect / 40)
        )
        self.rec_timeout = max(60.0, expect / 40)

    async def observe(self, runs: list[list[Node]], *, watch: bool, replay: bool, profile: bool) -> Observed:
        ctx, ns, op, expect = self.ctx, self.ns, self.op, self.expect
        if watch:
            self.watcher = start_watcher(ctx, ns, expect, self.gen_timeout + self.rec_timeout, "live")
            await watcher_ready(self.watcher)
        listener = self.listener = dbwatch.NotifyListener(ctx.dsn, ns)
        listener.start()
        listener.ready.wait(30)
        pg0 = await asyncio.to_thread(dbwatch.pg_stats, ctx.dsn)
        cp_pids = apiserver.control_plane_pids()
        cp0 = apiserver.control_plane_samples(cp_pids)
        api0 = await asyncio.to_thread(apiserver.request_counts, ctx.kubeconfig)
        m0 = await asyncio.to_thread(op.scrape)
        s0 = op.sample()
        poller = self.poller = dbwatch.CountPoller(ctx.dsn, ns, also=op.sample)
        poller.start()
        if profile and not op.start_profile(ctx.out_dir / f"pyspy-{ns}.txt"):
            ctx.notes.append("py-spy not installed: no profile")
        gen = LoadGenerator(ctx.api, ns, ns, runs, rate=self.rate, concurrency=ctx.args.concurrency)
        gstats = await gen.run(self.gen_timeout)
        log(
            f"  generator done: {gstats.patches} patches, {gstats.creates} creates, {gstats.errors} errors "
            f"in {gstats.finished - gstats.started:.1f} s"
        )
        t_rec = await wait_recorded(poller, expect, self.rec_timeout)
        # Every row committed is not every patch sent: the terminal ones (label, guard release) follow.
        labelled = await until_labelled(ctx, ns, self.rec_timeout)
        quiet = await quiesce(op)
        if not labelled:
            ctx.notes.append(f"{ns}: TaskActions still unlabelled after {self.rec_timeout:.0f} s")
        log(
            f"  recorded: {poller.latest().events if poller.latest() else 0}/{expect}"  # type: ignore[union-attr]
            f"{'' if t_rec else ' (TIMED OUT)'}; operator quiet: {quiet}"
        )
        prof_path = op.stop_profile()
        poller.stop()
        listener.stop()
        m1 = await asyncio.to_thread(op.scrape)
        s1 = op.sample()
        cp1 = apiserver.control_plane_samples(cp_pids)
        api1 = await asyncio.to_thread(apiserver.request_counts, ctx.kubeconfig)
        live = finish_watcher(self.watcher[0], self.watcher[1], 30) if self.watcher is not None else None
        rows = await asyncio.to_thread(dbwatch.event_rows, ctx.dsn, ns)
        pg1 = await asyncio.to_thread(dbwatch.pg_stats_settled, ctx.dsn, pg0, len(rows))
        replayed = None
        if replay and live and live.get("start_rv"):
            rp = start_watcher(ctx, ns, expect, 120, "replay", from_rv=live["start_rv"])
            replayed = await asyncio.to_thread(finish_watcher, rp[0], rp[1], 150)
        return Observed(
            gstats,
            poller,
            listener,
            m0,
            m1,
            s0,
            s1,
            api0,
            api1,
            pg0,
            pg1,
            rows,
            live,
            replayed,
            prof_path,
            cp0,
            cp1,
        )

    async def webhook_ready(self, timeout: float = 60) -> float:
        """Seconds until the operator's admission webhook answers: a probe TaskAction created by
        plain create is counted in its ``taskaction_admissions_total`` (the guard alone would not tell
        with the guard off). The probes are deleted (any guard taken off first)."""
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < timeout:
            name = f"webhook-probe-{n}"
            n += 1
            await self.ctx.kube.create_taskaction(self.ns, _probe(name))
            await self.ctx.kube.merge_patch_taskaction(self.ns, name, {"metadata": {"finalizers": None}})
            await self.ctx.kube.delete_taskaction(self.ns, name)
            answered = metric_sum(await asyncio.to_thread(self.op.scrape), "taskaction_admissions_total")
            if answered:
                return time.monotonic() - t0
            await asyncio.sleep(0.5)
        self.ctx.notes.append(f"{self.ns}: the webhook did not answer within {timeout:.0f} s")
        return time.monotonic() - t0

    def close(self) -> None:
        for t in (self.poller, self.listener):
            with contextlib.suppress(Exception):
                if t is not None and t.is_alive():
                    t.stop()
        if self.watcher is not None and self.watcher[0].poll() is None:
            self.watcher[0].kill()
