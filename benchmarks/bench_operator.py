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

``--flyte-recorder CMD_TEMPLATE`` adds a column for Flyte's own recording path: after each ``rate`` and
``full`` phase the same workload runs once more, on a fresh namespace, with Flyte's Go service (runs
service plus the actions service's TaskAction informer, its executor left out) in the operator's place,
recording into a database of its own (``--flyte-dsn``, default: the same server, database
``<name>_flyte``, created if missing). The benchmark writes the service's YAML configuration per phase;
the template's ``{config}``, ``{kubeconfig}``, ``{dsn}``, ``{namespace}`` and ``{port}`` are filled in,
and it must start the service itself (its pid is the one sampled), e.g.
``--flyte-recorder '/path/to/flyte-recorder --config {config}'``. The binary is not part of this
repository (see benchmarks/RESULTS.md, "How to run"). Figures: ``_bench/phases/flyte_run.py``; the
side-by-side table is printed last and saved per size as ``side_by_side``.

``memory`` (after the sizes, at each of ``--memory-sizes``, default 10,000; ``--memory-only`` runs it
alone): N TaskActions created at RUNNING with no operator running, then fresh operators over them, one
at a time: idle (before they exist), first sight (lists, records and patches all N: the peak case),
restart (the same N, recorded), and one per ``--memory-variant NAME:K=V[,K=V]`` (settings as
environment variables; the restart baseline again after each): VmRSS when quiet, VmHWM, smaps_rollup,
and KB per live object over the idle process. ``--memory-diag stats|tracemalloc`` has the launcher
write gc/allocator diagnostics (``benchmarks/_bench/launch_operator.py``).

The generator creates TaskActions as Flyte's executor creates children: a plain create, with neither
the record guard nor an ownerReference. So each operator phase runs the operator with its admission
webhook on (``TASKACTION_WEBHOOK_LISTEN`` on a free port of 127.0.0.1), the path a Flyte cluster's
creations take; ``--no-webhook`` measures the fallback (the operator patches both on first sight).

After the first size: ``noguard`` (full speed, ``TASKACTION_RECORD_GUARD=false``), ``abort`` (one
run of ``--abort-size`` actions, ``ActionRepo.abort_run``, time until every row is ABORTED or terminal
and every TaskAction is gone), ``sharded-R`` for each of ``--shard-replicas`` (R replicas with
``TASKACTION_SHARDS=R`` at full speed: each replica's CPU and events handled, the largest share, the
total recorded rate; then, for the first R, ``sharded-R-kill``: one replica SIGKILLed when half the
transitions are recorded, the survivors' takeover time, every transition recorded and none twice)
and ``profile`` (full speed under py-spy; not used for the figures).

Figures are printed as a table and saved as JSON (``--out``, default ``.local/bench/latest.json``), with
the git commit they were measured on. Every phase deletes its namespace; its rows stay, under its
own project name. See benchmarks/RESULTS.md for how each figure is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import bare_db
from _bench.harness import LOCAL, Ctx, log
from _bench.phases import abort_phase, ceiling_phase, memory_phase, restart_phase, run_phase
from _bench.phases.flyte_run import flyte_dsn, flyte_phase, print_side_by_side, side_by_side
from _bench.phases.memory import print_memory
from _bench.phases.sharded import sharded_phase
from _bench.rawapi import RawApi
from _bench.report import print_table, report_finish, report_start, write_json
from _bench.workload import Node, workload

from taskaction_operator.k8s import KubeOps


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
    if args.flyte_recorder:
        args.flyte_dsn = flyte_dsn(dsn, args.flyte_dsn)
    report.update(report_start(args, out_dir))
    sizes = [] if args.memory_only else [int(x) for x in args.actions.split(",") if x.strip()]
    await api.__aenter__()
    try:
        for i, size in enumerate(sizes):
            if ctx.over_budget():
                ctx.notes.append(f"size {size} skipped: time budget of {args.budget_s:.0f} s used up")
                continue
            entry: dict[str, Any] = {}
            report["sizes"][str(size)] = entry
            runs = workload(size, args.run_size)
            await size_phases(ctx, size, runs, entry)
            if i == 0 and not args.rate_only:
                await first_size_phases(ctx, size, runs, report)
        memory_sizes = [n for n in (int(x) for x in args.memory_sizes.split(",") if x.strip()) if n > 0]
        for size in [] if args.rate_only else memory_sizes:
            if ctx.over_budget() and not args.memory_only:
                ctx.notes.append(f"memory {size} skipped: time budget of {args.budget_s:.0f} s used up")
                continue
            report.setdefault("memory", {})[str(size)] = await memory_phase(ctx, size)
    finally:
        await api.__aexit__(None, None, None)
        kube.close()
        report_finish(report, ctx.notes)


async def size_phases(ctx: Ctx, size: int, runs: list[list[Node]], entry: dict[str, Any]) -> None:
    """The phases run at every size: ceiling, rate, and unless --rate-only full, restart, bare-db."""
    args = ctx.args
    if not args.no_ceiling:
        entry["ceiling"] = await ceiling_phase(ctx, size, runs, args.rate)
    flyte = args.flyte_recorder
    if not args.no_rate:
        entry["rate"] = await run_phase(ctx, f"n{size}-rate", runs, rate=args.rate, watch=True)
        if flyte:
            entry["rate_flyte"] = await flyte_phase(
                ctx, f"n{size}-rate-flyte", runs, rate=args.rate, dsn=args.flyte_dsn
            )
    if not args.rate_only:
        entry["full"] = await run_phase(
            ctx, f"n{size}-full", runs, rate=None, watch=True, replay=not args.no_replay
        )
        if flyte:
            entry["full_flyte"] = await flyte_phase(
                ctx, f"n{size}-full-flyte", runs, rate=None, dsn=args.flyte_dsn
            )
    if flyte:
        entry["side_by_side"] = side_by_side(entry)
    if args.rate_only:
        return
    if not args.no_restart:
        entry["restart"] = await restart_phase(ctx, size)
    log(f"phase bare-db {size}")
    entry["bare_db"] = await asyncio.to_thread(
        bare_db.run, ctx.dsn, f"bench-{ctx.stamp}-n{size}-baredb", runs, batch=args.bare_db_batch
    )


async def first_size_phases(ctx: Ctx, size: int, runs: list[list[Node]], report: dict[str, Any]) -> None:
    """The phases run once, after the first size: noguard, abort, profile."""
    args = ctx.args
    if not args.no_guard_off:
        report["noguard"] = await run_phase(ctx, f"n{size}-noguard", runs, rate=None, guard=False)
    if args.abort_size:
        report["abort"] = await abort_phase(ctx, args.abort_size)
    for i, replicas in enumerate(int(x) for x in args.shard_replicas.split(",") if x.strip() and int(x) > 1):
        sharded = report.setdefault("sharded", {})
        sharded[str(replicas)] = await sharded_phase(ctx, size, runs, replicas, kill=False)
        if i == 0 and not args.no_shard_kill:
            sharded[f"{replicas}-kill"] = await sharded_phase(ctx, size, runs, replicas, kill=True)
    if not args.no_profile:
        prof_runs = workload(args.profile_size or size, args.run_size)
        report["profile"] = await run_phase(ctx, "profile", prof_runs, rate=None, profile=True)


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assigns = text.partition(":")
    env = {k: v for k, v in (a.split("=", 1) for a in assigns.split(",") if a) if k != "X"}
    if not name or not assigns:
        raise argparse.ArgumentTypeError(f"{text!r}: NAME:K=V[,K=V]")
    return name, env


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
        "--no-rate", action="store_true", help="skip the offered-rate phase (writes and CPU come from full)"
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
    ap.add_argument(
        "--no-webhook",
        dest="webhook",
        action="store_false",
        help="operator without its admission webhook: the first-sight patch on every action",
    )
    ap.add_argument(
        "--gen-timeout",
        type=float,
        default=0.0,
        help="seconds the generator may take per phase (default: 3x the offered rate's time + 60, "
        "or 120 at full speed); raise it on a loaded machine",
    )
    ap.add_argument(
        "--memory-sizes",
        default="10000",
        help="sizes of the memory phase over live actions, comma-separated ('' or 0 to skip; default 10000)",
    )
    ap.add_argument("--memory-only", action="store_true", help="only the memory phase")
    ap.add_argument(
        "--memory-variant",
        dest="memory_variants",
        action="append",
        type=_variant,
        default=[],
        metavar="NAME:K=V[,K=V]",
        help="a fresh operator with these environment variables over the same live actions (repeatable)",
    )
    ap.add_argument(
        "--memory-first-variant",
        dest="memory_first_variants",
        action="append",
        type=_variant,
        default=[],
        metavar="NAME:K=V[,K=V]",
        help="after the rest: N created again in a namespace of its own, a first sight with these "
        "environment variables (repeatable; 'base:X=' for none)",
    )
    ap.add_argument(
        "--memory-diag",
        choices=("", "stats", "tracemalloc"),
        default="",
        help="memory diagnostics from the idle, first and restart operators (tracemalloc: two more runs)",
    )
    ap.add_argument(
        "--shard-replicas",
        default="2,3",
        help="replica counts of the sharded phases after the first size (TASKACTION_SHARDS = replicas; "
        "'' or 0 to skip; default 2,3)",
    )
    ap.add_argument(
        "--no-shard-kill", action="store_true", help="skip the sharded phase with a replica killed mid-run"
    )
    ap.add_argument(
        "--flyte-recorder",
        default="",
        metavar="CMD_TEMPLATE",
        help="also run rate and full with Flyte's recorder started by this command ({config}, "
        "{kubeconfig}, {dsn}, {namespace}, {port} filled in)",
    )
    ap.add_argument(
        "--flyte-dsn", default="", help="Flyte's database (default: <database>_flyte, same server)"
    )
    ap.add_argument("--budget-s", type=float, default=5400.0, help="skip sizes that start after this many s")
    ap.add_argument("--quick", action="store_true", help="smoke run: 200 actions, runs of 20, abort of 200")
    ap.add_argument("--out", default=str(LOCAL / "bench" / "latest.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.actions, args.run_size, args.abort_size = "200", 20, 200
        args.memory_sizes = "200" if args.memory_sizes == "10000" else args.memory_sizes
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report: dict[str, Any] = {}
    try:
        asyncio.run(main_async(args, report))
    finally:
        if report:
            write_json(report, Path(args.out))
    if not args.memory_only:
        print_table(report)
    print_memory(report)
    print_side_by_side(report)
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
