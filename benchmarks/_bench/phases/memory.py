"""The ``memory`` phase: the operator's memory over N live (unfinished) TaskActions.

N TaskActions are created and brought to RUNNING with no operator running (a create and one status
patch each, the status exactly as the executor writes it after Queued → Initializing → Executing), so
every one of them is in the operator's watch and none is finished. Then, each a fresh operator process:

* ``idle``: over the namespace before the actions exist (after start-up and the empty listing);
* ``first``: over the N actions never seen: it lists them, records every one (three event rows
  each) and patches each on first sight (ownerReference, guard): the peak case;
* ``restart``: over the same N, now recorded: it lists and re-checks them (no writes);
* one per ``--memory-variant`` (and the baseline again before each), over the same recorded N:
  the same conditions with other settings (environment variables), for before/after comparisons.

For each: VmRSS when it is quiet (``live_rss_mb``), the high-water mark VmHWM (``peak_rss_mb``),
``/proc/PID/smaps_rollup`` (anonymous vs file-backed), and per live object the growth over the idle
process: ``(live - idle) / N`` and ``(peak - idle) / N`` in KB.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _bench.harness import Ctx, cleanup_namespace, log, open_phase, quiesce, r, recorded_rows
from _bench.operator_proc import BenchOperator, metric_sum
from _bench.rawapi import RawApi
from _bench.workload import Node, body, workload
from taskaction_operator.devtools.executor import _Track, build_status

#: Actions created or patched per gathered batch.
_BATCH = 2000
#: Seconds a quiet operator is left before its "live" RSS is read (kopf's idle workers end after 2 s).
SETTLE_S = 5.0


def smaps_rollup(pid: int) -> dict[str, float]:
    """``/proc/PID/smaps_rollup`` in MB (Rss, Anonymous, Private_Dirty, …); {} when unreadable."""
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return out
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key.strip()] = round(int(parts[0]) / 1024, 1)
    return out


def running_status() -> dict[str, Any]:
    """The status the executor has written once an action is RUNNING (three transitions)."""
    track = _Track()
    status: dict[str, Any] = {}
    for phase in ("Queued", "Initializing", "Executing"):
        status = build_status(track, phase)
    return status


async def populate(
    api: RawApi, ns: str, project: str, runs: list[list[Node]], concurrency: int
) -> dict[str, Any]:
    """Every action of ``runs`` created and patched to RUNNING (two calls each), parents first."""
    status = {"status": running_status()}
    errors = 0
    samples: list[str] = []

    async def one(node: Node) -> None:
        nonlocal errors
        try:
            await api.create(ns, body(project, node))
            await api.patch_status(ns, node.cr, status)
        except Exception as exc:
            errors += 1
            if len(samples) < 5:
                samples.append(f"{node.cr}: {exc!r}")

    t0 = time.monotonic()
    nodes = [n for run in runs for n in run]

    def progress(done: int) -> None:
        if done % 10000 == 0:
            log(f"  {done} created ({done / (time.monotonic() - t0):.0f}/s)")

    await _for_each(nodes, one, concurrency, progress)
    took = time.monotonic() - t0
    return {
        "created": len(nodes) - errors,
        "errors": errors,
        "error_samples": samples,
        "create_s": r(took, 1),
        "per_s": r(len(nodes) / took, 1) if took else None,
    }


async def _for_each(
    nodes: list[Node],
    fn: Callable[[Node], Awaitable[None]],
    concurrency: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """``fn`` over ``nodes``, ``concurrency`` at a time, in batches of 2,000 in order (parents
    first: a batch's parents were handled by the batches before it or in it); ``progress`` after each
    batch with the count done."""
    sem = asyncio.Semaphore(concurrency)

    async def bounded(node: Node) -> None:
        async with sem:
            await fn(node)

    for i in range(0, len(nodes), _BATCH):
        await asyncio.gather(*(bounded(n) for n in nodes[i : i + _BATCH]))
        if progress is not None:
            progress(min(i + _BATCH, len(nodes)))


async def _watch_rss(op: BenchOperator, halt: asyncio.Event, peaks: dict[str, float]) -> None:
    """Samples VmRSS every 0.2 s (the high-water mark is the kernel's; this is the shape)."""
    while not halt.is_set():
        s = op.sample()
        if s is not None:
            peaks["rss_max_sampled_mb"] = max(peaks.get("rss_max_sampled_mb", 0.0), s.rss_mb)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(halt.wait(), 0.2)


async def measure(
    ctx: Ctx,
    ns: str,
    project: str,
    tag: str,
    size: int,
    *,
    expect_rows: int,
    expect_writes: int = 0,
    env: dict[str, str] | None = None,
    diag: str = "",
) -> dict[str, Any]:
    """A fresh operator over ``ns``: started, until it has listed ``size`` actions, ``expect_rows``
    event rows of ``project`` exist and it is quiet; its memory then; stopped. ``diag``: "stats" or
    "tracemalloc" (traced from its start: that run's RSS is not comparable), diagnostics written at the
    end under the artifacts (``memdiag-<tag>/``, see launch_operator.py)."""
    diag_dir = ctx.out_dir / f"memdiag-{tag}"
    if diag:
        env = {**(env or {}), "BENCH_MEMDIAG": str(diag_dir)}
        if diag == "tracemalloc":
            env["PYTHONTRACEMALLOC"] = "1"
    op = ctx.operator(ns, webhook=ctx.args.webhook, tag=tag, env=env)
    res: dict[str, Any] = {"tag": tag, "env": env or {}}
    halt = asyncio.Event()
    peaks: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        await asyncio.to_thread(op.start)
        res["ready_s"] = r(time.monotonic() - t0, 2)
        s0 = op.sample()
        res["ready_rss_mb"] = r(s0.rss_mb, 1) if s0 else None
        sampler = asyncio.create_task(_watch_rss(op, halt, peaks))
        deadline = time.monotonic() + max(120.0, size / 10)
        listed = 0.0
        while size and time.monotonic() < deadline:
            m = await asyncio.to_thread(op.scrape)
            listed = metric_sum(m, "taskaction_events_received_total", type="LISTED")
            if listed >= size:
                res["all_listed_s"] = r(time.monotonic() - t0, 2)
                break
            await asyncio.sleep(0.25)
        if expect_rows:
            rec = await recorded_rows(ctx.dsn, project, expect_rows, max(120.0, size / 20))
            res["recorded"] = rec is not None
        if expect_writes:
            # First sight: every object patched (guard, ownerReference) long after its rows exist,
            # the patches queued behind the official client's few threads.
            while time.monotonic() < deadline:
                m = await asyncio.to_thread(op.scrape)
                if metric_sum(m, "taskaction_api_writes_total") >= expect_writes:
                    res["all_written_s"] = r(time.monotonic() - t0, 2)
                    break
                await asyncio.sleep(1.0)
        res["quiet"] = await quiesce(op, timeout=max(30.0, size / 200))
        res["quiet_s"] = r(time.monotonic() - t0, 2)
        await asyncio.sleep(SETTLE_S)
        halt.set()
        await sampler
        s1 = op.sample()
        m1 = await asyncio.to_thread(op.scrape)
        res.update(
            {
                "listed": metric_sum(m1, "taskaction_events_received_total", type="LISTED"),
                "api_writes": metric_sum(m1, "taskaction_api_writes_total"),
                "live_rss_mb": r(s1.rss_mb, 1) if s1 else None,
                "peak_rss_mb": r(s1.hwm_mb, 1) if s1 else None,
                "rss_max_sampled_mb": r(peaks.get("rss_max_sampled_mb"), 1),
                "cpu_s": r(s1.cpu_s, 2) if s1 else None,
                "smaps_rollup_mb": {
                    k: v
                    for k, v in smaps_rollup(op.pid).items()
                    if k in ("Rss", "Anonymous", "Private_Dirty", "Private_Clean", "Shared_Clean")
                },
            }
        )
        if diag:
            await diagnose(op, diag_dir)
            res["diag"] = str(diag_dir)
    finally:
        halt.set()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(op.stop)
    log(
        f"  {tag}: live {res.get('live_rss_mb')} MB, peak {res.get('peak_rss_mb')} MB, "
        f"listed {res.get('listed')}, quiet after {res.get('quiet_s')} s"
    )
    return res


async def diagnose(op: BenchOperator, out: Path) -> None:
    """Asks a launcher started with ``BENCH_MEMDIAG`` (see launch_operator.py) for its diagnostics:
    SIGUSR1 writes them under the directory it was given; waits until they are there."""
    done = out / "done"
    done.unlink(missing_ok=True)
    op.signal(signal.SIGUSR1)
    for _ in range(600):
        if done.exists():
            return
        await asyncio.sleep(0.5)
    log(f"  no diagnostics in {out}")


def per_object_kb(value: float | None, idle: float | None, size: int) -> float | None:
    if value is None or idle is None or not size:
        return None
    return r((value - idle) * 1024 / size, 2)


def add_per_object(m: dict[str, Any], idle: dict[str, Any], size: int) -> None:
    """``m``'s live and peak RSS as KB per live object over the idle process's live RSS."""
    idle_rss = idle.get("live_rss_mb")
    m["live_kb_per_object"] = per_object_kb(m.get("live_rss_mb"), idle_rss, size)
    m["peak_kb_per_object"] = per_object_kb(m.get("peak_rss_mb"), idle_rss, size)


async def memory_phase(ctx: Ctx, size: int) -> dict[str, Any]:
    what = f"{size} actions created at RUNNING without an operator, then fresh operators"
    ns, res = await open_phase(ctx, f"n{size}-memory", size, what)
    project = ns
    runs = workload(size, ctx.args.run_size)
    variants: list[tuple[str, dict[str, str]]] = ctx.args.memory_variants
    diag: str = ctx.args.memory_diag
    stats = "stats" if diag else ""
    try:
        idle = await measure(ctx, ns, project, "idle", 0, expect_rows=0, diag=stats)
        res["idle"] = idle
        if diag == "tracemalloc":
            res["idle_traced"] = await measure(ctx, ns, project, "idle-traced", 0, expect_rows=0, diag=diag)
        res["populate"] = await populate(ctx.api, ns, project, runs, ctx.args.concurrency)
        log(f"  populated: {res['populate']}")
        runs_out: list[dict[str, Any]] = []
        first = await measure(
            ctx, ns, project, "first", size, expect_rows=3 * size, expect_writes=size, diag=stats
        )
        runs_out.append(first)
        rounds: list[tuple[str, dict[str, str]]] = [("restart", {})]
        for name, env in variants:
            rounds += [(name, env), ("restart", {})]
        for i, (name, env) in enumerate(rounds):
            m = await measure(
                ctx,
                ns,
                project,
                f"{name}-{i}",
                size,
                expect_rows=3 * size,
                env=env,
                diag=stats if name == "restart" and i == 0 else "",
            )
            m["variant"] = name
            runs_out.append(m)
        if diag == "tracemalloc":
            res["restart_traced"] = await measure(
                ctx, ns, project, "restart-traced", size, expect_rows=3 * size, diag=diag
            )
        for m in runs_out:
            add_per_object(m, idle, size)
        res["runs"] = runs_out
        res["first"] = first
        restarts = [m for m in runs_out if m.get("variant") == "restart"]
        res["restart"] = restarts[0] if restarts else None
    finally:
        log(f"  cleaning up {ns}")
        res["cleanup_s"] = r(await cleanup_namespace(ctx, ns, timeout=max(300.0, size / 20)), 1)
    firsts: list[tuple[str, dict[str, str]]] = ctx.args.memory_first_variants
    if firsts:
        res["first_variants"] = []
        for i, (name, env) in enumerate(firsts):
            m = await first_sight(ctx, size, f"{res['phase']}-f{i}", name, env)
            add_per_object(m, res.get("idle") or {}, size)
            res["first_variants"].append(m)
    return res


async def first_sight(ctx: Ctx, size: int, label: str, name: str, env: dict[str, str]) -> dict[str, Any]:
    """One more first sight, in a namespace of its own (N created again): a ``--memory-first-variant``
    (``base``: the operator as it is, for the comparison in the same conditions)."""
    ns = f"bench-{ctx.stamp}-{label}"
    runs = workload(size, ctx.args.run_size)
    await ctx.kube.ensure_namespace(ns)
    try:
        pop = await populate(ctx.api, ns, ns, runs, ctx.args.concurrency)
        m = await measure(
            ctx, ns, ns, f"first-{name}", size, expect_rows=3 * size, expect_writes=size, env=env
        )
        m["variant"], m["populate"] = name, pop
        return m
    finally:
        await cleanup_namespace(ctx, ns, timeout=max(300.0, size / 20))


def print_memory(report: dict[str, Any]) -> None:
    mem = report.get("memory") or {}
    if not mem:
        return
    print("\nmemory over live TaskActions (MB; KB per live object over the idle process):")
    for size_s, p in mem.items():
        idle = p.get("idle") or {}
        print(f"  {size_s:>6} idle  rss {idle.get('live_rss_mb')}  peak {idle.get('peak_rss_mb')}")
        for m in [*(p.get("runs") or []), *(p.get("first_variants") or [])]:
            print(
                f"  {size_s:>6} {m['tag']:<24} rss {m.get('live_rss_mb')}  peak {m.get('peak_rss_mb')}  "
                f"anon {(m.get('smaps_rollup_mb') or {}).get('Anonymous')}  "
                f"KB/object live {m.get('live_kb_per_object')} peak {m.get('peak_kb_per_object')}  "
                f"listed {m.get('listed')} writes {m.get('api_writes')} quiet {m.get('quiet_s')} s"
            )
