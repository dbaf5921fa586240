"""The raw-psycopg baselines of ``benchmarks/bench_repo.py``: the repository's writes done by hand on
the same tables, one transaction per batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from taskaction_operator.model import ActionId

# The repository's single-row semantics written by hand: S is the (possibly moved) start.
_S = "LEAST(created_at, %(start_time)s::timestamptz)"
_END = "%(end_time)s::timestamptz"
RAW_UPDATE = f"""
UPDATE actions SET phase = %(phase)s, attempts = %(attempts)s, cache_status = %(cache_status)s,
  updated_at = now(), created_at = {_S},
  ended_at = CASE WHEN {_END} IS NULL THEN ended_at ELSE COALESCE(ended_at, GREATEST({_END}, {_S})) END,
  duration_ms = CASE WHEN {_END} IS NULL THEN duration_ms
    ELSE EXTRACT(EPOCH FROM COALESCE(ended_at, GREATEST({_END}, {_S})) - {_S}) * 1000 END
WHERE project = %(project)s AND domain = %(domain)s AND run_name = %(run_name)s AND name = %(name)s
  AND (phase <= %(phase)s OR phase = ANY(ARRAY[6, 8])
       OR (phase = 9 AND %(phase)s = ANY(ARRAY[5, 6, 7, 8, 10])))
"""
EVENT_COLS = "project, domain, run_name, name, attempt, phase, version, info, error_kind"
RAW_EVENT_INSERT = (
    f"INSERT INTO action_events ({EVENT_COLS}) VALUES ({', '.join(['%s'] * 9)}) ON CONFLICT DO NOTHING"
)

Batches = Sequence[Sequence[ActionId]]


async def updates(raw: psycopg.AsyncConnection[Any], batches: Batches, attempt: int) -> None:
    """``executemany`` of the guarded single-row UPDATE (psycopg pipelines it) to RUNNING."""
    async with raw.cursor() as cur:
        for b in batches:
            fixed = {
                "phase": 4,
                "attempts": attempt,
                "cache_status": 0,
                "start_time": None,
                "end_time": None,
            }
            params = [
                {"project": a.project, "domain": a.domain, "run_name": a.run_name, "name": a.name, **fixed}
                for a in b
            ]
            await cur.executemany(RAW_UPDATE, params)
            await raw.commit()


async def events_copy(raw: psycopg.AsyncConnection[Any], batches: Batches, version: int) -> None:
    """A binary ``COPY`` of the events: the fastest possible, not idempotent."""
    async with raw.cursor() as cur:
        for b in batches:
            async with cur.copy(f"COPY action_events ({EVENT_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text"] * 4 + ["int4"] * 3 + ["bytea", "text"])
                for a in b:
                    await copy.write_row(
                        (a.project, a.domain, a.run_name, a.name, 1, 4, version, b"z" * 64, None)
                    )
            await raw.commit()


async def events_insert(raw: psycopg.AsyncConnection[Any], batches: Batches, version: int) -> None:
    """``executemany`` of ``INSERT … ON CONFLICT DO NOTHING``: the repository's semantics."""
    async with raw.cursor() as cur:
        for b in batches:
            await cur.executemany(
                RAW_EVENT_INSERT,
                [(a.project, a.domain, a.run_name, a.name, 1, 4, version, b"z" * 64, None) for a in b],
            )
            await raw.commit()
