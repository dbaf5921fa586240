"""``ActionRepo``: upstream's ActionRepo (runs/repository/interfaces/action.go, implemented in
runs/repository/impl/action.go), method by method, in asyncio Python.

This module is the API; the SQL is in :mod:`.sql` and runs through :class:`.database.Database`.
Reads run through SQLAlchemy Core (compiled-statement cache, typed rows), with the statements of
:mod:`.sql.reads`. Writes run through the pipelined psycopg path of :mod:`.writer`, with the
statements of :mod:`.sql.writes`, and notify (as :mod:`.notify.channels` decides) inside their own
transaction. The watches are :class:`.watches.Watches`. Every method raises the repository's
classified errors (``from`` the driver's), and :class:`NotFoundError` where upstream returns
"not found".

DELIBERATE DIFFERENCES from upstream, each also noted where it happens:

* NOTIFY is sent inside the writing transaction (upstream: after commit, from another connection).
* ``insert_events`` is one transaction for all chunks (upstream commits chunk by chunk).
* ``update_action_state`` keeps the state in our ``taskaction_action_states`` table, never in the
  integer ``phase`` (nor in upstream's ``actions`` table), and
  treats it as an opaque string (upstream parses it as JSON and rejects what does not parse).
* ``create_action(update_triggered_at=True)`` has nothing to update: there is no triggers table.
* ``abort_run``/``abort_action`` also notify ``abort_requests`` (our channel; ``watch_abort_requests``).
* ``list_pending_aborts`` is ordered by ``abort_requested_at`` (upstream: unordered).
* Not-found on GetRun/GetAction is a typed :class:`NotFoundError` (upstream: bare strings).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Unpack

from flyteidl2.workflow import run_info_pb2
from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo.database import Database, create_engine
from taskaction_operator.repo.dsn import NetworkBounds, to_conninfo
from taskaction_operator.repo.errors import AlreadyFinishedError, NotFoundError, classified
from taskaction_operator.repo.listing import KEYSET_SORT, ActionPage, ListActionsRequest
from taskaction_operator.repo.models import Action, ActionEvent, PhaseUpdate, require_aware
from taskaction_operator.repo.notify import NotificationListener, Watch
from taskaction_operator.repo.notify import channels as notify
from taskaction_operator.repo.retention import PruneOptions, PruneResult, prune_runs
from taskaction_operator.repo.sql import reads, writes
from taskaction_operator.repo.sql.keys import event_key, pk_params, run_params
from taskaction_operator.repo.sql.listing import build_list_query
from taskaction_operator.repo.watches import Watches
from taskaction_operator.repo.writer import BatchResult, RepoStats

__all__ = ["ActionRepo"]

#: Upstream's InsertEvents chunk (rows per statement).
EVENTS_CHUNK_ROWS = 5000
#: Rows per INSERT for actions (they carry the larger blobs).
ACTIONS_CHUNK_ROWS = 1000
#: From how many events a batch tries COPY before the idempotent INSERT (0: never).
COPY_EVENTS_MIN = 64


class ActionRepo:
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
        self._db = Database(engine, self.stats)
        self._watches = Watches(self)

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
        pool_pre_ping: bool = False,
        pool_recycle: float = 3600,
        bounds: NetworkBounds | None = None,
        **kwargs: Any,
    ) -> ActionRepo:
        """A repository with its own pool on ``dsn`` (``postgresql://…``). Does not migrate (see
        :func:`taskaction_operator.repo.upgrade`). Pooled connections are not pinged before use: a
        call that meets one a database restart left dead is retried (see :mod:`.database`);
        ``pool_pre_ping=True`` brings the ping back. Every connection carries ``bounds`` (the
        defaults of :class:`NetworkBounds`), so no call waits on the network forever."""
        engine = create_engine(
            dsn,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=pool_pre_ping,
            pool_recycle=pool_recycle,
            bounds=bounds or NetworkBounds(),
        )
        return cls(engine, owns_engine=True, **kwargs)

    async def close(self) -> None:
        """End every watch, close the listener connection and, if we own it, the pool."""
        await self.listener.close()
        if self._owns_engine:
            await self.engine.dispose()

    async def _write(
        self,
        *,
        actions: Sequence[Action] = (),
        events: Sequence[ActionEvent] = (),
        updates: Sequence[PhaseUpdate] = (),
        return_rows: bool = False,
        derived: bool = False,
    ) -> BatchResult:
        return await self._db.write(
            actions=actions,
            events=events,
            updates=updates,
            return_rows=return_rows,
            derived=derived,
            actions_chunk=self.actions_chunk_rows,
            events_chunk=self.events_chunk_rows,
            copy_events_min=self.copy_events_min,
        )

    @classified
    async def get_run(self, run_id: RunId) -> Action:
        """The run's root action (the action without a parent)."""
        return Action(*await self._db.one(reads.GET_RUN, run_params(run_id), f"run not found: {run_id}"))

    @classified
    async def get_action(self, action_id: ActionId) -> Action:
        return Action(
            *await self._db.one(reads.GET_ACTION, pk_params(action_id), f"action not found: {action_id}")
        )

    @classified
    async def list_events(self, action_id: ActionId, limit: int = 500) -> list[ActionEvent]:
        """Events ordered by attempt, phase, version (ascending)."""
        rows = await self._db.rows(reads.LIST_EVENTS, {**pk_params(action_id), "limit": limit})
        return [ActionEvent(*r) for r in rows]

    @classified
    async def list_events_since(
        self, action_id: ActionId, attempt: int, since: datetime, offset: int = 0, limit: int = 500
    ) -> list[ActionEvent]:
        """Events of ``attempt`` updated strictly after ``since`` (upstream's ``>``, whatever its
        comment says), ordered by updated_at, attempt, phase, version."""
        require_aware(since, "since")
        params = {**pk_params(action_id), "attempt": attempt, "since": since}
        params.update(offset=offset, limit=limit)
        return [ActionEvent(*r) for r in await self._db.rows(reads.LIST_EVENTS_SINCE, params)]

    @classified
    async def get_latest_event_by_attempt(self, action_id: ActionId, attempt: int) -> ActionEvent:
        """The event of ``attempt`` with the highest phase, then version (not the newest by time)."""
        params = {**pk_params(action_id), "attempt": attempt}
        missing = f"no event for attempt {attempt} of {action_id}"
        return ActionEvent(*await self._db.one(reads.LATEST_EVENT, params, missing))

    async def run_action_pages(self, run_id: RunId, page_size: int = 1000) -> AsyncIterator[list[Action]]:
        """Every action of the run, a page at a time, keyset-paged on (created_at, name) like upstream's
        WatchActions snapshot (run_service.go: listAndSendAllActions): each page an index range scan,
        whatever the run's size, parents before their children."""
        after: tuple[datetime, str] | None = None
        while True:
            page = await self.list_actions(
                ListActionsRequest(
                    run=run_id, sort_by=KEYSET_SORT, after=after, limit=page_size, max_limit=page_size
                )
            )
            yield page.actions
            if not page.has_more or page.next_after is None:
                return
            after = page.next_after

    async def list_run_actions(self, run_id: RunId, page_size: int = 1000) -> list[Action]:
        """Every action of the run, in (created_at, name) order (see :meth:`run_action_pages`)."""
        return [a async for page in self.run_action_pages(run_id, page_size) for a in page]

    @classified
    async def list_actions(self, request: ListActionsRequest) -> ActionPage:
        """One page of actions (upstream's ListActions); see :class:`ListActionsRequest`."""
        stmt, limit = build_list_query(request)
        rows = [Action(*r) for r in await self._db.rows(stmt)]
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
        return [Action(*r) for r in await self._db.rows(reads.PENDING_ABORTS)]

    @classified
    async def get_action_state(self, action_id: ActionId) -> str | None:
        """The state string last stored by :meth:`update_action_state` (``None`` if never set)."""
        row = await self._db.one(reads.GET_STATE, pk_params(action_id), f"action not found: {action_id}")
        state: str | None = row[0]
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
        start, end = require_aware(start, "start"), require_aware(end, "end")
        stmt = reads.root_actions(project, domain, start, end, limit)
        return [Action(*r) for r in await self._db.rows(stmt)]

    @classified
    async def list_runs_updated_since(self, since: datetime) -> list[Action]:
        """Every run (root action) updated at or after ``since``, oldest update first (ours: what the
        all-runs watch re-reads after a reconnect or an overflow)."""
        out: list[Action] = []
        after: tuple[Any, ...] | None = None
        while True:
            stmt = reads.runs_updated_since(since, after, reads.RUNS_PAGE)
            page = [Action(*r) for r in await self._db.rows(stmt)]
            out += page
            if len(page) < reads.RUNS_PAGE:
                return out
            last = page[-1]
            after = (last.updated_at, last.project, last.domain, last.run_name)

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
    async def insert_reported_events(self, events: Sequence[ActionEvent]) -> None:
        """Store events as an executor reports them (Flyte's events endpoint): in one transaction, in
        key order; DELIBERATE DIFFERENCE: a stored row with the same key takes the report's ``info``
        and ``error_kind`` (upstream's InsertEvents does nothing on a conflict, but upstream's
        informer derives no events of its own: here the operator may have derived the row first,
        and the executor's report is the record)."""
        if events:
            await self._db.write_reported(sorted(events, key=event_key), events_chunk=self.events_chunk_rows)

    async def ping(self, timeout: float = 2.0) -> bool:
        """Whether the database answers a trivial query within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._db.rows(select(literal(1))), timeout)
        except Exception:
            return False
        return True

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
        """Upstream's guarded UpdateActionPhase in one atomic UPDATE (see :func:`.sql.writes.phase_guard`).

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
        derived: bool = False,
    ) -> None:
        """The operator's hot path: all of it in ONE transaction, or nothing.

        Inserts ``actions`` (ON CONFLICT DO NOTHING), then ``events`` (likewise, first write wins;
        with ``derived``, the operator's events derived from a status, only for an (attempt, phase)
        with no row of any version: see :data:`.sql.events.INSERT_DERIVED_EVENTS`; derived events are
        all version 0), then applies ``updates`` under the phase guard in the given order (several may
        target one action), then notifies each touched action, and each run whose root was updated,
        in one statement. Same SQL as the single-object methods.
        """
        if not (actions or events or updates):
            return
        await self._write(actions=actions, events=events, updates=updates, derived=derived)

    @classified
    async def update_action_detailed_info(
        self, action_id: ActionId, detailed_info: bytes | run_info_pb2.RunInfo
    ) -> None:
        """Replace the RunInfo blob; :class:`NotFoundError` if the action does not exist."""
        blob = detailed_info if isinstance(detailed_info, bytes) else bytes(detailed_info.SerializeToString())
        await self._db.write_action(
            writes.UPDATE_DETAILED_INFO, action_id, notify.after_update, detailed_info=blob
        )

    @classified
    async def abort_run(
        self, run_id: RunId, reason: str, aborted_by: object = None, *, force: bool = True
    ) -> None:
        """Mark the run's root ABORTED and request its abort, unconditionally (no phase guard):
        resets the attempt counter, stamps ``abort_requested_at``, sets ``ended_at`` if unset. Only
        the root; children are marked when their CRs are deleted. ``aborted_by`` is ignored, as
        upstream. Notifies the run and the root action (and, ours, abort_requests).

        Ours: ``force=False`` leaves a run that ended (SUCCEEDED, FAILED, TIMED_OUT) as it ended and
        raises :class:`AlreadyFinishedError`, in the same statement (no window between look and write).
        """
        del aborted_by
        rows = await self._db.write_one(
            writes.ABORT_RUN if force else writes.ABORT_UNFINISHED_RUN,
            {**run_params(run_id), "reason": reason},
            lambda rows: notify.after_abort_run(run_id, [r[0] for r in rows]),
        )
        if not rows:
            await self._finished(await self.get_run(run_id))  # raises NotFoundError if there is none
            raise NotFoundError(f"run not found: {run_id}")

    @classified
    async def abort_action(
        self, action_id: ActionId, reason: str, aborted_by: object = None, *, force: bool = True
    ) -> None:
        """As :meth:`abort_run` for one action. Notifies the action (and, ours, abort_requests), not the
        run, even for a0."""
        del aborted_by
        query = writes.ABORT_ACTION if force else writes.ABORT_UNFINISHED_ACTION
        try:
            await self._db.write_action(query, action_id, notify.after_abort_action, reason=reason)
        except NotFoundError:
            if not force:
                await self._finished(await self.get_action(action_id))
            raise

    @staticmethod
    async def _finished(row: Action) -> None:
        """Raise AlreadyFinishedError for a row an unforced abort left alone because it ended."""
        if row.phase.is_terminal() and row.phase is not ActionPhase.ABORTED:
            raise AlreadyFinishedError(str(row.action_id), row.phase.name)

    @classified
    async def mark_abort_attempt(self, action_id: ActionId) -> int:
        """Atomically count one more abort attempt and return the new count. No notify."""
        rows = await self._db.write_action(writes.MARK_ABORT_ATTEMPT, action_id)
        return int(rows[0][0])

    @classified
    async def clear_abort_request(self, action_id: ActionId) -> None:
        """Clear the pending-abort flag and counter (reason and phase stay). Missing is fine. No notify."""
        await self._db.write_one(writes.CLEAR_ABORT, pk_params(action_id))

    @classified
    async def update_action_state(self, action_id: ActionId, state: str) -> None:
        """Store ``state`` (opaque to us) for the action and notify it.

        DELIBERATE DIFFERENCE: upstream writes the state's ``phase`` string into the integer
        ``phase`` column (failing for any non-numeric phase) and the JSON into ``action_details``;
        we keep the string in our own ``taskaction_action_states`` table and touch neither.
        """
        await self._db.write_action(writes.UPDATE_STATE, action_id, notify.after_update, state=state)

    @classified
    async def notify_state_update(self, action_id: ActionId) -> None:
        """Tell the action's watchers (and state watchers) to re-read it."""
        await self._db.notify(notify.after_update(action_id, True))

    # -- retention (ours; upstream keeps every row) ------------------------------------------------
    @classified
    async def prune_runs(self, ended_before: datetime, **options: Unpack[PruneOptions]) -> PruneResult:
        """Delete the finished runs (root, every action, their events and state rows) whose every
        action ended before ``ended_before``, never one with an unfinished action or a pending abort;
        ``runs_per_transaction`` roots per transaction, rows the recorder holds skipped, not waited
        for; ``project``/``domain`` select, ``dry_run`` only counts (:class:`.retention.PruneOptions`).
        No notification (see :mod:`.retention`)."""
        return await prune_runs(self._db, ended_before, **options)

    # -- watches (see :mod:`.watches`) ------------------------------------------------------------
    def watch_run_updates(self, run_id: RunId) -> Watch[Action]:
        """The run's root row each time the run is notified (a0 phase updates, abort_run)."""
        return self._watches.run_updates(run_id)

    def watch_all_run_updates(self) -> Watch[Action]:
        """Every notified run's root row; after a reconnect or an overflow, every run updated since."""
        return self._watches.all_run_updates()

    def watch_action_updates(self, action_id: ActionId) -> Watch[Action]:
        """The action's row each time it is notified (insert, events, applied update, abort, state)."""
        return self._watches.action_updates(action_id)

    def watch_all_action_updates(self, run_id: RunId) -> Watch[Action]:
        """Each notified action of the run; after a reconnect or an overflow, every action of it."""
        return self._watches.all_action_updates(run_id)

    def watch_state_updates(self, action_id: ActionId) -> Watch[str]:
        """The action's state string whenever it is notified and the state changed."""
        return self._watches.state_updates(action_id)

    def watch_abort_requests(self) -> Watch[ActionId]:
        """The id of each action whose abort is requested (abort_run, abort_action)."""
        return self._watches.abort_requests()
