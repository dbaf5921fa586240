"""The repository's watches, built on its shared listener and its re-reads.

:class:`Watches` is given the repository (its listener and the reads it needs, :class:`WatchedRepo`)
and is what the ``watch_*`` methods of :class:`~.action_repo.ActionRepo` call. Each watch returns a
:class:`~.notify.Watch`: awaiting it registers a subscription with the repository's one listener and
returns it only once LISTEN is active, so "subscribe, then read a snapshot" never misses an update
(it may see one twice); ``async with`` does the same and closes it on exit. What each watch
re-reads, per notification and after a reconnect or an overflow:

=============================  ============================  =======================================
watch                          per notification              full re-read (reconnect, overflow)
=============================  ============================  =======================================
``watch_run_updates(run)``     the run's root row            the same row
``watch_all_run_updates()``    the notified run's root       every root updated since the connection
                                                             was last known alive, minus a margin
``watch_action_updates(a)``    the action's row              the same row
``watch_all_action_updates``   each notified action, one     every action of the run
                               read per action per burst
``watch_state_updates(a)``     the action's state string     the same; yielded only when it changed
``watch_abort_requests()``     the aborted action's id       every pending abort request
=============================  ============================  =======================================

DELIBERATE DIFFERENCES: upstream's WatchStateUpdates is a stub that never emits; this one works, fed
by the action_updates notifications of ``update_action_state`` and ``notify_state_update``.
``watch_abort_requests`` is ours (upstream polls), fed by our ``abort_requests`` channel.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from taskaction_operator.model import ActionId, RunId
from taskaction_operator.repo.models import Action
from taskaction_operator.repo.notify import NotificationListener, Route, Subscription, Watch
from taskaction_operator.repo.notify.channels import action_payload, run_payload

__all__ = ["WatchedRepo", "Watches"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class WatchedRepo(Protocol):
    """What the watches need of the repository: its listener, how many keys a watch may hold
    pending, and the reads that answer a notification or a full re-read."""

    @property
    def listener(self) -> NotificationListener: ...
    @property
    def watch_max_pending(self) -> int: ...
    async def get_run(self, run_id: RunId) -> Action: ...
    async def get_action(self, action_id: ActionId) -> Action: ...
    async def get_action_state(self, action_id: ActionId) -> str | None: ...
    async def list_run_actions(self, run_id: RunId) -> list[Action]: ...
    async def list_pending_aborts(self) -> list[Action]: ...
    async def list_runs_updated_since(self, since: datetime) -> list[Action]: ...


def _parse_action(key: str) -> ActionId | None:
    parts = key.split("/")
    if len(parts) != 4:
        log.warning("ignoring malformed action payload %r", key)
        return None
    return ActionId.of(*parts)


class Watches:
    """The watches of one repository (see the module's table)."""

    def __init__(self, repo: WatchedRepo) -> None:
        self._repo = repo

    def _watch(
        self,
        name: str,
        route: Route,
        read: Callable[[str], Awaitable[T | None]],
        resync: Callable[[datetime], Awaitable[Sequence[T]]],
    ) -> Watch[T]:
        async def start() -> Subscription[T]:
            listener = self._repo.listener
            sub = Subscription(
                [route],
                read,
                resync,
                max_pending=self._repo.watch_max_pending,
                name=name,
                clock=listener.server_clock,
                resync_margin=listener.resync_margin,
                on_close=listener.unregister,
            )
            await listener.register(sub)
            return sub

        return Watch(start)

    def _row(self, name: str, route: Route, get: Callable[[], Awaitable[T]]) -> Watch[T]:
        """A watch of one row: ``get()`` per notification, and as the full re-read."""

        async def read(_key: str) -> T:
            return await get()

        async def resync(_since: datetime) -> list[T]:
            return [await get()]

        return self._watch(name, route, read, resync)

    def run_updates(self, run_id: RunId) -> Watch[Action]:
        """The run's root row each time the run is notified (a0 phase updates, abort_run)."""
        return self._row(f"run {run_id}", ("run", run_payload(run_id)), lambda: self._repo.get_run(run_id))

    def all_run_updates(self) -> Watch[Action]:
        """Every notified run's root row. After a reconnect or an overflow: every run updated since
        the connection was last known alive (server clock, minus the listener's margin), oldest first."""

        async def read(key: str) -> Action | None:
            parts = key.split("/")
            if len(parts) != 3:
                log.warning("ignoring malformed run_updates payload %r", key)
                return None
            return await self._repo.get_run(RunId(*parts))

        return self._watch("all runs", ("runs", ""), read, self._repo.list_runs_updated_since)

    def action_updates(self, action_id: ActionId) -> Watch[Action]:
        """The action's row each time it is notified (insert, events, applied update, abort, state)."""
        route: Route = ("action", action_payload(action_id))
        return self._row(f"action {action_id}", route, lambda: self._repo.get_action(action_id))

    def all_action_updates(self, run_id: RunId) -> Watch[Action]:
        """Each notified action of the run, one re-read per action per burst. After a reconnect or an
        overflow: every action of the run, in (created_at, name) order."""

        async def read(key: str) -> Action:
            return await self._repo.get_action(ActionId(run_id, key.rpartition("/")[2]))

        async def resync(_since: datetime) -> list[Action]:
            return await self._repo.list_run_actions(run_id)

        return self._watch(f"actions of {run_id}", ("run-actions", run_payload(run_id)), read, resync)

    def state_updates(self, action_id: ActionId) -> Watch[str]:
        """The action's state string (see ``update_action_state``) whenever the action is notified and
        the state differs from the last one yielded; an action without a state yields nothing."""
        last: list[str | None] = [None]

        async def read(_key: str) -> str | None:
            state = await self._repo.get_action_state(action_id)
            if state is None or state == last[0]:
                return None
            last[0] = state
            return state

        async def resync(_since: datetime) -> list[str]:
            state = await read("")
            return [] if state is None else [state]

        return self._watch(f"state of {action_id}", ("action", action_payload(action_id)), read, resync)

    def abort_requests(self) -> Watch[ActionId]:
        """The id of each action whose abort is requested (abort_run, abort_action). After a reconnect
        or an overflow: every pending abort request (``list_pending_aborts``)."""

        async def read(key: str) -> ActionId | None:
            return _parse_action(key)

        async def resync(_since: datetime) -> list[ActionId]:
            return [a.action_id for a in await self._repo.list_pending_aborts()]

        return self._watch("abort requests", ("aborts", ""), read, resync)
