"""The abort sweep: carry out abort requests recorded in the database.

On start, every interval, and at once when an abort is requested (a NOTIFY), the sweep leader reads
ListPendingAborts; for each action not in backoff it runs MarkAbortAttempt → delete the TaskAction →
confirm it is gone → ClearAbortRequest. A TaskAction already gone counts as done. Failed attempts
back off with full jitter (``uniform(0, min(cap, initial * 2**(n-1)))``); the attempt count lives in
the database so it survives restarts; after the maximum the request is cleared with an error log
and a Warning Event saying manual action is needed (upstream ``runs/service/abort_reconciler.go``:
``processTask``).

Beyond upstream: the request is cleared only once the TaskAction is confirmed gone (a finalizer
that holds the object keeps the request pending and retried), and the sweep is woken by NOTIFY
instead of waiting for the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from taskaction_operator.controller.aborts.deleter import Place
from taskaction_operator.model import ActionId

log = logging.getLogger(__name__)

#: Seconds before a pending abort of another operator's action is looked at again.
FOREIGN_RECHECK = 30.0


def full_jitter(attempt: int, initial: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): uniform in [0, ceiling)."""
    ceiling = min(cap, initial * 2.0 ** max(attempt - 1, 0))
    return float(rand()) * ceiling


class PendingAbort(Protocol):
    project: str
    domain: str
    run_name: str
    name: str
    abort_reason: str | None


class AbortStore(Protocol):
    """The repository methods the sweep uses."""

    async def list_pending_aborts(self) -> Sequence[PendingAbort]: ...
    async def mark_abort_attempt(self, action_id: ActionId) -> int: ...
    async def clear_abort_request(self, action_id: ActionId) -> None: ...


class TaskActionDeleter(Protocol):
    """Find, delete and confirm the deletion of an action's TaskAction."""

    async def locate(self, action_id: ActionId) -> list[Place] | None:
        """Where its TaskAction is: ``[]`` when gone, None when another operator owns it."""

    async def delete(self, place: Place) -> None: ...
    async def exists(self, place: Place) -> bool: ...
    async def warn(self, place: Place, reason: str, message: str) -> None: ...


@dataclass
class SweepStats:
    attempts: int = 0
    cleared: int = 0
    gave_up: int = 0
    retried: int = 0
    sweeps: int = 0
    foreign: int = 0
    backoff: dict[ActionId, float] = field(default_factory=dict)


class AbortSweeper:
    """Runs sweeps while this replica leads; one instance per operator process."""

    def __init__(
        self,
        store: AbortStore,
        deleter: TaskActionDeleter,
        *,
        interval: float = 10.0,
        max_attempts: int = 10,
        initial_delay: float = 1.0,
        max_delay: float = 300.0,
        confirm_timeout: float = 3.0,
        workers: int = 5,
        is_not_found: Callable[[BaseException], bool] = lambda exc: False,
        on_attempt: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._deleter = deleter
        self.interval = interval
        self.max_attempts = max_attempts
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.confirm_timeout = confirm_timeout
        self._workers = asyncio.Semaphore(workers)
        self._is_not_found = is_not_found
        self._on_attempt = on_attempt or (lambda outcome: None)
        self._wake = asyncio.Event()
        self._next_at: dict[ActionId, float] = {}
        self._in_flight: set[ActionId] = set()
        self.stats = SweepStats(backoff=self._next_at)

    def wake(self) -> None:
        """Run a sweep now (called on an abort-request NOTIFY)."""
        self._wake.set()

    async def run(self, is_leader: Callable[[], bool], *, on_tick: Callable[[], None] = lambda: None) -> None:
        """Sweep on start, every interval and on wake-ups, while this replica leads; ``on_tick`` is
        called at each of those moments, leader or not, before the sweep."""
        loop = asyncio.get_running_loop()
        while True:
            on_tick()
            if is_leader():
                try:
                    await self.sweep_once()
                except Exception as exc:
                    log.warning("abort sweep failed: %s", exc)
            soonest = min(self._next_at.values(), default=None)
            timeout = self.interval
            if soonest is not None:
                timeout = max(0.05, min(timeout, soonest - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            self._wake.clear()

    async def sweep_once(self) -> None:
        """One pass over the pending aborts; items in backoff or in flight are skipped."""
        self.stats.sweeps += 1
        loop = asyncio.get_running_loop()
        pending = await self._store.list_pending_aborts()
        now = loop.time()
        due: list[ActionId] = []
        live: set[ActionId] = set()
        for row in pending:
            aid = ActionId.of(row.project, row.domain, row.run_name, row.name)
            live.add(aid)
            if aid in self._in_flight or self._next_at.get(aid, 0.0) > now:
                continue
            due.append(aid)
        for gone in set(self._next_at) - live:  # cleared elsewhere
            self._next_at.pop(gone, None)
        await asyncio.gather(*(self._guarded(aid) for aid in due))

    async def _guarded(self, aid: ActionId) -> None:
        async with self._workers:
            self._in_flight.add(aid)
            try:
                await self._attempt(aid)
            finally:
                self._in_flight.discard(aid)

    async def _attempt(self, aid: ActionId) -> None:
        loop = asyncio.get_running_loop()
        try:
            located = await self._deleter.locate(aid)
        except Exception as exc:
            self._next_at[aid] = loop.time() + self.initial_delay
            log.warning("abort of %s: could not look for its TaskAction: %s", aid, exc)
            return
        if located is None:
            # Another operator's action (a namespace-scoped replica sharing the database): not ours
            # to count, delete or clear. Looked at again after a while, in case it shows up here.
            self.stats.foreign += 1
            self._next_at[aid] = loop.time() + max(self.interval, FOREIGN_RECHECK)
            return
        try:
            count = await self._store.mark_abort_attempt(aid)
        except Exception as exc:
            if self._is_not_found(exc):
                self._next_at.pop(aid, None)
                return
            # Not counted as an attempt: the database did not record one.
            self._next_at[aid] = loop.time() + self.initial_delay
            log.warning("abort of %s: could not count the attempt: %s", aid, exc)
            return
        self.stats.attempts += 1
        error: str | None = None
        places = located
        try:
            for place in places:
                await self._deleter.delete(place)
            remaining = await self._wait_gone(places)
        except Exception as exc:
            remaining, error = places, str(exc)
        if not remaining:
            await self._clear(aid)
            self.stats.cleared += 1
            self._on_attempt("cleared")
            log.info("abort of %s carried out (attempt %d)", aid, count)
            return
        why = error or f"TaskAction {', '.join(f'{p.namespace}/{p.name}' for p in remaining)} still exists"
        if count >= self.max_attempts:
            await self._clear(aid)
            self.stats.gave_up += 1
            self._on_attempt("gave_up")
            message = (
                f"gave up aborting {aid} after {count} attempts ({why}); manual action needed: "
                "delete the TaskAction and check its executor"
            )
            log.error(message)
            for place in remaining:
                await self._deleter.warn(place, "AbortGaveUp", message)
            return
        delay = full_jitter(count, self.initial_delay, self.max_delay)
        self._next_at[aid] = loop.time() + delay
        self.stats.retried += 1
        self._on_attempt("retry")
        log.warning(
            "abort of %s, attempt %d/%d: %s; retrying in %.1f s", aid, count, self.max_attempts, why, delay
        )

    async def _clear(self, aid: ActionId) -> None:
        self._next_at.pop(aid, None)
        try:
            await self._store.clear_abort_request(aid)
        except Exception as exc:  # the next sweep finds it again and re-confirms
            log.warning("abort of %s: could not clear the request: %s", aid, exc)

    async def _wait_gone(self, places: list[Place]) -> list[Place]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_timeout
        remaining = list(places)
        while remaining:
            remaining = [p for p in remaining if await self._deleter.exists(p)]
            if not remaining or loop.time() >= deadline:
                break
            await asyncio.sleep(0.1)
        return remaining


async def wake_on_abort_requests(
    requests: Callable[[], AbstractAsyncContextManager[AsyncIterator[object]]],
    sweeper: AbortSweeper,
    *,
    on_restart: Callable[[], None] = lambda: None,
) -> None:
    """Wake the sweep at once when an abort is requested (a NOTIFY), not at the next tick.

    ``requests`` opens the database's stream of abort requests; when it fails it is opened again a
    second later (``on_restart`` is called each time), until cancelled.
    """
    while True:
        try:
            async with requests() as stream:
                async for _ in stream:
                    sweeper.wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("abort-request listener failed (%s); retrying", exc)
            on_restart()
            await asyncio.sleep(1)
