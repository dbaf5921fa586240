"""How the repository runs its SQL: reads through SQLAlchemy, writes in the pipelined transactions of
:mod:`.writer`, each retried on another connection if it met one a database restart left stale.

Pooled connections that died with a database restart are not pinged before use (that costs a round
trip per transaction); a call that meets one before COMMIT is retried on another connection instead,
which is safe because nothing was written. Each pooled connection may turn out stale once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from taskaction_operator.model import ActionId
from taskaction_operator.repo.dsn import NetworkBounds, to_sqlalchemy_url
from taskaction_operator.repo.errors import NotFoundError
from taskaction_operator.repo.models import Action, ActionEvent, PhaseUpdate
from taskaction_operator.repo.notify.channels import NOBODY, Notify
from taskaction_operator.repo.sql.keys import action_key, event_key, pk_params
from taskaction_operator.repo.writer import (
    BatchResult,
    CopyConflict,
    RepoStats,
    StaleConnectionError,
    Tx,
    copy_eligible,
    raw_transaction,
    write_batch,
    write_reported_events,
)

__all__ = ["Database"]

_T = TypeVar("_T")


def create_engine(
    dsn: str,
    *,
    pool_size: int,
    max_overflow: int,
    pool_pre_ping: bool,
    pool_recycle: float,
    bounds: NetworkBounds,
) -> AsyncEngine:
    """A pool on ``dsn`` for psycopg 3 whose every connection carries ``bounds``."""
    return create_async_engine(
        to_sqlalchemy_url(dsn),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pool_pre_ping,
        pool_recycle=pool_recycle,
        connect_args=bounds.connect_args(dsn),
    )


class Database:
    """The engine's connections as the repository uses them, counting into ``stats``."""

    def __init__(self, engine: AsyncEngine, stats: RepoStats) -> None:
        self.engine = engine
        self.stats = stats
        # Each pooled connection may turn out stale once after a database restart.
        pool: Any = engine.sync_engine.pool
        size = pool.size() if callable(getattr(pool, "size", None)) else 0
        self._stale_attempts = 2 + int(size) + max(0, int(getattr(pool, "_max_overflow", 0)))

    async def rows(self, stmt: Select[Any], params: dict[str, Any] | None = None) -> list[Any]:
        """The rows of one SELECT."""
        for attempt in range(self._stale_attempts):
            try:
                async with self.engine.connect() as conn:
                    self.stats.statements += 1
                    result = await conn.execute(stmt, params or {})
                    return list(result.all())
            except sa_exc.DBAPIError as exc:
                # A pooled connection died with a database restart: SQLAlchemy has just invalidated
                # the pool, so a retry gets a fresh connection. Reads are safe to repeat.
                if not exc.connection_invalidated or attempt + 1 >= self._stale_attempts:
                    raise
                self.stats.stale_retries += 1
        raise AssertionError("unreachable")  # pragma: no cover

    def transaction(self, copy_events: Sequence[ActionEvent] = ()) -> AbstractAsyncContextManager[Tx]:
        return raw_transaction(self.engine, self.stats, copy_events=copy_events)

    async def retry_stale(self, transaction: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``transaction``, again on another connection if it met a stale one before COMMIT
        (nothing was written)."""
        for attempt in range(self._stale_attempts):
            try:
                return await transaction()
            except StaleConnectionError:
                if attempt + 1 >= self._stale_attempts:
                    raise
                self.stats.stale_retries += 1
        raise AssertionError("unreachable")  # pragma: no cover

    async def write(
        self,
        *,
        actions: Sequence[Action],
        events: Sequence[ActionEvent],
        updates: Sequence[PhaseUpdate],
        return_rows: bool,
        actions_chunk: int,
        events_chunk: int,
        copy_events_min: int,
        derived: bool = False,
    ) -> BatchResult:
        """One transaction of :func:`.writer.write_batch`; from ``copy_events_min`` events, COPY first.

        Rows are inserted in key order (a stable sort: among equal keys the first still wins): an
        insert of a key another transaction is inserting waits for that transaction, so concurrent
        batches over the same new keys must meet them in one order or deadlock.
        """
        actions = sorted(actions, key=action_key)
        events = sorted(events, key=event_key)
        kwargs: dict[str, Any] = {
            "actions": actions,
            "updates": updates,
            "actions_chunk": actions_chunk,
            "events_chunk": events_chunk,
            "return_rows": return_rows,
            "derived": derived,
        }
        copy = copy_eligible(events, copy_events_min)

        async def attempt() -> BatchResult:
            nonlocal copy
            if copy:
                try:
                    async with self.transaction(copy_events=events) as tx:
                        return await write_batch(tx, copied_events=events, **kwargs)
                except CopyConflict:
                    copy = False  # some key exists: the idempotent INSERT decides, first write wins
            async with self.transaction() as tx:
                return await write_batch(tx, events=events, **kwargs)

        return await self.retry_stale(attempt)

    async def write_reported(self, events: Sequence[ActionEvent], *, events_chunk: int) -> None:
        """One transaction of :func:`.writer.write_reported_events` (``events`` in key order)."""

        async def attempt() -> None:
            async with self.transaction() as tx:
                await write_reported_events(tx, events, events_chunk=events_chunk)

        await self.retry_stale(attempt)

    async def write_action(
        self,
        query: str,
        action_id: ActionId,
        rule: Callable[[ActionId, bool], Notify] = lambda _action, _found: NOBODY,
        **params: Any,
    ) -> list[Any]:
        """One single-row write of ``action_id`` and what ``rule`` notifies for it, in one
        transaction; :class:`NotFoundError` if there is no such action."""
        rows = await self.write_one(
            query, {**pk_params(action_id), **params}, lambda rows: rule(action_id, bool(rows))
        )
        if not rows:
            raise NotFoundError(f"action not found: {action_id}")
        return rows

    async def one(self, stmt: Select[Any], params: dict[str, Any], missing: str) -> Any:
        """The first row of ``stmt``; :class:`NotFoundError` (``missing``) if there is none."""
        rows = await self.rows(stmt, params)
        if not rows:
            raise NotFoundError(missing)
        return rows[0]

    async def write_one(
        self, query: str, params: dict[str, Any], notify: Callable[[list[Any]], Notify] = lambda _: NOBODY
    ) -> list[Any]:
        """Run one write statement and its notifications (decided from the returned rows) in a tx."""

        async def attempt() -> list[Any]:
            async with self.transaction() as tx:
                cur = await tx.execute(query, params)
                rows: list[Any] = await cur.fetchall()
                await tx.notify(notify(rows))
            return rows

        return await self.retry_stale(attempt)

    async def notify(self, note: Notify) -> None:
        """A transaction that only notifies."""

        async def attempt() -> None:
            async with self.transaction() as tx:
                await tx.notify(note)

        await self.retry_stale(attempt)
