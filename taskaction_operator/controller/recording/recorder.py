"""The recorder: many handlers' writes, one database transaction.

kopf runs one task per object; each hands its rows to ``Recorder.submit`` and awaits the commit, so
one object's writes stay in order while different objects' writes share a transaction (natural
batching: whatever queued up while the previous transaction ran goes into the next one). Temporary
database errors are retried here with backoff until the database answers; a permanent error in a
batch is isolated by retrying its items one by one, and only the offending item's caller sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

A = TypeVar("A")
E = TypeVar("E")
U = TypeVar("U")


#: What the recorder writes to: one transaction per call, keyword arguments ``actions``, ``events``
#: and ``updates`` (``ActionRepo.record_batch``).
BatchSink = Callable[..., Awaitable[None]]


@dataclass(slots=True)
class Work(Generic[A, E, U]):
    """The rows one observation needs written."""

    actions: list[A] = field(default_factory=list)
    events: list[E] = field(default_factory=list)
    updates: list[U] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.actions) + len(self.events) + len(self.updates)


@dataclass(slots=True)
class _Pending(Generic[A, E, U]):
    work: Work[A, E, U]
    done: asyncio.Future[None]


class Recorder(Generic[A, E, U]):
    """Batches ``Work`` from many concurrent callers into few transactions."""

    def __init__(
        self,
        sink: BatchSink,
        *,
        batch_max: int = 500,
        is_temporary: Callable[[BaseException], bool],
        max_backoff: float = 5.0,
        on_batch: Callable[[int, int, float], None] | None = None,
        on_error: Callable[[BaseException, bool], None] | None = None,
    ) -> None:
        self._sink = sink
        self._batch_max = batch_max
        self._is_temporary = is_temporary
        self._max_backoff = max_backoff
        self._on_batch = on_batch
        self._on_error = on_error
        self._queue: asyncio.Queue[_Pending[A, E, U]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.temporary_failures = 0

    @property
    def depth(self) -> int:
        """Observations waiting for a transaction."""
        return self._queue.qsize()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="taskaction-recorder")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(self, work: Work[A, E, U]) -> None:
        """Write ``work`` in some transaction and return once it is committed.

        Raises the permanent error of this work's rows; temporary errors are retried internally.
        """
        if not len(work):
            return
        if self._task is None:
            raise RuntimeError("recorder is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(work, done))
        await done

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            size = len(first.work)
            while size < self._batch_max and not self._queue.empty():
                item = self._queue.get_nowait()
                batch.append(item)
                size += len(item.work)
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Pending[A, E, U]]) -> None:
        live = [p for p in batch if not p.done.cancelled()]
        if not live:
            return
        try:
            await self._commit_with_retry(live)
        except Exception as exc:  # a permanent error: isolate the item that caused it
            if len(live) == 1:
                _resolve(live[0], exc)
                return
            log.warning("a batch of %d failed (%s); retrying its items one by one", len(live), exc)
            for p in live:
                try:
                    await self._commit_with_retry([p])
                except Exception as item_exc:
                    _resolve(p, item_exc)
                else:
                    _resolve(p, None)
        else:
            for p in live:
                _resolve(p, None)

    async def _commit_with_retry(self, items: list[_Pending[A, E, U]]) -> None:
        actions = [a for p in items for a in p.work.actions]
        events = [e for p in items for e in p.work.events]
        updates = [u for p in items for u in p.work.updates]
        delay = 0.1
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._sink(actions=actions, events=events, updates=updates)
            except Exception as exc:
                temporary = self._is_temporary(exc)
                if self._on_error is not None:
                    self._on_error(exc, temporary)
                if not temporary:
                    raise
                self.temporary_failures += 1
                log.warning(
                    "database unavailable (%s); retrying %d rows in %.1f s",
                    exc,
                    len(actions) + len(events) + len(updates),
                    delay,
                )
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, self._max_backoff)
                continue
            self.batches += 1
            if self._on_batch is not None:
                self._on_batch(len(items), len(actions) + len(events) + len(updates), loop.time() - started)
            return


def _resolve(p: _Pending[Any, Any, Any], exc: BaseException | None) -> None:
    if p.done.done():
        return
    if exc is None:
        p.done.set_result(None)
    else:
        p.done.set_exception(exc)
