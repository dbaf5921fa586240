"""One repository subscription per watched key, shared by every stream watching that key.

Without it, N streams watching one run are N subscriptions, and one notification costs N reads of
the same row (the figures are in benchmarks/RESULTS.md). A :class:`Fanout` opens the subscription
for the first stream of a key, reads each notified row once, and hands it to every stream of the key;
the last stream to leave closes it. Each stream has its own buffer that keeps the latest item per
item key (an action's name) in the slot of its oldest pending one, so a slow stream coalesces
intermediate states instead of holding the others up or growing without bound. Subscribing still
happens before the stream reads its snapshot, so nothing committed in between is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from taskaction_operator.repo import Subscription

__all__ = ["Fanout", "Receiver"]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class Receiver(Generic[T]):
    """One stream's view of a shared subscription: an async iterator of the latest item per key."""

    def __init__(self, key_of: Callable[[T], str]) -> None:
        self._key_of = key_of
        self._pending: dict[str, T] = {}
        self._wake = asyncio.Event()
        self._error: BaseException | None = None
        self._ended = False

    def put(self, item: T) -> None:
        self._pending[self._key_of(item)] = item  # an item already waiting keeps its place
        self._wake.set()

    def end(self, error: BaseException | None = None) -> None:
        self._error, self._ended = error, True
        self._wake.set()

    def __aiter__(self) -> Receiver[T]:
        return self

    async def __anext__(self) -> T:
        while not self._pending:
            if self._error is not None:
                raise self._error
            if self._ended:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        key = next(iter(self._pending))
        return self._pending.pop(key)


class _Shared(Generic[T]):
    def __init__(self, sub: Subscription[T]) -> None:
        self.sub = sub
        self.receivers: set[Receiver[T]] = set()
        self.pump: asyncio.Task[None] | None = None

    async def run(self) -> None:
        try:
            async for item in self.sub:
                for receiver in list(self.receivers):
                    receiver.put(item)
        except Exception as exc:
            for receiver in list(self.receivers):
                receiver.end(exc)
        else:
            for receiver in list(self.receivers):
                receiver.end()


class Fanout(Generic[K, T]):
    """Shared subscriptions by key: ``subscribe(key)`` opens one (already listening when it returns),
    ``key_of(item)`` is what a stream's buffer coalesces by."""

    def __init__(
        self, subscribe: Callable[[K], Awaitable[Subscription[T]]], key_of: Callable[[T], str]
    ) -> None:
        self._subscribe = subscribe
        self._key_of = key_of
        self._shared: dict[K, _Shared[T]] = {}
        self._lock = asyncio.Lock()

    @property
    def subscriptions(self) -> int:
        """How many repository subscriptions are open (one per watched key)."""
        return len(self._shared)

    @contextlib.asynccontextmanager
    async def receive(self, key: K) -> AsyncIterator[Receiver[T]]:
        """A receiver of ``key``'s items from now on; the subscription closes with its last receiver."""
        receiver: Receiver[T] = Receiver(self._key_of)
        async with self._lock:
            shared = self._shared.get(key)
            if shared is not None and shared.pump is not None and shared.pump.done():
                # Its subscription failed (its receivers were told): the next stream starts afresh.
                del self._shared[key]
                await shared.sub.aclose()
                shared = None
            if shared is None:
                shared = _Shared(await self._subscribe(key))
                self._shared[key] = shared
                shared.pump = asyncio.create_task(shared.run(), name=f"fanout {key}")
            shared.receivers.add(receiver)
        try:
            yield receiver
        finally:
            async with self._lock:
                shared.receivers.discard(receiver)
                if not shared.receivers and self._shared.get(key) is shared:
                    del self._shared[key]
                    if shared.pump is not None:
                        shared.pump.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await shared.pump
                    await shared.sub.aclose()
