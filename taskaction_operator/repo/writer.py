"""The write path: a pipelined psycopg transaction, and the batch write every writing method uses.

Writes bypass SQLAlchemy's execution layer (not its pool, nor its statement builders; see
:mod:`.sql.writes`) to use psycopg's pipeline mode: the statements of one transaction are sent
without waiting for each other, so a batch of any size costs two network round trips (the writes,
whose RETURNING tells which rows changed; then the NOTIFY and COMMIT), plus BEGIN's.

Large event batches are first tried with COPY, which skips ``ON CONFLICT``'s speculative insertion
(most of an idempotent insert's server cost): events are normally new. If any key is already stored
the COPY fails with a unique violation, nothing has been written yet in that transaction, and the
batch is redone with the idempotent ``INSERT … ON CONFLICT DO NOTHING``: the outcome (first write
wins) is the same either way.

Notifications are issued in the writing transaction (PostgreSQL delivers them at COMMIT and never on
rollback). DELIBERATE DIFFERENCE from upstream, which sends them after the commit from another
connection, best-effort (upstream runs/repository/impl/action.go: notifyActionUpdate and
notifyRunUpdate queue the payload for a goroutine that runs ``pg_notify`` on a connection of its own).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from taskaction_operator.model import ActionId
from taskaction_operator.repo.errors import TemporaryRepoError
from taskaction_operator.repo.models import Action, ActionEvent, PhaseUpdate
from taskaction_operator.repo.notify.channels import Notify, after_batch
from taskaction_operator.repo.sql import events as events_sql
from taskaction_operator.repo.sql import writes as sql
from taskaction_operator.repo.sql.keys import action_key

__all__ = [
    "BatchResult",
    "CopyConflict",
    "RepoStats",
    "StaleConnectionError",
    "Tx",
    "copy_eligible",
    "raw_transaction",
    "write_batch",
]


@dataclass(slots=True)
class RepoStats:
    """Counters for benchmarks and tests. ``statements`` counts SQL statements sent (COPY included,
    BEGIN/COMMIT not); ``copy_fallbacks`` counts event COPYs that met an existing key."""

    statements: int = 0
    transactions: int = 0
    notifications: int = 0
    copy_fallbacks: int = 0
    stale_retries: int = 0


class Tx:
    """A transaction on a raw psycopg connection in pipeline mode, counting what it sends."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], stats: RepoStats) -> None:
        self.conn = conn
        self.stats = stats

    async def execute(self, query: str, params: dict[str, Any]) -> psycopg.AsyncCursor[Any]:
        """Queue ``query``; its results are read (forcing a sync) when the cursor is fetched from."""
        cur = self.conn.cursor()
        self.stats.statements += 1
        await cur.execute(query, params)
        return cur

    async def notify(self, note: Notify) -> None:
        """One statement sending ``note``'s notifications (none if it has none)."""
        messages = note.messages()
        if messages:
            self.stats.notifications += len(messages)
            await self.execute(sql.NOTIFY, sql.notify_params(messages))


class CopyConflict(Exception):
    """The events COPY met a key already stored: redo the batch with the idempotent INSERT."""


class StaleConnectionError(TemporaryRepoError):
    """The pooled connection turned out dead (a database restart) before COMMIT was sent: nothing
    was written, so the whole transaction can be retried on another connection."""


@asynccontextmanager
async def raw_transaction(
    engine: AsyncEngine, stats: RepoStats, *, copy_events: Sequence[ActionEvent] = ()
) -> AsyncIterator[Tx]:
    """A pooled connection's psycopg connection, in a pipelined transaction committed on success.

    ``copy_events`` are COPYed first, before the pipeline (COPY cannot be pipelined); a key already
    stored raises :class:`CopyConflict` with the transaction rolled back. On any exception the
    transaction is rolled back; if that is impossible (connection lost, cancellation mid-pipeline)
    the connection is invalidated so the pool never reuses it.
    """
    async with engine.connect() as sa_conn:
        fairy = await sa_conn.get_raw_connection()
        conn: psycopg.AsyncConnection[Any] = fairy.driver_connection  # type: ignore[assignment]
        stats.transactions += 1
        committing = False
        try:
            if copy_events:
                await _copy_events(conn, stats, copy_events)
            async with conn.pipeline():
                yield Tx(conn, stats)
                committing = True
                await conn.commit()
        except BaseException as exc:
            healthy = isinstance(exc, Exception) and not conn.broken and not conn.closed
            if healthy:
                try:
                    await conn.rollback()
                except Exception:
                    healthy = False
            if not healthy:
                with contextlib.suppress(Exception):
                    await sa_conn.invalidate()
                if not committing and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
                    raise StaleConnectionError(f"connection lost before commit: {exc}") from exc
            raise


async def _copy_events(
    conn: psycopg.AsyncConnection[Any], stats: RepoStats, events: Sequence[ActionEvent]
) -> None:
    """COPY ``events`` (without created_at/updated_at: their defaults are the transaction's time,
    as the INSERT path's ``now()``). Text format, so bad values fail on the server with the same
    SQLSTATE as the INSERT path."""
    stats.statements += 1
    try:
        async with conn.cursor() as cur, cur.copy(events_sql.COPY_EVENTS) as copy:
            for e in events:
                await copy.write_row(
                    (
                        e.project,
                        e.domain,
                        e.run_name,
                        e.name,
                        e.attempt,
                        int(e.phase),
                        e.version,
                        e.info,
                        e.error_kind,
                    )
                )
    except psycopg.errors.UniqueViolation as exc:
        stats.copy_fallbacks += 1
        raise CopyConflict(str(exc)) from exc


def copy_eligible(events: Sequence[ActionEvent], minimum: int) -> bool:
    """Whether to try COPY for ``events``: enough of them, none with an explicit created_at."""
    return minimum > 0 and len(events) >= minimum and all(e.created_at is None for e in events)


@dataclass(slots=True)
class BatchResult:
    """What a batch changed: the inserted action rows (keys only unless asked for rows), and for
    each update, in input order, whether the guard let it through."""

    inserted: list[tuple[Any, ...]] = field(default_factory=list)
    applied: list[bool] = field(default_factory=list)


async def write_reported_events(tx: Tx, events: Sequence[ActionEvent], *, events_chunk: int) -> None:
    """Store events an executor reported (:data:`.sql.events.UPSERT_EVENTS`), in ``tx``, and notify
    each distinct action once, as an insert of events does."""
    for chunk in _chunks(events, events_chunk):
        await tx.execute(events_sql.UPSERT_EVENTS, events_sql.event_params(chunk))
    await tx.notify(after_batch((), [e.action_id for e in events], (), ()))


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def write_batch(
    tx: Tx,
    *,
    actions: Sequence[Action] = (),
    events: Sequence[ActionEvent] = (),
    updates: Sequence[PhaseUpdate] = (),
    actions_chunk: int,
    events_chunk: int,
    return_rows: bool = False,
    copied_events: Sequence[ActionEvent] = (),
    derived: bool = False,
) -> BatchResult:
    """Insert ``events`` and ``actions`` (ON CONFLICT DO NOTHING), apply ``updates`` under the phase
    guard in the order given, then notify (:func:`.notify.channels.after_batch`), all in ``tx``.
    ``copied_events`` were already stored by the transaction's COPY: they are only notified.
    ``derived`` events (the operator's, from a status) go in only for a transition with no row yet
    (:data:`.sql.events.INSERT_DERIVED_EVENTS`); copied ones that turn out to repeat a transition are
    dropped again in the same transaction.
    """
    # Events first, as on the COPY path (which COPYs them before anything else): concurrent batches
    # over the same new keys must take the tables in one order, as they take the keys (sorted).
    insert_events = events_sql.INSERT_DERIVED_EVENTS if derived else events_sql.INSERT_EVENTS
    for chunk in _chunks(events, events_chunk):
        await tx.execute(insert_events, events_sql.event_params(chunk))
    if derived:
        for chunk in _chunks(copied_events, events_chunk):
            await tx.execute(events_sql.DROP_SHADOWED_EVENTS, events_sql.event_key_params(chunk))
    insert_sql = sql.INSERT_ACTIONS_RETURNING_ROW if return_rows else sql.INSERT_ACTIONS
    action_cursors = [
        await tx.execute(insert_sql, sql.action_params(chunk)) for chunk in _chunks(actions, actions_chunk)
    ]
    rounds = sql.phase_update_rounds(updates)
    update_cursors = [await tx.execute(sql.UPDATE_PHASES, sql.update_params(updates, r)) for r in rounds]

    result = BatchResult(applied=[False] * len(updates))
    for cur in action_cursors:  # the first fetch syncs the pipeline: one round trip for all of the above
        result.inserted.extend(tuple(row) for row in await cur.fetchall())
    for indexes, cur in zip(rounds, update_cursors, strict=True):
        changed = {tuple(row) for row in await cur.fetchall()}
        for i in indexes:
            result.applied[i] = action_key(updates[i].action_id) in changed

    inserted = [ActionId.of(*row[:4]) for row in result.inserted]
    evented = [e.action_id for e in (*events, *copied_events)]
    await tx.notify(after_batch(inserted, evented, updates, result.applied))
    return result
