"""The load generator: plays Flyte's executor (and the parent's creation of children) for many runs.

Each action is driven by one coroutine: it waits for its parent to be RUNNING, creates its TaskAction
(as a running parent does in Flyte), moves it QUEUED → INITIALIZING → RUNNING by status patches,
waits for all its children to end, then writes its terminal phase (SUCCEEDED, or FAILED for every
tenth action). Status is written exactly as the stand-in executor writes it (``build_status``),
through the status subresource. API calls go through ``RawApi`` (aiohttp on this event loop) with at
most ``concurrency`` requests in flight; an optional pacer holds transitions to an offered rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from _bench.rawapi import ApiError, RawApi
from _bench.workload import RECORDED_AS, Node, body
from taskaction_operator.devtools.executor import _Track, build_status


class Pacer:
    """Grants transition *i* at ``t0 + i / rate``; ``rate=None`` is full speed.

    A generator that fell behind may catch up, but by at most ``max_burst`` seconds' worth at once.
    """

    def __init__(self, rate: float | None, max_burst: float = 0.25) -> None:
        self.rate = rate
        self.max_burst = max_burst
        self._t0: float | None = None
        self._n = 0

    async def acquire(self) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        target = self._t0 + self._n / self.rate
        if now - target > self.max_burst:
            self._t0 += now - target - self.max_burst
            target = now - self.max_burst
        self._n += 1
        if target > now:
            await asyncio.sleep(target - now)


@dataclass
class GenStats:
    creates: int = 0
    patches: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    #: (run, action, recorded phase int) -> wall-clock time the status patch call returned
    acks: dict[tuple[str, str, int], float] = field(default_factory=dict)
    #: (run, action) -> wall-clock time the create call returned
    created: dict[tuple[str, str], float] = field(default_factory=dict)
    timed_out: bool = False


class LoadGenerator:
    def __init__(
        self,
        api: RawApi,
        namespace: str,
        project: str,
        runs: list[list[Node]],
        *,
        rate: float | None,
        concurrency: int = 32,
        stop_at: Callable[[Node], int] | None = None,
    ) -> None:
        """``stop_at(node)``: how many of the node's four transitions to write (default all 4); a node
        stopped before its terminal phase does not wait for its children."""
        self.api = api
        self.namespace = namespace
        self.project = project
        self.runs = runs
        self.pacer = Pacer(rate)
        self.concurrency = concurrency
        self.stop_at = stop_at or (lambda node: 4)
        self.stats = GenStats()
        self._sem = asyncio.Semaphore(concurrency)

    @property
    def transitions_planned(self) -> int:
        return sum(min(4, self.stop_at(n)) for run in self.runs for n in run)

    async def _call(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        async with self._sem:
            await fn(*args)

    def _error(self, what: str, exc: BaseException) -> None:
        self.stats.errors += 1
        if len(self.stats.error_samples) < 10:
            reason = str(exc) if isinstance(exc, ApiError) else repr(exc)
            self.stats.error_samples.append(f"{what}: {reason}")

    async def _create(self, node: Node) -> bool:
        try:
            await self._call(self.api.create, self.namespace, body(self.project, node))
        except Exception as exc:
            self._error(f"create {node.cr}", exc)
            return False
        self.stats.creates += 1
        self.stats.created[(node.run, node.name)] = time.time()
        return True

    async def _move(self, node: Node, track: _Track, phase: str) -> None:
        await self.pacer.acquire()
        status = build_status(track, phase)
        try:
            await self._call(self.api.patch_status, self.namespace, node.cr, {"status": status})
        except Exception as exc:
            self._error(f"patch {node.cr} {phase}", exc)
            return
        self.stats.patches += 1
        self.stats.acks[(node.run, node.name, RECORDED_AS[phase])] = time.time()

    async def _drive(
        self, node: Node, running: dict[str, asyncio.Event], done: dict[str, asyncio.Event]
    ) -> None:
        try:
            if node.parent is not None:
                await running[node.parent].wait()
            if not await self._create(node):
                return
            track = _Track()
            upto = min(4, self.stop_at(node))
            for phase in node.path[: min(3, upto)]:
                await self._move(node, track, phase)
            running[node.name].set()
            if upto < 4:
                return
            for child in node.children:
                await done[child].wait()
            await self._move(node, track, node.path[3])
        finally:
            running[node.name].set()  # never leave children waiting on a failed parent
            done[node.name].set()

    async def _drive_run(self, run: list[Node]) -> None:
        running = {n.name: asyncio.Event() for n in run}
        done = {n.name: asyncio.Event() for n in run}
        await asyncio.gather(*(self._drive(n, running, done) for n in run))

    async def run(self, timeout: float) -> GenStats:
        """Drive every run to its end; bounded by ``timeout`` seconds (then ``timed_out``)."""
        self.stats.started = time.time()
        tasks = [asyncio.create_task(self._drive_run(r)) for r in self.runs]
        try:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                self.stats.timed_out = True
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self.stats.finished = time.time()
        return self.stats
