"""The one LISTEN connection of a repository, and the routing of notifications to watchers.

Why one connection: every watcher of a process shares it (upstream does the same with ``pq.Listener``),
so a thousand watches cost one server backend. The connection is a psycopg 3 ``AsyncConnection`` in
autocommit mode, read with ``conn.notifies()``; it is pinged between notifications so that a dead
connection is noticed even when nothing is being written.

DELIBERATE DIFFERENCE from upstream, whose listener stops for good when a ping fails (upstream
runs/repository/impl/action.go: processNotifications returns when ``listener.Ping()`` fails):
a lost connection is re-established with exponential backoff, and then every watcher is told to
re-read what it watches, because notifications sent while we were away are lost for good. For the
all-runs watch "what it watches" is bounded by time: the runs updated since the last moment the old
connection was known to be alive (by the server's clock), minus a safety margin for transactions that
started before and committed after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from taskaction_operator.repo.dsn import TEXT_AS_STR, NetworkBounds
from taskaction_operator.repo.errors import RepoError, TemporaryRepoError, classify_db_error
from taskaction_operator.repo.notify.channels import ABORT_CHANNEL, ACTION_CHANNEL, CHANNELS, RUN_CHANNEL
from taskaction_operator.repo.notify.subscription import Route, Subscription

__all__ = ["NotificationListener"]

log = logging.getLogger(__name__)


class NotificationListener:
    """LISTENs on ``run_updates``, ``action_updates`` (and our ``abort_requests``) and offers each key
    to the matching watchers.

    Started lazily by the first :meth:`register`; :meth:`close` stops it and ends every watch.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        ping_interval: float = 10.0,
        connect_timeout: float = 10.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        resync_margin: timedelta = timedelta(seconds=30),
    ) -> None:
        self._conninfo_full = make_conninfo(
            conninfo,
            connect_timeout=max(1, int(connect_timeout)),
            application_name="taskaction-operator-listener",
            **NetworkBounds().keepalives(),
            **TEXT_AS_STR,
        )
        self._ping_interval = ping_interval
        self._connect_timeout = connect_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.resync_margin = resync_margin
        self._routes: dict[Route, set[Subscription[Any]]] = {}
        self._subs: set[Subscription[Any]] = set()
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._ever_listened = False
        self._closed = False
        self._last_error: BaseException | None = None
        # The server's clock as of the last sign of life, and the loop time it was taken at.
        self._server_time: datetime | None = None
        self._server_mono = 0.0
        self._alive_mono = 0.0
        #: How many times the connection was re-established after a loss (observability, tests).
        self.reconnects = 0
        #: How many notifications were received.
        self.received = 0

    # -- state ------------------------------------------------------------------------------------
    @property
    def listening(self) -> bool:
        """Whether LISTEN is currently active on a live connection."""
        return self._listening.is_set()

    @property
    def watchers(self) -> int:
        """How many subscriptions are registered."""
        return len(self._subs)

    def server_clock(self) -> datetime:
        """An estimate of the database server's current time (its last reading plus elapsed time)."""
        if self._server_time is None:
            return datetime.now(UTC)
        elapsed = asyncio.get_running_loop().time() - self._server_mono
        return self._server_time + timedelta(seconds=elapsed)

    # -- watchers ---------------------------------------------------------------------------------
    async def register(self, sub: Subscription[Any]) -> None:
        """Route notifications to ``sub``; returns once LISTEN is active, so nothing after is missed.

        If the connection is being re-established, returns after ``connect_timeout`` anyway: the
        re-read every watcher gets on reconnect covers the gap. Raises :class:`TemporaryRepoError` if
        the listener has never managed to LISTEN within ``connect_timeout``.
        """
        if self._closed:
            raise RepoError("the repository is closed")
        self._subs.add(sub)
        for route in sub.routes:
            self._routes.setdefault(route, set()).add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="taskaction-repo-listener")
        if self._listening.is_set():
            return
        try:
            await asyncio.wait_for(self._listening.wait(), self._connect_timeout)
        except TimeoutError:
            if self._ever_listened:
                return
            self.unregister(sub)
            raise TemporaryRepoError(
                f"could not LISTEN for notifications: {self._last_error}"
            ) from self._last_error

    def unregister(self, sub: Subscription[Any]) -> None:
        self._subs.discard(sub)
        for route in sub.routes:
            subs = self._routes.get(route)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._routes[route]

    def _dispatch(self, channel: str, payload: str) -> None:
        self.received += 1
        targets: set[Subscription[Any]] = set()
        if channel == RUN_CHANNEL:
            targets |= self._routes.get(("run", payload), set())
            targets |= self._routes.get(("runs", ""), set())
        elif channel == ACTION_CHANNEL:
            targets |= self._routes.get(("action", payload), set())
            run_key, sep, _ = payload.rpartition("/")
            if sep:
                targets |= self._routes.get(("run-actions", run_key), set())
        elif channel == ABORT_CHANNEL:
            targets |= self._routes.get(("aborts", ""), set())
        for sub in targets:
            sub.offer(payload)

    # -- the connection loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        delay = self._backoff_initial
        while not self._closed:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo_full, autocommit=True)
                for channel in CHANNELS:
                    await conn.execute(f"LISTEN {channel}")
                lost_since = self._last_alive() if self._ever_listened else None
                await self._ping(conn)
                self._listening.set()
                delay = self._backoff_initial
                if lost_since is not None:
                    self.reconnects += 1
                    log.warning("notification listener reconnected; %d watchers re-read", len(self._subs))
                    for sub in list(self._subs):
                        sub.request_resync(lost_since)
                self._ever_listened = True
                while not self._closed:
                    async for note in conn.notifies(timeout=self._ping_interval):
                        self._alive_mono = asyncio.get_running_loop().time()
                        self._dispatch(note.channel, note.payload)
                    await self._ping(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._last_error = classify_db_error(exc)
                if self._listening.is_set():
                    log.warning("notification listener lost its connection: %s", exc)
                else:
                    log.info("notification listener cannot connect (retry in %.1fs): %s", delay, exc)
            finally:
                self._listening.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            if not self._closed:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)

    def _last_alive(self) -> datetime:
        """The server time at the last sign of life of the connection (ping or notification)."""
        if self._server_time is None:
            return datetime.now(UTC)
        return self._server_time + timedelta(seconds=max(0.0, self._alive_mono - self._server_mono))

    async def _ping(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cur = await conn.execute("SELECT now()")
        row = await cur.fetchone()
        if row is not None:
            self._server_time = row[0]
            self._server_mono = self._alive_mono = asyncio.get_running_loop().time()

    async def close(self) -> None:
        """Stop listening and end every watch."""
        self._closed = True
        for sub in list(self._subs):
            await sub.aclose()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
