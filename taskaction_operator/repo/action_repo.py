"""``ActionRepo``: upstream's ActionRepo (research §3), method by method, in asyncio Python.

Reads run through SQLAlchemy Core (compiled-statement cache, typed rows). Writes run through the
pipelined psycopg path of :mod:`.writer`, with the statements of :mod:`.statements`, and notify
inside their own transaction. Every method raises the repository's classified errors (``from`` the
driver's), and :class:`NotFoundError` where upstream returns "not found".

DELIBERATE DIFFERENCES from upstream, each also noted where it happens:

* NOTIFY is sent inside the writing transaction (upstream: after commit, from another connection).
* ``insert_events`` is one transaction for all chunks (upstream commits chunk by chunk).
* ``update_action_state`` keeps the state in ``action_state``, never in the integer ``phase``, and
  treats it as an opaque string (upstream parses it as JSON and rejects what does not parse).
* ``create_action(update_triggered_at=True)`` has nothing to update: there is no triggers table.
* ``abort_run``/``abort_action`` also notify ``abort_requests`` (our channel; ``watch_abort_requests``).
* ``list_pending_aborts`` is ordered by ``abort_requested_at`` (upstream: unordered).
* Not-found on GetRun/GetAction is a typed :class:`NotFoundError` (upstream: bare strings).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from flyteidl2.workflow import run_info_pb2
from sqlalchemy import Select, bindparam, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import statements as sql
from taskaction_operator.repo.dsn import to_conninfo, to_sqlalchemy_url
from taskaction_operator.repo.errors import NotFoundError, classified
from taskaction_operator.repo.listing import ActionPage, ListActionsRequest, build_list_query
from taskaction_operator.repo.models import Action, ActionEvent, PhaseUpdate, require_aware
from taskaction_operator.repo.notify import NotificationListener
from taskaction_operator.repo.schema import action_events, actions
from taskaction_operator.repo.watches import WatchMixin
from taskaction_operator.repo.writer import (
    BatchResult,
    CopyConflict,
    RepoStats,
    StaleConnectionError,
    copy_eligible,
    raw_transaction,
    write_batch,
)

__all__ = ["ActionRepo"]

_T = TypeVar("_T")

#: Upstream's InsertEvents chunk (rows per statement).
EVENTS_CHUNK_ROWS = 5000
#: Rows per INSERT for actions (they carry the larger blobs).
ACTIONS_CHUNK_ROWS = 1000
#: From how many events a batch tries COPY before the idempotent INSERT (0: never).
COPY_EVENTS_MIN = 64
#: ListRootActions' limit when given one ≤ 0.
ROOT_ACTIONS_DEFAULT_LIMIT = 1000


def _by_pk(table: Any) -> Any:
    c = table.c
    return (
        (c.project == bindparam("project"))
        & (c.domain == bindparam("domain"))
        & (c.run_name == bindparam("run_name"))
        & (c.name == bindparam("name"))
    )


_GET_ACTION = select(actions).where(_by_pk(actions))
_GET_RUN = (
    select(actions)
    .where(
        actions.c.project == bindparam("project"),
        actions.c.domain == bindparam("domain"),
        actions.c.run_name == bindparam("run_name"),
        actions.c.parent_action_name.is_(None),
    )
    .limit(1)
)
_GET_STATE = select(actions.c.action_state).where(_by_pk(actions))
_PENDING_ABORTS = (
    select(actions).where(actions.c.abort_requested_at.is_not(None)).order_by(actions.c.abort_requested_at)
)
_EVENTS = action_events.c
_LIST_EVENTS = (
    select(action_events)
    .where(_by_pk(action_events))
    .order_by(_EVENTS.attempt, _EVENTS.phase, _EVENTS.version)
    .limit(bindparam("limit"))
)
_LIST_EVENTS_SINCE = (
    select(action_events)
    .where(
        _by_pk(action_events),
        _EVENTS.attempt == bindparam("attempt"),
        _EVENTS.updated_at > bindparam("since"),
    )
    .order_by(_EVENTS.updated_at, _EVENTS.attempt, _EVENTS.phase, _EVENTS.version)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_LATEST_EVENT = (
    select(action_events)
    .where(_by_pk(action_events), _EVENTS.attempt == bindparam("attempt"))
    .order_by(_EVENTS.phase.desc(), _EVENTS.version.desc())
    .limit(1)
)


class ActionRepo(WatchMixin):
    """Runs, actions and their events in PostgreSQL, with LISTEN/NOTIFY watches.

    ``ActionRepo(engine)`` uses a caller-owned ``AsyncEngine`` (``postgresql+psycopg``);
    :meth:`connect` builds and owns one. Either way, call :meth:`close` when done.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        events_chunk_rows: int = EVENTS_CHUNK_ROWS,
        actions_chunk_rows: int = ACTIONS_CHUNK_ROWS,
        copy_events_min: int = COPY_EVENTS_MIN,
        watch_max_pending: int = 1000,
        listener: NotificationListener | None = None,
        owns_engine: bool = False,
    ) -> None:
        self.engine = engine
        self.events_chunk_rows = events_chunk_rows
        self.actions_chunk_rows = actions_chunk_rows
        self.copy_events_min = copy_events_min
        self.watch_max_pending = watch_max_pending
        #: Statement/transaction counters (``stats.statements`` is what a batch executed).
        self.stats = RepoStats()
        self.listener = listener or NotificationListener(to_conninfo(engine.url))
        self._owns_engine = owns_engine
        # Each pooled connection may turn out stale once after a database restart (see connect()).
        pool: Any = engine.sync_engine.pool
        size = pool.size() if callable(getattr(pool, "size", None)) else 0
        self._stale_attempts = 2 + int(size) + max(0, int(getattr(pool, "_max_overflow", 0)))

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
        pool_pre_ping: bool = False,
        pool_recycle: float = 3600,
        **kwargs: Any,
    ) -> ActionRepo:
        """A repository with its own pool on ``dsn`` (``postgresql://…``). Does not migrate (see
        :func:`taskaction_operator.repo.upgrade`).

        Pooled connections that died with a database restart are not pinged before use (that costs
        a round trip per transaction); a call that meets one before COMMIT is retried on another
        connection instead, which is safe because nothing was written. ``pool_pre_ping=True``
        brings the ping back."""
        engine = create_async_engine(
            to_sqlalchemy_url(dsn),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=pool_pre_ping,
            pool_recycle=pool_recycle,
        )
        return cls(engine, owns_engine=True, **kwargs)

    async def close(self) -> None:
        """End every watch, close the listener connection and, if we own it, the pool."""
        await self.listener.close()
        if self._owns_engine:
            await self.engine.dispose()

    # -- helpers ----------------------------------------------------------------------------------
    async def _rows(self, stmt: Select[Any], params: dict[str, Any] | None = None) -> list[Any]:
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

    def _tx(self) -> Any:
        return raw_transaction(self.engine, self.stats)

    async def _write(
        self,
        *,
        actions: Sequence[Action] = (),
        events: Sequence[ActionEvent] = (),
        updates: Sequence[PhaseUpdate] = (),
        return_rows: bool = False,
    ) -> BatchResult:
        """One transaction of :func:`.writer.write_batch`; large event batches try COPY first.

        Rows are inserted in key order (a stable sort: among equal keys the first still wins): an
        insert of a key another transaction is inserting waits for that transaction, so concurrent
        batches over the same new keys must meet them in one order or deadlock.
        """
        actions = sorted(actions, key=sql.action_key)
        events = sorted(events, key=sql.event_key)
        kwargs: dict[str, Any] = {
            "actions": actions,
            "updates": updates,
            "actions_chunk": self.actions_chunk_rows,
            "events_chunk": self.events_chunk_rows,
            "return_rows": return_rows,
        }
        copy = copy_eligible(events, self.copy_events_min)

        async def attempt() -> BatchResult:
            nonlocal copy
            if copy:
                try:
                    async with raw_transaction(self.engine, self.stats, copy_events=events) as tx:
                        return await write_batch(tx, copied_events=events, **kwargs)
                except CopyConflict:
                    copy = False  # some key exists: the idempotent INSERT decides, first write wins
            async with self._tx() as tx:
                return await write_batch(tx, events=events, **kwargs)

        return await self._retry_stale(attempt)

    async def _retry_stale(self, transaction: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``transaction``, again on another connection if it met a stale one before COMMIT
        (nothing was written). Each pooled connection can be stale once after a restart."""
        for attempt in range(self._stale_attempts):
            try:
                return await transaction()
            except StaleConnectionError:
                if attempt + 1 >= self._stale_attempts:
                    raise
                self.stats.stale_retries += 1
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write_one(
        self, query: str, params: dict[str, Any], notify: Callable[[list[Any]], Any]
    ) -> list[Any]:
        """Run one write statement and its notifications (computed from the returned rows) in a tx."""

        async def attempt() -> list[Any]:
            async with self._tx() as tx:
                cur = await tx.execute(query, params)
                rows: list[Any] = await cur.fetchall()
                await tx.notify(*notify(rows))
            return rows

        return await self._retry_stale(attempt)

    # -- reads ------------------------------------------------------------------------------------
    @classified
    async def get_run(self, run_id: RunId) -> Action:
        """The run's root action (``parent_action_name IS NULL``)."""
        rows = await self._rows(_GET_RUN, sql.run_params(run_id))
        if not rows:
            raise NotFoundError(f"run not found: {run_id}")
        return Action(*rows[0])

    @classified
    async def get_action(self, action_id: ActionId) -> Action:
        rows = await self._rows(_GET_ACTION, sql.pk_params(action_id))
        if not rows:
            raise NotFoundError(f"action not found: {action_id}")
        return Action(*rows[0])

    @classified
    async def list_events(self, action_id: ActionId, limit: int = 500) -> list[ActionEvent]:
        """Events ordered by attempt, phase, version (ascending)."""
        rows = await self._rows(_LIST_EVENTS, {**sql.pk_params(action_id), "limit": limit})
        return [ActionEvent(*r) for r in rows]

    @classified
    async def list_events_since(
        self, action_id: ActionId, attempt: int, since: datetime, offset: int = 0, limit: int = 500
    ) -> list[ActionEvent]:
        """Events of ``attempt`` updated strictly after ``since`` (upstream's ``>``, whatever its
        comment says), ordered by updated_at, attempt, phase, version."""
        require_aware(since, "since")
        params = {**sql.pk_params(action_id), "attempt": attempt, "since": since}
        params.update(offset=offset, limit=limit)
        return [ActionEvent(*r) for r in await self._rows(_LIST_EVENTS_SINCE, params)]

    @classified
    async def get_latest_event_by_attempt(self, action_id: ActionId, attempt: int) -> ActionEvent:
        """The event of ``attempt`` with the highest phase, then version (not the newest by time)."""
        rows = await self._rows(_LATEST_EVENT, {**sql.pk_params(action_id), "attempt": attempt})
        if not rows:
            raise NotFoundError(f"no event for attempt {attempt} of {action_id}")
        return ActionEvent(*rows[0])

    @classified
    async def list_actions(self, request: ListActionsRequest) -> ActionPage:
        """One page of actions (research §3 ListActions); see :class:`ListActionsRequest`."""
        stmt, limit = build_list_query(request)
        rows = [Action(*r) for r in await self._rows(stmt)]
        has_more = len(rows) > limit
        del rows[limit:]
        last = rows[-1] if rows and has_more else None
        return ActionPage(
            actions=rows,
            has_more=has_more,
            next_token=str(request.offset + limit) if has_more else "",
            next_after=(last.created_at, last.name) if last is not None and last.created_at else None,
        )

    @classified
    async def list_pending_aborts(self) -> list[Action]:
        """Every action with ``abort_requested_at`` set, oldest request first."""
        return [Action(*r) for r in await self._rows(_PENDING_ABORTS)]

    @classified
    async def get_action_state(self, action_id: ActionId) -> str | None:
        """The state string last stored by :meth:`update_action_state` (``None`` if never set)."""
        rows = await self._rows(_GET_STATE, sql.pk_params(action_id))
        if not rows:
            raise NotFoundError(f"action not found: {action_id}")
        state: str | None = rows[0][0]
        return state

    @classified
    async def list_root_actions(
        self,
        project: str = "",
        domain: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 0,
    ) -> list[Action]:
        """Runs newest first; empty project/domain match all, both bounds inclusive, limit ≤ 0 → 1000."""
        c = actions.c
        stmt = select(actions).where(c.parent_action_name.is_(None))
        if project:
            stmt = stmt.where(c.project == project)
        if domain:
            stmt = stmt.where(c.domain == domain)
        if start is not None:
            stmt = stmt.where(c.created_at >= require_aware(start, "start"))
        if end is not None:
            stmt = stmt.where(c.created_at <= require_aware(end, "end"))
        stmt = stmt.order_by(c.created_at.desc()).limit(limit if limit > 0 else ROOT_ACTIONS_DEFAULT_LIMIT)
        return [Action(*r) for r in await self._rows(stmt)]

    # -- writes -----------------------------------------------------------------------------------
    @classified
    async def create_action(self, action: Action, update_triggered_at: bool = False) -> Action:
        """Insert ``action`` unless its key exists; return the stored row either way.

        Notifies action_updates only when a row was inserted (never run_updates, as upstream).
        ``update_triggered_at`` is accepted for upstream parity and has nothing to update: upstream
        stamps ``triggers.triggered_at`` in the same transaction, and this schema has no triggers table.
        """
        del update_triggered_at
        result = await self._write(actions=[action], return_rows=True)
        if result.inserted:
            return Action(*result.inserted[0])
        return await self.get_action(action.action_id)

    @classified
    async def insert_events(self, events: Sequence[ActionEvent]) -> None:
        """Insert events; a key already stored is ignored (first write wins, even if the payload
        differs). Chunked by ``events_chunk_rows``; DELIBERATE DIFFERENCE: all chunks commit together
        (upstream commits each chunk on its own). From ``copy_events_min`` events, COPY is tried first
        and the INSERT only if a key exists (see :mod:`.writer`). Notifies each distinct action once."""
        if not events:
            return
        await self._write(events=events)

    @classified
    async def update_action_phase(
        self,
        action_id: ActionId,
        phase: ActionPhase,
        attempts: int,
        cache_status: int,
        end_time: datetime | None = None,
        start_time: datetime | None = None,
    ) -> bool:
        """Upstream's guarded UpdateActionPhase in one atomic UPDATE (see :func:`.statements.phase_guard`).

        Returns whether it applied; a blocked update is a silent no-op (``False``, no action notify).
        The run is notified whenever ``action_id`` is the root ``a0``, even if blocked (as upstream).
        """
        update = PhaseUpdate(action_id, phase, attempts, cache_status, start_time, end_time)
        result = await self._write(updates=[update])
        return bool(result.applied[0])

    @classified
    async def record_batch(
        self,
        *,
        actions: Sequence[Action] = (),
        events: Sequence[ActionEvent] = (),
        updates: Sequence[PhaseUpdate] = (),
    ) -> None:
        """The operator's hot path: all of it in ONE transaction, or nothing.

        Inserts ``actions`` (ON CONFLICT DO NOTHING), then ``events`` (likewise, first write wins),
        then applies ``updates`` under the phase guard in the given order (several may target one
        action), then notifies each touched action, and each run whose root was updated, in one
        statement. Same SQL as the single-object methods.
        """
        if not (actions or events or updates):
            return
        await self._write(actions=actions, events=events, updates=updates)

    @classified
    async def update_action_detailed_info(
        self, action_id: ActionId, detailed_info: bytes | run_info_pb2.RunInfo
    ) -> None:
        """Replace the RunInfo blob; :class:`NotFoundError` if the action does not exist."""
        blob = detailed_info if isinstance(detailed_info, bytes) else bytes(detailed_info.SerializeToString())
        rows = await self._write_one(
            sql.UPDATE_DETAILED_INFO,
            {**sql.pk_params(action_id), "detailed_info": blob},
            lambda rows: ((), [action_id] if rows else ()),
        )
        if not rows:
            raise NotFoundError(f"action not found: {action_id}")

    @classified
    async def abort_run(self, run_id: RunId, reason: str, aborted_by: object = None) -> None:
        """Mark the run's root ABORTED and request its abort, unconditionally (no phase guard):
        resets the attempt counter, stamps ``abort_requested_at``, sets ``ended_at`` if unset. Only
        the root; children are marked when their CRs are deleted. ``aborted_by`` is ignored, as
        upstream. Notifies the run and the root action (and, ours, abort_requests)."""
        del aborted_by
        rows = await self._write_one(
            sql.ABORT_RUN,
            {**sql.run_params(run_id), "reason": reason},
            lambda rows: (
                [run_id] if rows else (),
                [ActionId(run_id, r[0]) for r in rows],
                [ActionId(run_id, r[0]) for r in rows],
            ),
        )
        if not rows:
            raise NotFoundError(f"run not found: {run_id}")

    @classified
    async def abort_action(self, action_id: ActionId, reason: str, aborted_by: object = None) -> None:
        """As :meth:`abort_run` for one action. Notifies the action (and, ours, abort_requests), not the
        run, even for a0."""
        del aborted_by
        rows = await self._write_one(
            sql.ABORT_ACTION,
            {**sql.pk_params(action_id), "reason": reason},
            lambda rows: ((), [action_id] if rows else (), [action_id] if rows else ()),
        )
        if not rows:
            raise NotFoundError(f"action not found: {action_id}")

    @classified
    async def mark_abort_attempt(self, action_id: ActionId) -> int:
        """Atomically count one more abort attempt and return the new count. No notify."""
        rows = await self._write_one(sql.MARK_ABORT_ATTEMPT, sql.pk_params(action_id), lambda rows: ((), ()))
        if not rows:
            raise NotFoundError(f"action not found: {action_id}")
        return int(rows[0][0])

    @classified
    async def clear_abort_request(self, action_id: ActionId) -> None:
        """Clear the pending-abort flag and counter (reason and phase stay). Missing is fine. No notify."""
        await self._write_one(sql.CLEAR_ABORT, sql.pk_params(action_id), lambda rows: ((), ()))

    @classified
    async def update_action_state(self, action_id: ActionId, state: str) -> None:
        """Store ``state`` (opaque to us) for the action and notify it.

        DELIBERATE DIFFERENCE: upstream writes the state's ``phase`` string into the integer
        ``phase`` column (failing for any non-numeric phase) and the JSON into ``action_details``;
        we keep the string in ``action_state`` and touch neither.
        """
        rows = await self._write_one(
            sql.UPDATE_STATE,
            {**sql.pk_params(action_id), "state": state},
            lambda rows: ((), [action_id] if rows else ()),
        )
        if not rows:
            raise NotFoundError(f"action not found: {action_id}")

    @classified
    async def notify_state_update(self, action_id: ActionId) -> None:
        """Tell the action's watchers (and state watchers) to re-read it."""

        async def attempt() -> None:
            async with self._tx() as tx:
                await tx.notify((), [action_id])

        await self._retry_stale(attempt)
