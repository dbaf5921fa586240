"""A watch: an async iterator of re-read rows, fed by key notifications, never blocking the feeder.

The listener hands each matching notification to :meth:`Subscription.offer`, which only records the
key (an insertion-ordered set) and wakes the consumer: a slow consumer can never hold up the listener
or other watchers. A burst of notifications for one key collapses into one re-read. The set is
bounded; on overflow the keys are replaced by a single "re-read everything you watch" marker instead
of being dropped, so a watcher always ends up seeing the latest state. The same marker is set for
every watcher when the listener reconnects after losing its connection.

Reads happen in the consumer's ``__anext__``. Temporary database errors are retried with backoff,
keeping the key; a row that is gone is skipped; a permanent error is raised to the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from taskaction_operator.repo.errors import NotFoundError, TemporaryRepoError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Route", "Subscription", "Watch"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What a subscription listens to: ``("run", "p/d/r")`` one run, ``("runs", "")`` every run,
#: ``("action", "p/d/r/a")`` one action, ``("run-actions", "p/d/r")`` every action of a run,
#: ``("aborts", "")`` every abort request.
Route = tuple[Literal["run", "runs", "action", "run-actions", "aborts"], str]

_RETRY_INITIAL = 0.05
_RETRY_MAX = 2.0


class Subscription(Generic[T]):
    """An async iterator over what one watch yields; close it with :meth:`aclose` or ``async with``.

    ``read(key)`` re-reads what a notification for ``key`` is about (``None``: nothing to yield);
    ``resync(since)`` re-reads everything the watch covers, ``since`` being a server-clock lower
    bound on what may have been missed (used by the all-runs watch, ignored by the others).

    What it needs from whoever feeds it is given, not looked up: ``clock()``, the server's current
    time (when keys start to pile up); ``resync_margin``, taken off every re-read's lower bound; and
    ``on_close(sub)``, called once when it closes (to stop routing notifications to it).
    """

    def __init__(
        self,
        routes: Sequence[Route],
        read: Callable[[str], Awaitable[T | None]],
        resync: Callable[[datetime], Awaitable[Sequence[T]]],
        *,
        max_pending: int,
        name: str,
        clock: Callable[[], datetime],
        resync_margin: timedelta,
        on_close: Callable[[Subscription[Any]], None],
    ) -> None:
        self.routes: tuple[Route, ...] = tuple(routes)
        self.name = name
        self._clock = clock
        self._resync_margin = resync_margin
        self._on_close = on_close
        self._read = read
        self._resync_fn = resync
        self._max_pending = max(1, max_pending)
        self._pending: dict[str, None] = {}
        self._pending_since: datetime | None = None
        self._resync_since: datetime | None = None
        self._ready: deque[T] = deque()
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        #: How many times the pending set overflowed into a full re-read (observability).
        self.overflows = 0
        #: How many full re-reads were requested (overflow or reconnect).
        self.resyncs = 0

    # -- fed by the listener (synchronous, never blocks) ---------------------------------------------
    def offer(self, key: str) -> None:
        """Record that ``key`` changed. Called by the listener for every matching notification."""
        if self._closed.is_set():
            return
        if not self._pending:
            self._pending_since = self._clock()
        self._pending[key] = None
        if len(self._pending) > self._max_pending:
            self.overflows += 1
            log.warning(
                "watch %s: more than %d distinct keys pending; coalescing them into one full re-read",
                self.name,
                self._max_pending,
            )
            since = self._pending_since or self._clock()
            self._pending.clear()
            self.request_resync(since)
        self._wake.set()

    def request_resync(self, since: datetime) -> None:
        """Re-read everything this watch covers (``since``: the earliest change that may be missed)."""
        if self._closed.is_set():
            return
        self.resyncs += 1
        since -= self._resync_margin
        self._resync_since = since if self._resync_since is None else min(self._resync_since, since)
        self._wake.set()

    # -- consumed by the caller -------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            if self._closed.is_set():
                raise StopAsyncIteration
            if self._ready:
                return self._ready.popleft()
            if self._resync_since is not None:
                since, self._resync_since = self._resync_since, None
                # The full re-read happens after these keys were notified: it covers them.
                self._pending.clear()
                items = await self._retrying(functools.partial(self._resync_fn, since))
                if items is not None:
                    self._ready.extend(items)  # type: ignore[arg-type]
                continue
            if self._pending:
                key = next(iter(self._pending))
                del self._pending[key]
                item = await self._retrying(functools.partial(self._read, key))
                if item is not None:
                    return item  # type: ignore[return-value]
                continue
            self._wake.clear()
            waiter = asyncio.ensure_future(self._wake.wait())
            closer = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                closer.cancel()

    async def _retrying(self, fn: Callable[[], Awaitable[object]]) -> object:
        """``fn()``, retried with backoff on temporary errors; ``None`` if the row is gone or we close."""
        delay = _RETRY_INITIAL
        while True:
            try:
                return await fn()
            except NotFoundError:
                return None
            except TemporaryRepoError as exc:
                log.info("watch %s: re-read failed (%s); retrying in %.2fs", self.name, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), delay)
                if self._closed.is_set():
                    return None
                delay = min(delay * 2, _RETRY_MAX)

    async def aclose(self) -> None:
        """Stop watching; a pending ``__anext__`` ends with ``StopAsyncIteration``."""
        if not self._closed.is_set():
            self._closed.set()
            self._on_close(self)
            self._pending.clear()
            self._ready.clear()

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class Watch(Generic[T]):
    """What a ``watch_*`` method returns: ``await`` it for a subscription that is already listening,
    or use it as ``async with repo.watch_…(…) as sub:`` to have the subscription closed on exit."""

    def __init__(self, start: Callable[[], Awaitable[Subscription[T]]]) -> None:
        self._start = start
        self._sub: Subscription[T] | None = None

    def __await__(self) -> Generator[Any, None, Subscription[T]]:
        return self._start().__await__()

    async def __aenter__(self) -> Subscription[T]:
        self._sub = await self._start()
        return self._sub

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._sub is not None:
            await self._sub.aclose()
