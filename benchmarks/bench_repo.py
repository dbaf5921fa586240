"""Benchmark of the repository against raw psycopg, on a real PostgreSQL. Prints a table.

    .venv/bin/python benchmarks/bench_repo.py --dsn postgresql://postgres@127.0.0.1:PORT/taskaction

Writes: rows/s of guarded phase updates (``record_batch(updates=…)``) and of ``insert_events`` at
batch sizes 1, 100 and 1000, side by side, in the same run and interleaved, with raw psycopg on the
same tables: ``executemany`` of the equivalent guarded single-row UPDATE (psycopg pipelines it), and
for events both a binary ``COPY`` (fastest possible, not idempotent) and ``executemany`` of
``INSERT … ON CONFLICT DO NOTHING`` (the same semantics as the repository).

Reads: p50/p99 latency of ``list_actions`` (several shapes, pages of 100) and ``list_events_since``
on ``--rows`` actions (1,000,000 by default) seeded with COPY.

The benchmark works in a database of its own on the same server (``<db>_bench``), created and
migrated on demand and dropped afterwards unless ``--keep`` (a kept seed of the right size is reused).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from _bench import raw_writes
from _bench.benchdb import bench_dsn, bench_parser, drop_bench_db
from _bench.raw_writes import EVENT_COLS

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import (
    KEYSET_SORT,
    Action,
    ActionEvent,
    ActionRepo,
    Filter,
    FilterOp,
    ListActionsRequest,
    PhaseUpdate,
    SortBy,
    upgrade,
)

P = ActionPhase
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH_SIZES = (1, 100, 1000)
RUN_SIZE = 100  # actions per run in the read seed

ACTION_COLS = (
    "project, domain, run_name, name, parent_action_name, phase, run_source, action_type, task_type,"
    " function_name, action_details, created_at, updated_at, attempts, cache_status"
)


# -- setup -------------------------------------------------------------------------------------------
def seed(dsn: str, rows: int, project: str) -> None:
    """``rows`` actions in runs of 100 (a0 plus children), one event each, and 100 'hot' actions
    with 1,000 events each for paging list_events_since. COPY all of it, then ANALYZE."""
    with psycopg.connect(dsn) as conn:
        have = conn.execute("SELECT count(*) FROM actions WHERE project = %s", (project,)).fetchone()
        if have and have[0] == rows:
            print(f"seed: reusing {rows:,} actions in {project}")
            return
        conn.execute("DELETE FROM action_events WHERE project = %s", (project,))
        conn.execute("DELETE FROM actions WHERE project = %s", (project,))
        started = time.perf_counter()
        rng = random.Random(1)
        runs = max(1, rows // RUN_SIZE)
        with conn.cursor() as cur, cur.copy(f"COPY actions ({ACTION_COLS}) FROM STDIN") as copy:
            n = 0
            for r in range(runs):
                base = T0 + timedelta(seconds=r * 60)
                for i in range(RUN_SIZE if r < runs - 1 else rows - n):
                    name = "a0" if i == 0 else f"n{i:03d}"
                    # a third of the children share their run's first instant: ties on created_at
                    created = base + timedelta(seconds=0 if i % 3 == 0 else i)
                    phase = rng.choice((1, 4, 4, 5, 5, 5, 6, 9) if i else (4, 5, 5, 6))
                    copy.write_row(
                        (project, "development", f"run{r:06d}", name, None if i == 0 else "a0", phase,
                         "RUN_SOURCE_CLI" if i == 0 else "", 1, "python", f"fn_{i % 17}", b"{}",
                         created, created, 1, 0)
                    )  # fmt: skip
                    n += 1
        with conn.cursor() as cur, cur.copy(f"COPY action_events ({EVENT_COLS}) FROM STDIN") as copy:
            for r in range(runs):
                for i in range(RUN_SIZE):
                    name = "a0" if i == 0 else f"n{i:03d}"
                    copy.write_row((project, "development", f"run{r:06d}", name, 1, 4, 0, b"x" * 64, None))
            for h in range(min(100, runs)):
                for v in range(1000):
                    copy.write_row(
                        (project, "development", f"run{h:06d}", "a0", 1, 5, v + 1, b"y" * 64, None)
                    )
        conn.commit()
        conn.execute("ANALYZE actions")
        conn.execute("ANALYZE action_events")
        conn.commit()
        print(f"seed: {rows:,} actions and events in {time.perf_counter() - started:.1f}s")


# -- measuring ---------------------------------------------------------------------------------------
async def rate(rows: int, fn: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await fn()
    return rows / (time.perf_counter() - started)


async def interleaved(
    rounds: int, variants: dict[str, Callable[[int], Awaitable[float]]]
) -> dict[str, float]:
    """Run every variant ``rounds`` times, alternating, and keep each one's median rate."""
    seen: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(rounds):
        for name, fn in variants.items():
            seen[name].append(await fn(i))
    return {k: statistics.median(v) for k, v in seen.items()}


async def writes(repo: ActionRepo, dsn: str, batch: int, total: int, rounds: int) -> dict[str, Any]:
    """Phase updates and event inserts of ``total`` rows in batches of ``batch``."""
    project = f"benchw-{uuid.uuid4().hex[:8]}"
    ids = [
        ActionId(RunId(project, "development", f"r{i // RUN_SIZE}"), f"n{i % RUN_SIZE}") for i in range(total)
    ]
    for chunk in range(0, total, 1000):
        await repo.record_batch(actions=[_row(a) for a in ids[chunk : chunk + 1000]])
    batches = [ids[i : i + batch] for i in range(0, total, batch)]
    raw = await psycopg.AsyncConnection.connect(dsn)
    counter = iter(range(1, 10**9))

    async def repo_updates(_: int) -> float:
        attempt = next(counter)

        async def go() -> None:
            for b in batches:
                await repo.record_batch(updates=[PhaseUpdate(a, P.RUNNING, attempt, 0) for a in b])

        return await rate(total, go)

    async def raw_updates(_: int) -> float:
        attempt = next(counter)
        return await rate(total, lambda: raw_writes.updates(raw, batches, attempt))

    version = iter(range(1, 10**9))

    def events_for(b: Sequence[ActionId], v: int) -> list[ActionEvent]:
        return [
            ActionEvent(a.project, a.domain, a.run_name, a.name, 1, P.RUNNING, v, info=b"z" * 64) for a in b
        ]

    async def repo_events(_: int) -> float:
        v = next(version)

        async def go() -> None:
            for b in batches:
                await repo.insert_events(events_for(b, v))

        return await rate(total, go)

    async def raw_events_copy(_: int) -> float:
        v = next(version)
        return await rate(total, lambda: raw_writes.events_copy(raw, batches, v))

    async def raw_events_insert(_: int) -> float:
        v = next(version)
        return await rate(total, lambda: raw_writes.events_insert(raw, batches, v))

    try:
        before = repo.stats.statements
        await repo_updates(0)  # warm-up (prepares statements on the pooled connections)
        stmts_per_row = (repo.stats.statements - before) / total
        await raw_updates(0)
        upd = await interleaved(rounds, {"repo": repo_updates, "raw": raw_updates})
        await repo_events(0)
        await raw_events_insert(0)
        ev = await interleaved(
            rounds, {"repo": repo_events, "raw_copy": raw_events_copy, "raw_insert": raw_events_insert}
        )
    finally:
        await raw.close()
    return {"updates": upd, "events": ev, "stmts_per_update": stmts_per_row}


def _row(aid: ActionId) -> Action:
    return Action.new(aid, parent_action_name=None if aid.name == "n0" else "n0", phase=P.RUNNING)


async def latency(n: int, fn: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    for i in range(min(20, n)):  # warm-up
        await fn(i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await fn(i)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]


async def reads(repo: ActionRepo, rows: int, project: str, n: int) -> dict[str, tuple[float, float]]:
    runs = max(1, rows // RUN_SIZE)
    rng = random.Random(2)

    def some_run() -> RunId:
        return RunId(project, "development", f"run{rng.randrange(runs):06d}")

    async def run_keyset(_: int) -> None:
        # a page after a cursor in the middle of a run (as the snapshot pager's second page)
        r = rng.randrange(runs)
        rid = RunId(project, "development", f"run{r:06d}")
        cursor = (T0 + timedelta(seconds=r * 60), "n050")
        page = await repo.list_actions(
            ListActionsRequest(run=rid, sort_by=KEYSET_SORT, after=cursor, limit=100, max_limit=1000)
        )
        assert 0 < len(page.actions) < RUN_SIZE

    async def run_default(_: int) -> None:
        page = await repo.list_actions(ListActionsRequest(run=some_run(), limit=100))
        assert len(page.actions) == min(100, RUN_SIZE)

    async def runs_newest(_: int) -> None:
        page_offset = rng.choice((0, 100, 500))
        page = await repo.list_actions(
            ListActionsRequest(
                project=(project, "development"), roots_only=True, limit=100,
                sort_by=[SortBy("created_at", descending=True)], offset=page_offset,
            )
        )  # fmt: skip
        assert len(page.actions) == min(100, max(0, runs - page_offset))

    running_fn1 = [Filter.of("phase", FilterOp.EQUAL, 4), Filter.of("function_name", FilterOp.CONTAINS, "_1")]

    async def runs_filtered(_: int) -> None:
        page = await repo.list_actions(
            ListActionsRequest(
                project=(project, "development"), roots_only=True, limit=100, filters=running_fn1,
                sort_by=[SortBy("created_at", descending=True)],
            )
        )  # fmt: skip
        assert page.actions is not None

    async def runs_paused(_: int) -> None:
        page = await repo.list_actions(
            ListActionsRequest(
                project=(project, "development"), roots_only=True, has_paused_action=True, limit=100,
                sort_by=[SortBy("created_at", descending=True)],
            )
        )  # fmt: skip
        assert page.actions is not None

    hot = min(100, runs)

    async def events_since(_: int) -> None:
        aid = ActionId(RunId(project, "development", f"run{rng.randrange(hot):06d}"), "a0")
        got = await repo.list_events_since(aid, 1, T0, offset=rng.randrange(900), limit=100)
        assert len(got) == 100

    return {
        "list_actions: run, keyset page after a cursor": await latency(n, run_keyset),
        "list_actions: run, default order (100)": await latency(n, run_default),
        "list_actions: runs newest first (100, offset 0-500)": await latency(n, runs_newest),
        "list_actions: runs, phase + contains filter (100)": await latency(n, runs_filtered),
        "list_actions: runs with a paused action (100)": await latency(n, runs_paused),
        "list_events_since: page of 100": await latency(n, events_since),
    }


# -- report ------------------------------------------------------------------------------------------
def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="actions to seed for the read benchmark")
    parser.add_argument("--write-rows", type=int, default=2000, help="rows per write measurement")
    parser.add_argument("--samples", type=int, default=300, help="latency samples per read query")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per write figure (median)")
    parser.add_argument("--in-place", action="store_true", help="use --dsn's database itself")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database (and its seed)")
    args = parser.parse_args()

    dsn = bench_dsn(args.dsn, args.in_place)
    await asyncio.to_thread(upgrade, dsn)
    project = f"bench-{args.rows}"
    await asyncio.to_thread(seed, dsn, args.rows, project)
    repo = await ActionRepo.connect(dsn, pool_size=4)
    try:
        rows = [["write (rows/s)", "batch", "repository", "raw baseline", "repo/raw", "raw", "stmts/row"]]
        for batch in BATCH_SIZES:
            total = (
                max(batch * 3, min(args.write_rows, batch * 50)) if batch > 1 else min(args.write_rows, 500)
            )
            w = await writes(repo, dsn, batch, total, args.rounds)
            u, e = w["updates"], w["events"]
            for what, ours, theirs, how, stmts in (
                (
                    "phase updates (record_batch)",
                    u["repo"],
                    u["raw"],
                    "executemany",
                    f"{w['stmts_per_update']:.3f}",
                ),
                ("insert_events", e["repo"], e["raw_insert"], "executemany", ""),
                ("insert_events", e["repo"], e["raw_copy"], "COPY binary", ""),
            ):
                rows.append(
                    [what, str(batch), f"{ours:,.0f}", f"{theirs:,.0f}", f"{theirs / ours:.2f}x", how, stmts]
                )
        print()
        print(table(rows))
        print("  (repo/raw: how many times faster the raw baseline is; target ≤ 1.5x for batches;")
        print(f"   medians of {args.rounds} interleaved rounds; load average {os.getloadavg()[0]:.1f})")
        print()
        lat = await reads(repo, args.rows, project, args.samples)
        rows = [["read latency, ms", "p50", "p99", "p99 < 20 ms"]]
        for name, (p50, p99) in lat.items():
            rows.append([name, f"{p50:.2f}", f"{p99:.2f}", "yes" if p99 < 20 else "NO"])
        print(table(rows))
        print(
            f"  ({args.rows:,} actions, {args.samples} samples each; load average {os.getloadavg()[0]:.1f})"
        )
    finally:
        await repo.close()
        if not args.keep and not args.in_place:
            await asyncio.to_thread(drop_bench_db, dsn)


if __name__ == "__main__":
    asyncio.run(main())
