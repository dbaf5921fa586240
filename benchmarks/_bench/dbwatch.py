"""What the database shows during a phase: row counts over time, commit-time notifications, the
recorded event rows, and PostgreSQL's own statistics. Plain psycopg, never the repository under test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg


@dataclass
class CountSample:
    t: float
    events: int
    actions: int
    extra: Any = None


class _DbThread(threading.Thread):
    """A daemon thread that holds one autocommit connection for ``max_s`` seconds or until
    ``stop()``, reconnecting (and counting it) when the shared database restarts."""

    def __init__(self, name: str, dsn: str, max_s: float) -> None:
        super().__init__(name=name, daemon=True)
        self.dsn, self.max_s = dsn, max_s
        self._halt = threading.Event()
        self.error = ""
        self.reconnects = 0

    def _session(self, conn: psycopg.Connection[Any], deadline: float) -> None:
        raise NotImplementedError

    def _lost(self) -> None:
        """Called after a lost connection, before the pause and the reconnect."""

    def run(self) -> None:
        deadline = time.monotonic() + self.max_s
        while not self._halt.is_set() and time.monotonic() < deadline:
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                    self._session(conn, deadline)
            except Exception as exc:
                self.error = repr(exc)
                self.reconnects += 1
                self._lost()
                self._halt.wait(0.5)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class CountPoller(_DbThread):
    """Every ``interval`` s: count ``action_events`` and ``actions`` rows of ``project`` (and call
    ``also()``, e.g. to sample the operator's /proc); stops on ``stop()`` or after ``max_s``."""

    def __init__(
        self,
        dsn: str,
        project: str,
        *,
        interval: float = 0.5,
        max_s: float = 3600,
        also: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__("bench-count-poller", dsn, max_s)
        self.project, self.interval, self.also = project, interval, also
        self.samples: list[CountSample] = []

    def _session(self, conn: psycopg.Connection[Any], deadline: float) -> None:
        while not self._halt.is_set() and time.monotonic() < deadline:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM action_events WHERE project = %s),"
                " (SELECT count(*) FROM actions WHERE project = %s)",
                (self.project, self.project),
            ).fetchone()
            assert row is not None
            extra = self.also() if self.also else None
            self.samples.append(CountSample(time.time(), int(row[0]), int(row[1]), extra))
            self._halt.wait(self.interval)

    def latest(self) -> CountSample | None:
        return self.samples[-1] if self.samples else None


class NotifyListener(_DbThread):
    """LISTEN on ``action_updates``: the operator notifies each touched action inside the recording
    transaction, and PostgreSQL delivers at COMMIT, so an arrival time is (just after) a commit time.
    Notifications sent while disconnected are lost (counted in ``reconnects``)."""

    def __init__(self, dsn: str, project: str, *, max_s: float = 3600) -> None:
        super().__init__("bench-notify", dsn, max_s)
        self.prefix = project + "/"
        #: "run/action" -> arrival times, ascending
        self.arrivals: dict[str, list[float]] = {}
        self.count = 0
        self.ready = threading.Event()

    def _session(self, conn: psycopg.Connection[Any], deadline: float) -> None:
        conn.execute("LISTEN action_updates")
        self.ready.set()
        while not self._halt.is_set() and time.monotonic() < deadline:
            for n in conn.notifies(timeout=0.5):
                now = time.time()
                if n.payload.startswith(self.prefix):
                    _, _, run, action = n.payload.split("/", 3)
                    self.arrivals.setdefault(f"{run}/{action}", []).append(now)
                    self.count += 1
                if self._halt.is_set():
                    break

    def _lost(self) -> None:
        self.ready.set()


def event_rows(dsn: str, project: str) -> list[tuple[str, str, int, int, float]]:
    """(run, action, attempt, phase, updated_at epoch) of every event row of ``project``.

    ``updated_at`` is ``now()`` of the recording transaction: its start on the database's clock (this
    machine's clock)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT run_name, name, attempt, phase, extract(epoch FROM updated_at)::float8"
            " FROM action_events WHERE project = %s",
            (project,),
        ).fetchall()
    return [(r[0], r[1], int(r[2]), int(r[3]), float(r[4])) for r in rows]


def action_phases(dsn: str, project: str, run: str | None = None) -> dict[int, int]:
    """phase -> number of ``actions`` rows of ``project`` (one run, or all)."""
    sql = "SELECT phase, count(*) FROM actions WHERE project = %s"
    params: tuple[Any, ...] = (project,)
    if run is not None:
        sql += " AND run_name = %s"
        params += (run,)
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {int(p): int(n) for p, n in conn.execute(sql + " GROUP BY phase", params).fetchall()}


@dataclass
class PgStats:
    t: float
    xact_commit: int
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    #: sessions established to the database so far (connections opened)
    sessions: int = 0


def pg_stats(dsn: str) -> PgStats:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        tables = {
            r[0]: {"ins": int(r[1]), "upd": int(r[2]), "hot_upd": int(r[3])}
            for r in conn.execute(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                " WHERE relname IN ('actions', 'action_events')"
            ).fetchall()
        }
    return PgStats(time.time(), int(row[0]) if row else 0, tables, int(row[1]) if row else 0)


def pg_stats_settled(dsn: str, before: PgStats, min_event_inserts: int, max_wait: float = 12.0) -> PgStats:
    """PostgreSQL publishes a backend's counters up to ~10 s after it goes idle: wait (bounded) until
    the ``action_events`` insert count covers what was recorded."""
    deadline = time.monotonic() + max_wait
    while True:
        now = pg_stats(dsn)
        done = now.tables.get("action_events", {}).get("ins", 0) - before.tables.get("action_events", {}).get(
            "ins", 0
        )
        if done >= min_event_inserts or time.monotonic() > deadline:
            return now
        time.sleep(1.0)


def pg_delta(a: PgStats, b: PgStats) -> dict[str, int]:
    out = {"xact_commit": b.xact_commit - a.xact_commit, "sessions": b.sessions - a.sessions}
    for table in ("actions", "action_events"):
        for k in ("ins", "upd", "hot_upd"):
            out[f"{table}.{k}"] = b.tables.get(table, {}).get(k, 0) - a.tables.get(table, {}).get(k, 0)
    return out
