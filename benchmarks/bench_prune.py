"""Benchmark of retention: ``ActionRepo.prune_runs`` on a large table while a recorder writes.

    .venv/bin/python benchmarks/bench_prune.py --dsn postgresql://postgres@127.0.0.1:PORT/taskaction

Seeds ``--actions`` actions (1,000,000 by default) in runs of ``--run-size`` (a0 and its children;
two events per action, a state row per root) with COPY: 80 % of the runs finished in January (they
go), 10 % as old but with one child still RUNNING (they stay, and the writer keeps updating that
child), 10 % finished today (they stay). Then a recorder-like writer calls ``record_batch`` at a
steady pace (``--write-rate`` batches/s, each: new actions of a live project, their events, and phase
updates of the old runs' running children), first alone (the baseline), then while ``prune_runs``
deletes the old runs. Prints rows/s pruned, per-transaction times, and the writer's latency in both
phases. Works in a database of its own (``<db>_prune``), dropped afterwards unless ``--keep``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from _bench.benchdb import bench_dsn, bench_parser, drop_bench_db
from _bench.stats import percentile

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import Action, ActionEvent, ActionRepo, PhaseUpdate, PruneResult, upgrade

P = ActionPhase
OLD = datetime(2026, 1, 1, tzinfo=UTC)
PROJECT, LIVE, DOMAIN = "bench-prune", "bench-live", "development"
ACTION_COLS = (
    "project, domain, run_name, name, parent_action_name, phase, action_details, created_at, updated_at,"
    " ended_at, attempts"
)
EVENT_COLS = (
    "project, domain, run_name, name, attempt, phase, version, info, error_kind, created_at, updated_at"
)


def kind_of(r: int) -> str:
    """What run ``r`` is: ``old`` (finished in January: goes), ``busy`` (old, a child RUNNING), ``new``."""
    return "busy" if r % 10 == 8 else "new" if r % 10 == 9 else "old"


def busy_child(r: int) -> ActionId:
    return ActionId(RunId(PROJECT, DOMAIN, f"run{r:07d}"), "n1")


def seed(dsn: str, actions: int, run_size: int) -> int:
    """COPY the rows; returns the number of runs."""
    runs = actions // run_size
    now = datetime.now(UTC)
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        for table in ("action_events", "taskaction_action_states", "actions"):
            conn.execute(f"TRUNCATE {table} CASCADE")
        with conn.cursor() as cur, cur.copy(f"COPY actions ({ACTION_COLS}) FROM STDIN") as copy:
            for r in range(runs):
                kind, name = kind_of(r), f"run{r:07d}"
                end = now if kind == "new" else OLD + timedelta(seconds=r)
                for i in range(run_size):
                    running = kind == "busy" and i == 1
                    phase = P.RUNNING if running else P.SUCCEEDED
                    child, parent = (f"n{i}", "a0") if i else ("a0", None)
                    copy.write_row((PROJECT, DOMAIN, name, child, parent, int(phase),
                                    b"{}", end, end, None if running else end, 1))  # fmt: skip
        with conn.cursor() as cur, cur.copy(f"COPY action_events ({EVENT_COLS}) FROM STDIN") as copy:
            for r in range(runs):
                end = now if kind_of(r) == "new" else OLD + timedelta(seconds=r)
                for i in range(run_size):
                    for phase in (P.QUEUED, P.RUNNING):
                        copy.write_row((PROJECT, DOMAIN, f"run{r:07d}", "a0" if i == 0 else f"n{i}", 1,
                                        int(phase), 0, b"x" * 48, None, end, end))  # fmt: skip
        conn.execute(
            "INSERT INTO taskaction_action_states (project, domain, run_name, name, state)"
            " SELECT project, domain, run_name, name, '{}' FROM actions WHERE parent_action_name IS NULL"
        )
        conn.commit()
        for table in ("actions", "action_events", "taskaction_action_states"):
            conn.execute(f"ANALYZE {table}")
        conn.commit()
    took = time.perf_counter() - started
    print(f"seed: {runs * run_size:,} actions, {runs * run_size * 2:,} events, {runs:,} runs in {took:.0f} s")
    return runs


class Writer:
    """record_batch at a steady pace; each call's latency, by phase."""

    def __init__(self, repo: ActionRepo, runs: int, rate: float, batch: int) -> None:
        self.repo, self.rate, self.batch = repo, rate, batch
        self.busy = [busy_child(r) for r in range(runs) if kind_of(r) == "busy"]
        self.latencies: dict[str, list[float]] = {}
        self.phase = "baseline"
        self.n = 0

    def next_batch(self) -> dict[str, Any]:
        self.n += 1
        rid = RunId(LIVE, DOMAIN, f"live{self.n:07d}")
        actions = [Action.new(ActionId(rid, "a0"), phase=P.RUNNING)]
        actions += [
            Action.new(ActionId(rid, f"n{i}"), phase=P.RUNNING, parent_action_name="a0")
            for i in range(1, self.batch)
        ]
        events = [ActionEvent(LIVE, DOMAIN, rid.name, a.name, 1, P.RUNNING, 0) for a in actions]
        touched = [self.busy[(self.n * 5 + k) % len(self.busy)] for k in range(5)] if self.busy else []
        updates = [PhaseUpdate(aid, P.RUNNING, 1, 0) for aid in touched]
        return {"actions": actions, "events": events, "updates": updates, "derived": True}

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not stop.is_set():
            kwargs = self.next_batch()
            t = time.perf_counter()
            await self.repo.record_batch(**kwargs)
            self.latencies.setdefault(self.phase, []).append((time.perf_counter() - t) * 1000)
            next_at += 1 / self.rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))


async def sample_lock_waits(dsn: str, stop: asyncio.Event, samples: list[int]) -> None:
    """Every 50 ms: how many backends of the database wait on a lock (the writer on the pruner)."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            row = await cur.fetchone()
            samples.append(int(row[0]) if row else 0)
            await asyncio.sleep(0.05)


def ms(values: list[float], q: float) -> str:
    v = percentile(values, q)
    return "-" if v is None else f"{v:.1f}"


async def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--actions", type=int, default=1_000_000, help="actions to seed (default 1,000,000)")
    parser.add_argument("--run-size", type=int, default=10, help="actions per run (default 10)")
    parser.add_argument("--runs-per-transaction", type=int, default=100, help="prune batch (default 100)")
    parser.add_argument("--write-rate", type=float, default=20, help="record_batch calls/s (default 20)")
    parser.add_argument("--write-batch", type=int, default=20, help="new actions per call (default 20)")
    parser.add_argument("--baseline", type=float, default=10, help="seconds of writes before pruning")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()

    dsn = bench_dsn(args.dsn, False, suffix="prune")
    try:
        await asyncio.to_thread(upgrade, dsn)
        runs = await asyncio.to_thread(seed, dsn, args.actions, args.run_size)
        writer_repo = await ActionRepo.connect(dsn, pool_size=2)
        prune_repo = await ActionRepo.connect(dsn, pool_size=1)
        writer = Writer(writer_repo, runs, args.write_rate, args.write_batch)
        stop = asyncio.Event()
        writing = asyncio.create_task(writer.run(stop))
        await asyncio.sleep(args.baseline)
        writer.phase = "pruning"
        marks: list[float] = [time.perf_counter()]

        def tick(_: PruneResult) -> None:
            marks.append(time.perf_counter())

        lock_waits: list[int] = []
        sampling_done = asyncio.Event()
        sampling = asyncio.create_task(sample_lock_waits(dsn, sampling_done, lock_waits))
        started = time.perf_counter()
        result = await prune_repo.prune_runs(
            OLD + timedelta(days=60), project=PROJECT, runs_per_transaction=args.runs_per_transaction,
            on_transaction=tick,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        sampling_done.set()
        await sampling
        stop.set()
        await writing
        await writer_repo.close()
        await prune_repo.close()
    finally:
        if not args.keep:
            drop_bench_db(dsn)

    rows = result.actions + result.events
    tx_ms = [(b - a) * 1000 for a, b in itertools.pairwise(marks)]
    expected_runs = sum(1 for r in range(runs) if kind_of(r) == "old")
    print(
        f"pruned {result.runs:,} runs of {expected_runs:,} expected ({result.scanned:,} examined): "
        f"{result.actions:,} actions + {result.events:,} events (+ {result.runs:,} state rows) "
        f"in {elapsed:.1f} s"
    )
    print(
        f"  {result.actions / elapsed:,.0f} actions/s, {rows / elapsed:,.0f} rows/s (actions + events), "
        f"{result.runs / elapsed:,.0f} runs/s; {result.transactions} transactions of "
        f"{args.runs_per_transaction} runs: p50 {ms(tx_ms, 50)} ms, p99 {ms(tx_ms, 99)} ms, "
        f"max {max(tx_ms):.1f} ms"
    )
    print(
        f"record_batch ({args.write_batch} actions + {args.write_batch} events + 5 updates of old runs' "
        f"running children, {args.write_rate:g}/s), latency in ms:"
    )
    print(f"  {'phase':<10} {'calls':>6} {'p50':>7} {'p99':>7} {'max':>7}")
    for phase, values in writer.latencies.items():
        slow = sum(1 for v in values if v > 250)
        print(
            f"  {phase:<10} {len(values):>6} {ms(values, 50):>7} {ms(values, 99):>7} {max(values):>7.1f}"
            f"  ({slow} over 250 ms)"
        )
    waiting = sum(1 for n in lock_waits if n)
    print(f"lock waits while pruning: {waiting} of {len(lock_waits)} samples (every 50 ms) saw one waiting")


if __name__ == "__main__":
    asyncio.run(main())
