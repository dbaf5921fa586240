#!/usr/bin/env python
"""End-to-end benchmark of taskaction-operator against the real control plane and PostgreSQL.

    make bench                                   # sizes 1,000 and 10,000 (long on 2 cores)
    .venv/bin/python benchmarks/bench_operator.py --quick          # smoke run, ~3 minutes
    .venv/bin/python benchmarks/bench_operator.py --actions 1000 --rate 200

Needs ``KUBECONFIG`` and ``TASKACTION_DATABASE_URL`` (``make bench`` sets both; otherwise the
checkout's ``.local/cluster/kubeconfig`` and ``.local/db/dsn`` are used).

For every size N it runs, each phase with a fresh operator process in a fresh namespace and rows under
a project of its own (``bench-<stamp>-<phase>``):

* ``rate``: the load generator plays Flyte's executor for N/run-size runs (trees a0 → children →
  grandchildren), creating each action when its parent is RUNNING and moving it QUEUED → INITIALIZING
  → RUNNING → SUCCEEDED (every tenth FAILED) by status patches at an offered ``--rate`` transitions/s;
* ``full``: the same at full speed, with a bare watch client (another process) on the same namespace,
  then a replay of the same events to the bare watch client alone;
* ``bare-db``: a bare psycopg loop committing the same rows (no operator, no Kubernetes);
* ``ceiling`` (first): the offered-rate workload with no operator at all, the bare watch client its only
  reader: what the machine delivers, and the lag floor, when the operator takes no share of the cores.

``--rate-only`` runs the ceiling and rate phases alone (for iterating on lag and memory).

After the first size: ``noguard`` (full speed, ``TASKACTION_RECORD_GUARD=false``), ``abort`` (one
run of ``--abort-size`` actions, ``ActionRepo.abort_run``, time until every row is ABORTED or terminal
and every TaskAction is gone) and ``profile`` (full speed under py-spy; not used for the figures).

Figures are printed as a table and saved as JSON (``--out``, default ``.local/bench/latest.json``), with
the git commit they were measured on. Every phase deletes its namespace; its rows stay, under its
own project name. See benchmarks/RESULTS.md for how each figure is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import apiserver, bare_db, dbwatch
from _bench.generator import LoadGenerator
from _bench.operator_proc import OperatorProcess, metric_sum
from _bench.profile import top_frames
from _bench.rawapi import RawApi
from _bench.stats import first_at_or_after, percentile, rate_from_times, steady_rate, summary
from _bench.workload import DOMAIN, TERMINAL, Node, run_tree, workload
from kubernetes.client.exceptions import ApiException

from taskaction_operator.crd.names import GROUP, PLURAL, VERSION
from taskaction_operator.k8s import KubeOps
from taskaction_operator.k8s.errors import KubeError
from taskaction_operator.model import RunId
from taskaction_operator.repo import ActionRepo

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"

TARGETS = {
    "recorded_vs_watch": 0.9,
    "lag_p99_s": 1.0,
    "rss_peak_mb": 250.0,
    "api_writes_per_action_no_guard": 2.0,
    "api_writes_per_action": 3.0,
    "abort_1000_s": 30.0,
}


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


@dataclass
class Ctx:
    kubeconfig: str
    dsn: str
    stamp: str
    args: argparse.Namespace
    kube: KubeOps
    out_dir: Path
    api: RawApi
    started: float = field(default_factory=time.monotonic)
    notes: list[str] = field(default_factory=list)

    def operator(self, ns: str, *, guard: bool = True, tag: str = "") -> OperatorProcess:
        """The operator under test for namespace ``ns`` (not started), logging under the artifacts."""
        return OperatorProcess(
            namespace=ns,
            dsn=self.dsn,
            kubeconfig=self.kubeconfig,
            log_path=self.out_dir / f"operator-{ns}{'-' + tag if tag else ''}.log",
            guard=guard,
            plain=self.args.plain_operator,
        )

    def over_budget(self) -> bool:
        return time.monotonic() - self.started > self.args.budget_s


# --------------------------------------------------------------------------------------------------
# Kubernetes helpers (blocking client calls in threads)
# --------------------------------------------------------------------------------------------------
async def cleanup_namespace(kube: KubeOps, ns: str, timeout: float = 300) -> float:
    """Strip finalizers left behind, delete every TaskAction, delete the namespace, wait until gone."""
    t0 = time.monotonic()
    try:
        listed: Any = await asyncio.to_thread(
            kube.custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL
        )
        for item in listed.get("items", []):
            if item["metadata"].get("finalizers"):
                with contextlib.suppress(KubeError):
                    await kube.merge_patch_taskaction(
                        ns, item["metadata"]["name"], {"metadata": {"finalizers": None}}
                    )
        await asyncio.to_thread(
            kube.custom.delete_collection_namespaced_custom_object, GROUP, VERSION, ns, PLURAL
        )
        await asyncio.to_thread(kube.core.delete_namespace, ns)
    except ApiException as exc:
        if exc.status != 404:
            log(f"cleanup of {ns}: {exc.reason}")
    while time.monotonic() - t0 < timeout:
        try:
            await asyncio.to_thread(kube.core.read_namespace, ns)
        except ApiException as exc:
            if exc.status == 404:
                return time.monotonic() - t0
        await asyncio.sleep(1)
    log(f"namespace {ns} still terminating after {timeout:.0f} s")
    return time.monotonic() - t0


async def count_crs(kube: KubeOps, ns: str, selector: str = "") -> bool:
    """Whether any TaskAction is left (a list with limit=1: cheap whatever the count)."""
    res: Any = await asyncio.to_thread(
        kube.custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        ns,
        PLURAL,
        label_selector=selector,
        limit=1,
    )
    return bool((res or {}).get("items"))


# --------------------------------------------------------------------------------------------------
# Waiting for the operator
# --------------------------------------------------------------------------------------------------
async def wait_recorded(poller: dbwatch.CountPoller, expect: int, timeout: float) -> float | None:
    """Time at which the poller first saw ``expect`` event rows; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = poller.latest()
        if latest is not None and latest.events >= expect:
            return latest.t
        await asyncio.sleep(0.25)
    return None


async def quiesce(op: OperatorProcess, timeout: float = 30) -> bool:
    """Until the operator's events, writes and queue stop moving for ~1.5 s (bounded)."""
    deadline = time.monotonic() + timeout
    last: tuple[float, ...] | None = None
    stable = 0
    while time.monotonic() < deadline:
        m = await asyncio.to_thread(op.metrics)
        now = (
            metric_sum(m, "taskaction_events_received_total"),
            metric_sum(m, "taskaction_api_writes_total"),
            metric_sum(m, "taskaction_recorder_queue_depth"),
        )
        stable = stable + 1 if now == last else 0
        if stable >= 3:
            return True
        last = now
        await asyncio.sleep(0.5)
    return False


# --------------------------------------------------------------------------------------------------
# One phase: operator + generator (+ bare watch) on a fresh namespace
# --------------------------------------------------------------------------------------------------
def start_watcher(ctx: Ctx, ns: str, expect: int, timeout: float, tag: str, from_rv: str = "") -> Any:
    out = ctx.out_dir / f"watch-{ns}-{tag}.json"
    ready = ctx.out_dir / f"watch-{ns}-{tag}.ready"
    for p in (out, ready):
        p.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "_bench" / "watcher.py"),
        "--namespace",
        ns,
        "--expect",
        str(expect),
        "--timeout",
        str(timeout),
        "--out",
        str(out),
        "--ready",
        str(ready),
    ]
    if from_rv:
        cmd += ["--from-rv", from_rv]
    env = {**os.environ, "KUBECONFIG": ctx.kubeconfig}
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(out.with_suffix(".log"), "wb"),  # noqa: SIM115 - handed to the child
    )
    return proc, out, ready


async def watcher_ready(watcher: Any, timeout: float = 30) -> None:
    """Until the watcher of :func:`start_watcher` has its watch open (or has exited)."""
    proc, _out, ready = watcher
    for _ in range(int(timeout / 0.1)):
        if ready.exists() or proc.poll() is not None:
            return
        await asyncio.sleep(0.1)


def finish_watcher(proc: Any, out: Path, wait: float) -> dict[str, Any]:
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if not out.exists():
        return {"error": f"no output (exit {proc.returncode})"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def watch_lag(acks: dict[tuple[str, str, int], float], live: dict[str, Any], runs: list[list[Node]]) -> Any:
    """The bare watch client's lag: from each status patch's acknowledgement to the event's arrival
    at a client that does nothing else; the floor under the operator's recording lag."""
    by_cr = {n.cr: (n.run, n.name) for run in runs for n in run}
    lags = []
    for name, phase, t in live.get("arrivals") or ():
        ack = acks.get((*by_cr.get(name, ("", "")), int(phase)))
        if ack is not None:
            lags.append(t - ack)
    return {k: r(v) if isinstance(v, float) else v for k, v in summary(lags).items()}


def lag_figures(
    rows: list[tuple[str, str, int, int, float]],
    acks: dict[tuple[str, str, int], float],
    arrivals: dict[str, list[float]],
) -> dict[str, Any]:
    """Per recorded (action, phase): from the status patch's acknowledgement to (a) the NOTIFY of the
    committing transaction (commit time) and (b) the row's ``updated_at`` (the transaction's start)."""
    commit_lags: list[float] = []
    start_lags: list[float] = []
    by_phase: dict[int, list[float]] = {}
    commit_times: list[float] = []
    no_ack = no_notify = 0
    for run, action, _attempt, phase, updated in rows:
        ack = acks.get((run, action, phase))
        commit = first_at_or_after(arrivals.get(f"{run}/{action}", []), updated, slack=0.001)
        if commit is not None:
            commit_times.append(commit)
        else:
            no_notify += 1
        if ack is None:
            no_ack += 1
            continue
        start_lags.append(updated - ack)
        if commit is not None:
            commit_lags.append(commit - ack)
            by_phase.setdefault(phase, []).append(commit - ack)
    return {
        "commit": {k: r(v) if isinstance(v, float) else v for k, v in summary(commit_lags).items()},
        "txn_start": {k: r(v) if isinstance(v, float) else v for k, v in summary(start_lags).items()},
        "commit_by_phase": {
            str(ph): {"n": len(v), "p50": r(percentile(v, 50)), "p99": r(percentile(v, 99))}
            for ph, v in sorted(by_phase.items())
        },
        "rows_without_ack": no_ack,
        "rows_without_notify": no_notify,
        "commit_times": commit_times,
    }


async def run_phase(
    ctx: Ctx,
    label: str,
    runs: list[list[Node]],
    *,
    rate: float | None,
    guard: bool = True,
    watch: bool = False,
    replay: bool = False,
    profile: bool = False,
) -> dict[str, Any]:
    a = ctx.args
    ns = f"bench-{ctx.stamp}-{label}"
    project = ns
    n = sum(len(run) for run in runs)
    expect = 4 * n
    res: dict[str, Any] = {
        "phase": label,
        "namespace": ns,
        "project": project,
        "actions": n,
        "runs": len(runs),
        "offered_rate": rate,
        "guard": guard,
    }
    log(f"phase {label}: {n} actions in {len(runs)} runs, rate {rate or 'full speed'}, guard {guard}")
    await ctx.kube.ensure_namespace(ns)
    op = ctx.operator(ns, guard=guard)
    watcher: Any = None
    poller = listener = None
    gen_timeout = (expect / rate * 3 + 60) if rate else max(120.0, expect / 40)
    rec_timeout = max(60.0, expect / 40)
    try:
        await asyncio.to_thread(op.start)
        res["operator_pid"] = op.pid
        if watch:
            watcher = start_watcher(ctx, ns, expect, gen_timeout + rec_timeout, "live")
            await watcher_ready(watcher)
        listener = dbwatch.NotifyListener(ctx.dsn, project)
        listener.start()
        listener.ready.wait(30)
        pg0 = await asyncio.to_thread(dbwatch.pg_stats, ctx.dsn)
        api0 = await asyncio.to_thread(apiserver.request_counts, ctx.kubeconfig)
        m0 = await asyncio.to_thread(op.metrics)
        s0 = op.sample()
        poller = dbwatch.CountPoller(ctx.dsn, project, also=op.sample)
        poller.start()
        if profile and not op.start_profile(ctx.out_dir / f"pyspy-{ns}.txt"):
            ctx.notes.append("py-spy not installed: no profile")
        gen = LoadGenerator(ctx.api, ns, project, runs, rate=rate, concurrency=a.concurrency)
        gstats = await gen.run(gen_timeout)
        log(
            f"  generator done: {gstats.patches} patches, {gstats.creates} creates, {gstats.errors} errors "
            f"in {gstats.finished - gstats.started:.1f} s"
        )
        t_rec = await wait_recorded(poller, expect, rec_timeout)
        quiet = await quiesce(op)
        log(
            f"  recorded: {poller.latest().events if poller.latest() else 0}/{expect}"  # type: ignore[union-attr]
            f"{'' if t_rec else ' (TIMED OUT)'}; operator quiet: {quiet}"
        )
        prof_path = op.stop_profile()
        poller.stop()
        listener.stop()
        m1 = await asyncio.to_thread(op.metrics)
        s1 = op.sample()
        api1 = await asyncio.to_thread(apiserver.request_counts, ctx.kubeconfig)
        live = None
        if watcher is not None:
            live = finish_watcher(watcher[0], watcher[1], 30)
        rows = await asyncio.to_thread(dbwatch.event_rows, ctx.dsn, project)
        pg1 = await asyncio.to_thread(dbwatch.pg_stats_settled, ctx.dsn, pg0, len(rows))
        replayed = None
        if replay and live and live.get("start_rv"):
            rp = start_watcher(ctx, ns, expect, 120, "replay", from_rv=live["start_rv"])
            replayed = await asyncio.to_thread(finish_watcher, rp[0], rp[1], 150)
    finally:
        for t in (poller, listener):
            with contextlib.suppress(Exception):
                if t is not None and t.is_alive():
                    t.stop()
        if watcher is not None and watcher[0].poll() is None:
            watcher[0].kill()
        await asyncio.to_thread(op.stop)
        res["cleanup_s"] = r(await cleanup_namespace(ctx.kube, ns), 1)

    res["disrupted"] = bool(
        gstats.errors
        or gstats.timed_out
        or len(rows) < expect
        or (metric_sum(m1, "taskaction_db_errors_total") - metric_sum(m0, "taskaction_db_errors_total"))
        or (live is not None and live.get("error"))
        or poller.reconnects
        or listener.reconnects
    )
    res["db_reconnects"] = {"poller": poller.reconnects, "listener": listener.reconnects}
    # ---- generator ----
    ack_times = sorted(gstats.acks.values())
    res["generator"] = {
        "transitions": gstats.patches,
        "creates": gstats.creates,
        "errors": gstats.errors,
        "error_samples": gstats.error_samples,
        "timed_out": gstats.timed_out,
        "seconds": r(gstats.finished - gstats.started, 2),
        "per_s_overall": r(gstats.patches / (gstats.finished - gstats.started), 1)
        if gstats.finished > gstats.started
        else None,
        "per_s_steady": r(rate_from_times(ack_times), 1),
        "concurrency": a.concurrency,
    }
    # ---- recording ----
    lags = lag_figures(rows, gstats.acks, listener.arrivals)
    commit_times = sorted(lags.pop("commit_times"))
    points = [(s.t, float(s.events)) for s in poller.samples]
    last_commit = commit_times[-1] if commit_times else None
    res["recorded"] = {
        "rows": len(rows),
        "expected": expect,
        "complete": len(rows) >= expect,
        "per_s_steady": r(rate_from_times(commit_times), 1),
        "per_s_poll_slope": r(steady_rate(points, expect), 1),
        "per_s_overall": r(len(rows) / (last_commit - gstats.started), 1)
        if last_commit and last_commit > gstats.started
        else None,
        "last_commit_after_generator_s": r(last_commit - gstats.finished, 2) if last_commit else None,
        "notifications": listener.count,
        "lag_s": lags,
    }
    # ---- operator resources ----
    if s0 and s1:
        cpu = s1.cpu_s - s0.cpu_s
        peak_live = max((x.extra.rss_mb for x in poller.samples if x.extra), default=s1.rss_mb)
        res["operator"] = {
            "cpu_s": r(cpu, 2),
            "cpu_ms_per_transition": r(1000 * cpu / max(1, len(rows)), 3),
            "cpu_share_of_wall": r(cpu / max(1e-9, s1.t - s0.t), 2),
            "rss_peak_mb": r(s1.hwm_mb, 1),
            "rss_end_mb": r(s1.rss_mb, 1),
            "rss_max_sampled_mb": r(peak_live, 1),
            "live_taskactions_at_end": gstats.creates,
        }
    # ---- operator metrics deltas ----

    def d(name: str, **labels: str) -> float:
        return metric_sum(m1, name, **labels) - metric_sum(m0, name, **labels)

    kinds = sorted({dict(lb).get("kind", "") for (nm, lb) in m1 if nm == "taskaction_api_writes_total"})
    writes = d("taskaction_api_writes_total")
    res["operator_metrics"] = {
        "events_received": {
            t: d("taskaction_events_received_total", type=t)
            for t in ("LISTED", "ADDED", "MODIFIED", "DELETED")
        },
        "events_recorded": d("taskaction_events_recorded_total"),
        "api_writes_by_kind": {k: d("taskaction_api_writes_total", kind=k) for k in kinds},
        "api_writes": writes,
        "api_writes_per_action": r(writes / n, 3),
        "batches": d("taskaction_batch_rows_count"),
        "rows_per_batch": r(d("taskaction_batch_rows_sum") / max(1, d("taskaction_batch_rows_count")), 1),
        "db_errors": d("taskaction_db_errors_total"),
        "kubeops_reads": d("bench_kubeops_reads_total"),
        "kubeops_writes": d("bench_kubeops_writes_total"),
    }
    stmts = d("bench_repo_statements_total")
    txns = d("bench_repo_transactions_total")
    pgd = dbwatch.pg_delta(pg0, pg1)
    res["database"] = {
        "statements": stmts,
        "transactions": txns,
        "statements_per_transition": r(stmts / max(1, len(rows)), 3) if stmts else None,
        "transactions_per_transition": r(txns / max(1, len(rows)), 4) if txns else None,
        "pg_stat_delta": pgd,
        "pg_xact_commit_per_transition": r(pgd["xact_commit"] / max(1, len(rows)), 3),
        "pg_tuples_written_per_transition": r(
            (pgd["actions.ins"] + pgd["actions.upd"] + pgd["action_events.ins"]) / max(1, len(rows)), 3
        ),
    }
    # ---- API server's view ----
    api = apiserver.delta(api0, api1)
    own = {("POST", GROUP, PLURAL, ""): gstats.creates, ("PATCH", GROUP, PLURAL, "status"): gstats.patches}
    if watch:
        own[("LIST", GROUP, PLURAL, "")] = 1
    op_req = {
        f"{v} {res_}{'/' + sub if sub else ''}": c - own.get((v, g, res_, sub), 0)
        for (v, g, res_, sub), c in api.items()
    }
    relevant = (PLURAL, "events", "leases")
    op_req = {k: c for k, c in op_req.items() if c > 0 and k.split()[1].split("/")[0] in relevant}
    op_writes = sum(c for k, c in op_req.items() if k.split()[0] in {"POST", "PUT", "PATCH", "DELETE"})
    op_reads = sum(c for k, c in op_req.items() if k.split()[0] in {"GET", "LIST"})
    res["apiserver"] = {
        "requests_not_by_generator": op_req,
        "taskaction_patches_per_action": r(op_req.get(f"PATCH {PLURAL}", 0) / n, 3),
        "writes_per_action": r(op_writes / n, 3),
        "reads_per_action": r(op_reads / n, 3),
        "note": "deltas of apiserver_request_total minus the generator's own calls; WATCH requests are "
        "counted when they end; other clients of the shared API server would show up here too",
    }
    # ---- bare watch ----
    if live is not None:
        times = live.get("times") or []
        res["bare_watch"] = {
            "transitions": live.get("transitions"),
            "events": live.get("events"),
            "per_s_steady": r(rate_from_times(times), 1),
            "lag_s": watch_lag(gstats.acks, live, runs),
            "error": live.get("error"),
        }
    if replayed is not None:
        times = replayed.get("times") or []
        span = (replayed.get("last_event", 0) - replayed.get("first_event", 0)) or None
        res["bare_watch_replay"] = {
            "transitions": replayed.get("transitions"),
            "events": replayed.get("events"),
            "per_s_steady": r(rate_from_times(times), 1),
            "events_per_s": r(replayed.get("events", 0) / span, 1) if span else None,
            "error": replayed.get("error"),
        }
    if prof_path is not None:
        res["profile"] = {"file": str(prof_path), **top_frames(prof_path)}
    return res


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
        cleanup_s = await cleanup_namespace(ctx.kube, ns)
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


# --------------------------------------------------------------------------------------------------
# Abort of one run
# --------------------------------------------------------------------------------------------------
async def abort_phase(ctx: Ctx, size: int) -> dict[str, Any]:
    label = f"abort{size}"
    ns = f"bench-{ctx.stamp}-{label}"
    project = ns
    run_name = "r0000"
    nodes = run_tree(run_name, size)
    log(f"phase {label}: one run of {size} actions, driven part-way, then abort_run")

    def stop_at(node: Node) -> int:
        if node.parent is None or node.children:
            return 3  # a0 and children RUNNING
        return {0: 1, 1: 1, 2: 3, 3: 3, 4: 4}[node.index % 5]  # QUEUED, RUNNING, some ended

    res: dict[str, Any] = {"phase": label, "namespace": ns, "project": project, "actions": size}
    await ctx.kube.ensure_namespace(ns)
    op = ctx.operator(ns)
    repo = None
    try:
        await asyncio.to_thread(op.start)
        repo = await ActionRepo.connect(ctx.dsn)
        gen = LoadGenerator(
            ctx.api, ns, project, [nodes], rate=None, concurrency=ctx.args.concurrency, stop_at=stop_at
        )
        planned = gen.transitions_planned
        gstats = await gen.run(300)
        poller = dbwatch.CountPoller(ctx.dsn, project)
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
        before = await asyncio.to_thread(dbwatch.action_phases, ctx.dsn, project, run_name)
        res["before"] = {
            "phases": before,
            "owned": owned,
            "generator_errors": gstats.errors,
            "transitions": gstats.patches,
        }
        m0 = await asyncio.to_thread(op.metrics)
        api0 = await asyncio.to_thread(apiserver.request_counts, ctx.kubeconfig)
        t0 = time.time()
        await repo.abort_run(RunId(project, DOMAIN, run_name), "benchmark abort")
        t_db = t_crs = None
        deadline = time.monotonic() + ctx.args.abort_timeout
        terminal = ",".join(str(p) for p in TERMINAL)
        while time.monotonic() < deadline and (t_db is None or t_crs is None):
            if t_db is None:
                phases = await asyncio.to_thread(dbwatch.action_phases, ctx.dsn, project, run_name)
                open_rows = sum(c for p, c in phases.items() if str(p) not in terminal.split(","))
                if open_rows == 0 and sum(phases.values()) == size:
                    t_db = time.time()
            if t_crs is None and not await count_crs(ctx.kube, ns, f"flyte.org/run={run_name}"):
                t_crs = time.time()
            await asyncio.sleep(0.25)
        after = await asyncio.to_thread(dbwatch.action_phases, ctx.dsn, project, run_name)
        await quiesce(op, timeout=10)
        m1 = await asyncio.to_thread(op.metrics)
        api1 = await asyncio.to_thread(apiserver.request_counts, ctx.kubeconfig)
        res["after"] = {"phases": after}
        res["db_all_ended_s"] = r(t_db - t0, 2) if t_db else None
        res["crs_gone_s"] = r(t_crs - t0, 2) if t_crs else None
        res["abort_s"] = r(max(t_db, t_crs) - t0, 2) if t_db and t_crs else None
        res["timed_out"] = res["abort_s"] is None
        res["aborted_rows"] = after.get(7, 0)
        res["abort_attempts"] = {
            k: metric_sum(m1, "taskaction_abort_attempts_total", outcome=k)
            - metric_sum(m0, "taskaction_abort_attempts_total", outcome=k)
            for k in ("cleared", "retry", "gave_up")
        }
        res["deleted_events"] = metric_sum(
            m1, "taskaction_events_received_total", type="DELETED"
        ) - metric_sum(m0, "taskaction_events_received_total", type="DELETED")
        res["apiserver_delta"] = {
            f"{v} {rs}{'/' + s if s else ''}": c for (v, g, rs, s), c in apiserver.delta(api0, api1).items()
        }
    finally:
        if repo is not None:
            await repo.close()
        await asyncio.to_thread(op.stop)
        res["cleanup_s"] = r(await cleanup_namespace(ctx.kube, ns), 1)
    return res


# --------------------------------------------------------------------------------------------------
# Restart over many live, unfinished TaskActions
# --------------------------------------------------------------------------------------------------
async def restart_phase(ctx: Ctx, size: int) -> dict[str, Any]:
    """N actions driven to RUNNING (nothing finished, so nothing is filtered out of the watch), the
    operator that recorded them stopped, a fresh one started: how long it takes to list and re-check
    all N, at what peak RSS and CPU, and that the records did not change."""
    label = f"n{size}-restart"
    ns = f"bench-{ctx.stamp}-{label}"
    project = ns
    runs = workload(size, ctx.args.run_size)
    log(f"phase {label}: {size} actions driven to RUNNING, then a fresh operator over them")
    res: dict[str, Any] = {"phase": label, "namespace": ns, "project": project, "actions": size}
    await ctx.kube.ensure_namespace(ns)

    first, second = ctx.operator(ns, tag="first"), ctx.operator(ns, tag="second")
    try:
        await asyncio.to_thread(first.start)
        gen = LoadGenerator(
            ctx.api, ns, project, runs, rate=None, concurrency=ctx.args.concurrency, stop_at=lambda n: 3
        )
        planned = gen.transitions_planned
        gstats = await gen.run(max(300.0, planned / 20))
        poller = dbwatch.CountPoller(ctx.dsn, project)
        poller.start()
        try:
            recorded = await wait_recorded(poller, planned, max(120.0, planned / 40))
        finally:
            poller.stop()
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
            m = await asyncio.to_thread(second.metrics)
            if metric_sum(m, "taskaction_events_received_total", type="LISTED") >= size:
                listed_at = time.monotonic() - t0
                break
            await asyncio.sleep(0.25)
        await quiesce(second)
        caught_up = time.monotonic() - t0
        s1 = second.sample()
        m1 = await asyncio.to_thread(second.metrics)
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
        res["cleanup_s"] = r(await cleanup_namespace(ctx.kube, ns), 1)
    return res


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------
def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout

    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    untracked = [
        line[3:]
        for line in git("status", "--porcelain").splitlines()
        if line.startswith("??") and line[3:].startswith("taskaction_operator/")
    ]
    return {
        "commit": git("rev-parse", "HEAD").strip(),
        "dirty": bool(dirty or untracked),
        "dirty_paths": dirty + untracked,
    }


def verdict(value: float | None, target: float, *, at_least: bool = False) -> str:
    if value is None:
        return "n/a"
    return "PASS" if (value >= target if at_least else value < target) else "MISS"


def headline(report: dict[str, Any]) -> dict[str, Any]:
    sizes: dict[str, Any] = report["sizes"]
    measured = sorted(int(k) for k, v in sizes.items() if v.get("full") or v.get("rate"))
    big = str(measured[-1]) if measured else None
    full = sizes[big].get("full") or {} if big else {}
    ratep = sizes[big].get("rate", {}) if big else {}
    rec = (full.get("recorded") or {}).get("per_s_steady")
    watch = (full.get("bare_watch") or {}).get("per_s_steady")
    replay = (full.get("bare_watch_replay") or {}).get("per_s_steady")
    bdb = (sizes[big].get("bare_db") or {}).get("per_s") if big else None
    lag = ((ratep.get("recorded") or {}).get("lag_s") or {}).get("commit", {})
    rss = (
        max(
            (p.get("operator", {}).get("rss_peak_mb") or 0)
            for p in (sizes[big].get("full", {}), sizes[big].get("rate", {}))
        )
        if big
        else None
    )
    noguard = report.get("noguard") or {}
    abort = report.get("abort") or {}
    restart = (sizes[big].get("restart") or {}).get("second") or {} if big else {}
    ceiling = sizes[big].get("ceiling") or {} if big else {}
    return {
        "size": int(big) if big else None,
        "recorded_per_s": rec,
        "bare_watch_per_s": watch,
        "bare_watch_replay_per_s": replay,
        "bare_db_per_s": bdb,
        "recorded_vs_watch": r(rec / watch, 3) if rec and watch else None,
        "recorded_vs_watch_replay": r(rec / replay, 3) if rec and replay else None,
        "recorded_vs_db": r(rec / bdb, 3) if rec and bdb else None,
        "generator_per_s": (full.get("generator") or {}).get("per_s_steady"),
        "lag_p50_s": lag.get("p50"),
        "lag_p99_s": lag.get("p99"),
        "lag_max_s": lag.get("max"),
        "watch_lag_p50_s": ((ratep.get("bare_watch") or {}).get("lag_s") or {}).get("p50"),
        "watch_lag_p99_s": ((ratep.get("bare_watch") or {}).get("lag_s") or {}).get("p99"),
        "ceiling_achieved_per_s": ceiling.get("generator_per_s_steady"),
        "ceiling_watch_lag_p50_s": (ceiling.get("bare_watch_lag_s") or {}).get("p50"),
        "ceiling_watch_lag_p99_s": (ceiling.get("bare_watch_lag_s") or {}).get("p99"),
        "restart_rss_peak_mb": restart.get("rss_peak_mb"),
        "restart_quiet_s": restart.get("quiet_s"),
        "restart_records_unchanged": restart.get("records_unchanged"),
        "rate_achieved_per_s": (ratep.get("generator") or {}).get("per_s_steady"),
        "rss_peak_mb": rss or None,
        "cpu_ms_per_transition": (full.get("operator") or {}).get("cpu_ms_per_transition"),
        "api_writes_per_action": (full.get("operator_metrics") or {}).get("api_writes_per_action"),
        "api_writes_per_action_no_guard": (noguard.get("operator_metrics") or {}).get(
            "api_writes_per_action"
        ),
        "apiserver_patches_per_action": (full.get("apiserver") or {}).get("taskaction_patches_per_action"),
        "apiserver_patches_per_action_no_guard": (noguard.get("apiserver") or {}).get(
            "taskaction_patches_per_action"
        ),
        "statements_per_transition": (full.get("database") or {}).get("statements_per_transition"),
        "abort_1000_s": abort.get("abort_s") if abort.get("actions") == 1000 else None,
        "abort_s": abort.get("abort_s"),
        "abort_size": abort.get("actions"),
    }


def _pair(a: Any, b: Any) -> str | None:
    return None if a is None and b is None else f"{a} / {b}"


def print_table(report: dict[str, Any]) -> None:
    h = report["headline"]
    size = h["size"]
    ten_k = size is not None and size >= 10000
    rows = [
        ("size (actions) of the headline figures", size, "", ""),
        ("generator achieved, full speed (transitions/s)", h["generator_per_s"], "", ""),
        ("recorded, full speed (transitions/s)", h["recorded_per_s"], "", ""),
        ("bare watch, same run (transitions/s)", h["bare_watch_per_s"], "", ""),
        ("bare watch, replay alone (transitions/s)", h["bare_watch_replay_per_s"], "", ""),
        ("bare psycopg loop (transitions/s)", h["bare_db_per_s"], "", ""),
        (
            "recorded / bare watch",
            h["recorded_vs_watch"],
            ">= 0.9 at 10,000",
            verdict(h["recorded_vs_watch"], 0.9, at_least=True) if ten_k else "n/a (<10,000)",
        ),
        ("recorded / bare watch replay", h["recorded_vs_watch_replay"], "", ""),
        ("recorded / bare db", h["recorded_vs_db"], "", ""),
        (f"offered {report['args']['rate']}/s: achieved (transitions/s)", h["rate_achieved_per_s"], "", ""),
        ("lag p50 at offered rate (s)", h["lag_p50_s"], "", ""),
        ("lag p99 at offered rate (s)", h["lag_p99_s"], "< 1 s", verdict(h["lag_p99_s"], 1.0)),
        ("lag max at offered rate (s)", h["lag_max_s"], "", ""),
        (
            "  bare watch client's lag p50 / p99, same run (s)",
            _pair(h["watch_lag_p50_s"], h["watch_lag_p99_s"]),
            "",
            "",
        ),
        (
            f"  no operator at all, offered {report['args']['rate']}/s: achieved (transitions/s)",
            h["ceiling_achieved_per_s"],
            "",
            "",
        ),
        (
            "  no operator at all: bare watch client's lag p50 / p99 (s)",
            _pair(h["ceiling_watch_lag_p50_s"], h["ceiling_watch_lag_p99_s"]),
            "",
            "",
        ),
        (
            "operator peak RSS (MB)",
            h["rss_peak_mb"],
            "< 250 MB at 10,000 live",
            verdict(h["rss_peak_mb"], 250.0) if ten_k else "n/a (<10,000)",
        ),
        (
            f"restart over {size} live unfinished: peak RSS (MB)",
            h["restart_rss_peak_mb"],
            "< 250 MB at 10,000 live",
            verdict(h["restart_rss_peak_mb"], 250.0) if ten_k else "n/a (<10,000)",
        ),
        (
            "  restart: all re-checked and quiet after (s); records unchanged",
            _pair(h["restart_quiet_s"], h["restart_records_unchanged"]),
            "",
            "",
        ),
        ("operator CPU per transition, full speed (ms)", h["cpu_ms_per_transition"], "", ""),
        ("DB statements per transition, full speed", h["statements_per_transition"], "", ""),
        (
            "operator API writes per action (guard on)",
            h["api_writes_per_action"],
            "<= 3",
            verdict(h["api_writes_per_action"], 3.0001),
        ),
        (
            "operator API writes per action (guard off)",
            h["api_writes_per_action_no_guard"],
            "<= 2",
            verdict(h["api_writes_per_action_no_guard"], 2.0001),
        ),
        ("  TaskAction PATCHes at the API server / action (on)", h["apiserver_patches_per_action"], "", ""),
        (
            "  TaskAction PATCHes at the API server / action (off)",
            h["apiserver_patches_per_action_no_guard"],
            "",
            "",
        ),
        (
            f"abort of a {h['abort_size']}-action run fully recorded (s)",
            h["abort_s"],
            "< 30 s",
            verdict(h["abort_s"], 30.0) if h["abort_size"] == 1000 else "n/a (not 1,000)",
        ),
    ]
    w = max(len(x[0]) for x in rows)
    print(
        f"\ntaskaction-operator benchmark — commit {report['git']['commit'][:12]}"
        f"{' (dirty)' if report['git']['dirty'] else ''}, {report['started']}"
    )
    print(f"{'figure'.ljust(w)}  {'value':>10}  {'target':<24} result")
    for name, value, target, res in rows:
        v = (
            "—"
            if value is None
            else (f"{value:.3f}" if isinstance(value, float) and value < 10 else f"{value}")
        )
        print(f"{name.ljust(w)}  {v:>10}  {target:<24} {res}")
    print("\nper size:")
    for size_s, phases in report["sizes"].items():
        for ph in ("rate", "full"):
            p = phases.get(ph)
            if not p:
                continue
            g, rec, op = p["generator"], p["recorded"], p.get("operator", {})
            print(
                f"  {size_s:>6} {ph:<5} gen {g['per_s_steady']}/s  recorded {rec['per_s_steady']}/s "
                f"({rec['rows']}/{rec['expected']})  lag p50/p99/max {rec['lag_s']['commit']['p50']}/"
                f"{rec['lag_s']['commit']['p99']}/{rec['lag_s']['commit']['max']} s  "
                f"cpu {op.get('cpu_s')} s  rss {op.get('rss_peak_mb')} MB  "
                f"writes/action {p['operator_metrics']['api_writes_per_action']}  "
                f"watch {(p.get('bare_watch') or {}).get('per_s_steady')}/s "
                f"watch lag p99 {((p.get('bare_watch') or {}).get('lag_s') or {}).get('p99')} s"
            )
        c = phases.get("ceiling")
        if c:
            print(
                f"  {size_s:>6} ceiling (no operator) gen {c['generator_per_s_steady']}/s  "
                f"watch {c['bare_watch_per_s_steady']}/s  watch lag p50/p99/max "
                f"{c['bare_watch_lag_s'].get('p50')}/{c['bare_watch_lag_s'].get('p99')}/"
                f"{c['bare_watch_lag_s'].get('max')} s"
            )
        rs = (phases.get("restart") or {}).get("second")
        if rs:
            print(
                f"  {size_s:>6} restart  listed {rs['listed']} quiet after {rs['quiet_s']} s  "
                f"rss {rs['rss_peak_mb']} MB  cpu {rs['cpu_s']} s  writes {rs['api_writes']}  "
                f"records unchanged {rs['records_unchanged']}"
            )
        if phases.get("bare_db"):
            print(
                f"  {size_s:>6} bare-db {phases['bare_db']['per_s']}/s (batch {phases['bare_db']['batch']})"
            )
    for note in report.get("notes", []):
        print(f"note: {note}")


# --------------------------------------------------------------------------------------------------
async def main_async(args: argparse.Namespace, report: dict[str, Any]) -> None:
    kubeconfig = os.environ.get("KUBECONFIG") or str(LOCAL / "cluster" / "kubeconfig")
    dsn = os.environ.get("TASKACTION_DATABASE_URL") or (LOCAL / "db" / "dsn").read_text().strip()
    os.environ["KUBECONFIG"] = kubeconfig
    stamp = datetime.now().strftime("%m%d%H%M%S")
    out_dir = LOCAL / "bench" / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    kube = KubeOps.from_kubeconfig(kubeconfig)
    api = RawApi(kube.api_client.configuration, args.concurrency)
    ctx = Ctx(kubeconfig, dsn, stamp, args, kube, out_dir, api)
    report.update(
        {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "git": git_state(),
            "host": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_start": os.getloadavg(),
            },
            "args": {k: v for k, v in vars(args).items()},
            "artifacts": str(out_dir),
            "sizes": {},
        }
    )
    sizes = [int(x) for x in args.actions.split(",") if x.strip()]
    await api.__aenter__()
    try:
        for i, size in enumerate(sizes):
            if ctx.over_budget():
                ctx.notes.append(f"size {size} skipped: time budget of {args.budget_s:.0f} s used up")
                continue
            entry: dict[str, Any] = {}
            report["sizes"][str(size)] = entry
            runs = workload(size, args.run_size)
            if not args.no_ceiling:
                entry["ceiling"] = await ceiling_phase(ctx, size, runs, args.rate)
            entry["rate"] = await run_phase(ctx, f"n{size}-rate", runs, rate=args.rate, watch=True)
            if args.rate_only:
                continue
            entry["full"] = await run_phase(
                ctx, f"n{size}-full", runs, rate=None, watch=True, replay=not args.no_replay
            )
            if not args.no_restart:
                entry["restart"] = await restart_phase(ctx, size)
            log(f"phase bare-db {size}")
            entry["bare_db"] = await asyncio.to_thread(
                bare_db.run, dsn, f"bench-{stamp}-n{size}-baredb", runs, batch=args.bare_db_batch
            )
            if i == 0:
                if not args.no_guard_off:
                    report["noguard"] = await run_phase(ctx, f"n{size}-noguard", runs, rate=None, guard=False)
                if args.abort_size:
                    report["abort"] = await abort_phase(ctx, args.abort_size)
                if not args.no_profile:
                    prof_runs = workload(args.profile_size or size, args.run_size)
                    report["profile"] = await run_phase(ctx, "profile", prof_runs, rate=None, profile=True)
    finally:
        await api.__aexit__(None, None, None)
        kube.close()
        report["notes"] = ctx.notes
        report["host"]["loadavg_end"] = os.getloadavg()
        report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        report["headline"] = headline(report)
        report.update({k: v for k, v in report["headline"].items() if k != "size"})
        report["commit"] = report["git"]["commit"]
        report["dirty"] = report["git"]["dirty"]
        report["targets"] = TARGETS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--actions", default="1000,10000", help="sizes, comma-separated (default 1000,10000)")
    ap.add_argument("--rate", type=float, default=200.0, help="offered transitions/s of the rate phase")
    ap.add_argument("--run-size", type=int, default=100, help="actions per run (default 100)")
    ap.add_argument("--concurrency", type=int, default=32, help="generator requests in flight (default 32)")
    ap.add_argument("--abort-size", type=int, default=1000, help="actions of the aborted run (0: skip)")
    ap.add_argument("--abort-timeout", type=float, default=300.0)
    ap.add_argument("--bare-db-batch", type=int, default=100, help="transitions per bare-loop transaction")
    ap.add_argument(
        "--profile-size", type=int, default=0, help="actions of the py-spy pass (default: first size)"
    )
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument(
        "--no-guard-off", action="store_true", help="skip the TASKACTION_RECORD_GUARD=false phase"
    )
    ap.add_argument("--no-replay", action="store_true", help="skip the bare watch replay")
    ap.add_argument(
        "--no-restart", action="store_true", help="skip the restart over N live unfinished actions"
    )
    ap.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip the offered-rate workload without an operator (the lag floor)",
    )
    ap.add_argument(
        "--rate-only",
        action="store_true",
        help="only the offered-rate phases (and the ceiling): for iterating on lag and memory",
    )
    ap.add_argument(
        "--plain-operator",
        action="store_true",
        help="run `python -m taskaction_operator run` (no in-process statement counters)",
    )
    ap.add_argument("--budget-s", type=float, default=5400.0, help="skip sizes that start after this many s")
    ap.add_argument("--quick", action="store_true", help="smoke run: 200 actions, runs of 20, abort of 200")
    ap.add_argument("--out", default=str(LOCAL / "bench" / "latest.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.actions, args.run_size, args.abort_size = "200", 20, 200
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report: dict[str, Any] = {}
    try:
        asyncio.run(main_async(args, report))
    finally:
        if report:
            text = json.dumps(report, indent=2, default=str)
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            Path(report["artifacts"], "report.json").write_text(text)
    print_table(report)
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
