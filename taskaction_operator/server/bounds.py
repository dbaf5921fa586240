"""Bounds of the server's calls: how long a unary call may take (:class:`UnaryDeadline`), how many
watch streams may be open at once and how long one may last (:class:`StreamLimits`), and noticing a
client that went away while its stream had nothing to send. (The largest request message is
connectrpc's ``read_max_bytes``, see :func:`~taskaction_operator.server.app.build_app`.)

connectrpc notices a disconnect only when the stream's next message is ready, so a watch of a quiet
run would wait forever for a client long gone; the router hands each request an event set by the
client's ``http.disconnect`` (:func:`watch_disconnect`, a context variable, since connectrpc calls the
method in the request's own task), and :meth:`Stream.follow` stops on it.

A stream that reaches the server's lifetime ends cleanly (Flyte's SDK re-subscribes to a watch that
ends before a terminal phase, as it would after a proxy's idle timeout); one that reaches the
client's own deadline (``Connect-Timeout-Ms``, ``grpc-timeout``) ends with ``deadline_exceeded``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from taskaction_operator.server.observability import RPC_STREAMS_REFUSED

__all__ = ["Stream", "StreamLimits", "UnaryDeadline", "watch_disconnect"]

T = TypeVar("T")
Receive = Callable[[], Awaitable[dict[str, Any]]]

_DISCONNECTED: ContextVar[asyncio.Event | None] = ContextVar("taskaction_disconnected", default=None)


def watch_disconnect(receive: Receive) -> Receive:
    """``receive`` for one request, setting this request's disconnect event on ``http.disconnect``."""
    event = asyncio.Event()
    _DISCONNECTED.set(event)

    async def wrapped() -> dict[str, Any]:
        message = await receive()
        if message["type"] == "http.disconnect":
            event.set()
        return message

    return wrapped


class Stream:
    """One open watch: :meth:`follow` yields a subscription's items until the stream must end."""

    def __init__(self, deadline: float, client_deadline: float | None, closing: asyncio.Event) -> None:
        self._deadline = deadline
        self._client_deadline = client_deadline
        self._gone = _DISCONNECTED.get() or asyncio.Event()
        self._closing = closing

    def _over(self) -> bool:
        return self._gone.is_set() or self._closing.is_set()

    async def follow(self, items: AsyncIterator[T]) -> AsyncGenerator[T]:
        """The next items of ``items``; returns at the server's lifetime, when the client is gone or
        when the server shuts down, raises ``deadline_exceeded`` at the client's deadline."""
        loop = asyncio.get_running_loop()
        stops = {asyncio.ensure_future(self._gone.wait()), asyncio.ensure_future(self._closing.wait())}
        try:
            while not self._over():
                ends = min(self._deadline, self._client_deadline or self._deadline)
                remaining = ends - loop.time()
                if remaining <= 0:
                    break
                step = asyncio.ensure_future(anext(items))
                done, _ = await asyncio.wait({step, *stops}, timeout=remaining, return_when="FIRST_COMPLETED")
                if step not in done:
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await step
                    continue
                try:
                    yield step.result()
                except StopAsyncIteration:
                    return
        finally:
            for stop in stops:
                stop.cancel()
        if not self._over() and self._client_deadline is not None and loop.time() >= self._client_deadline:
            raise ConnectError(Code.DEADLINE_EXCEEDED, "the client's deadline passed")


class StreamLimits:
    """At most ``max_streams`` watches open in this process, each for at most ``max_seconds``."""

    def __init__(self, max_streams: int = 1000, max_seconds: float = 3600.0) -> None:
        if max_streams < 1 or max_seconds <= 0:
            raise ValueError("max_streams must be at least 1 and max_seconds positive")
        self.max_streams = max_streams
        self.max_seconds = max_seconds
        self.open = 0
        self._closing = asyncio.Event()

    def close(self) -> None:
        """The server is shutting down: every open stream ends cleanly now (clients re-subscribe, to
        another replica if there is one), and new ones are refused with ``unavailable``."""
        self._closing.set()

    @contextlib.asynccontextmanager
    async def stream(self, ctx: RequestContext[Any, Any]) -> AsyncIterator[Stream]:
        """A slot for one stream, or ``resource_exhausted`` when every slot is taken."""
        if self._closing.is_set():
            raise ConnectError(Code.UNAVAILABLE, "the server is shutting down; retry")
        if self.open >= self.max_streams:
            RPC_STREAMS_REFUSED.inc()
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"the server has {self.open} watch streams open, its maximum; retry later",
            )
        loop = asyncio.get_running_loop()
        now = loop.time()
        remaining_ms = ctx.timeout_ms()
        client_deadline = None if remaining_ms is None else now + remaining_ms / 1000.0
        self.open += 1
        try:
            yield Stream(now + self.max_seconds, client_deadline, self._closing)
        finally:
            self.open -= 1


class UnaryDeadline:
    """A connectrpc unary interceptor: a call ends with ``deadline_exceeded`` after ``max_seconds``,
    or at the client's own deadline when that comes first."""

    def __init__(self, max_seconds: float = 30.0) -> None:
        self.max_seconds = max_seconds

    async def intercept_unary(
        self,
        call_next: Callable[[Any, RequestContext[Any, Any]], Awaitable[Any]],
        request: Any,
        ctx: RequestContext[Any, Any],
    ) -> Any:
        remaining_ms = ctx.timeout_ms()
        seconds = self.max_seconds if remaining_ms is None else min(self.max_seconds, remaining_ms / 1000.0)
        try:
            async with asyncio.timeout(seconds):
                return await call_next(request, ctx)
        except TimeoutError:
            raise ConnectError(
                Code.DEADLINE_EXCEEDED, f"the call did not finish within {seconds:g} s"
            ) from None
