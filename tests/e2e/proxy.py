"""A TCP proxy on 127.0.0.1 whose forwarding the test switches off and on: a silent network.

``hang()`` stops forwarding bytes in both directions while keeping every connection open (nothing
is closed, no reset: a peer sees silence, as behind a dead link); connections accepted meanwhile are
held the same way. ``resume()`` forwards again, starting with what was held. TLS passes through
untouched. The proxy runs its own event loop in a thread, so a test that blocks its own loop (a
subprocess start, a synchronous poll) does not stall it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass


@dataclass
class ProxyStats:
    """Bytes forwarded and connections accepted so far."""

    forwarded: int = 0
    accepted: int = 0


class HangableProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.stats = ProxyStats()
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="hangable-proxy", daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> HangableProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def hang(self) -> None:
        """Stop forwarding, in both directions, on every connection, new ones included."""
        asyncio.run_coroutine_threadsafe(self._set(False), self._loop).result(10)

    def resume(self) -> None:
        asyncio.run_coroutine_threadsafe(self._set(True), self._loop).result(10)

    @property
    def hung(self) -> bool:
        return not self._flowing.is_set()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _set(self, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _listen(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy until EOF; a chunk read while hung (EOF too) waits until forwarding resumes, and
        nothing more is read meanwhile."""
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(65536)
                await self._flowing.wait()
                if not data:
                    break
                writer.write(data)
                await writer.drain()
                self.stats.forwarded += len(data)
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.close()
        self._flowing.set()
