"""DSN handling: callers hand us ``postgresql://…``; SQLAlchemy needs a driver name, libpq does not.

One place converts a libpq-style DSN into the SQLAlchemy URL for the psycopg 3 driver (for the pool)
and back into a libpq URI (for the raw LISTEN connection, which bypasses SQLAlchemy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL, make_url

__all__ = ["NetworkBounds", "to_conninfo", "to_sqlalchemy_url"]

_PG_DRIVERS = frozenset({"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg_async"})


#: Text as str whatever the database's encoding: on a SQL_ASCII database (initdb under the bare C
#: locale) psycopg would hand back bytes, and SQLAlchemy's first connect fails on the version string.
#: Every connection of ours sets it (pools, migrations, the listener).
TEXT_AS_STR: dict[str, Any] = {"client_encoding": "UTF8"}


def to_sqlalchemy_url(dsn: str | URL) -> URL:
    """``postgresql://…`` (or ``postgres://``) as a SQLAlchemy URL for psycopg 3 (``postgresql+psycopg``)."""
    url = make_url(dsn.replace("postgres://", "postgresql://", 1) if isinstance(dsn, str) else dsn)
    if url.drivername not in _PG_DRIVERS:
        raise ValueError(f"not a PostgreSQL DSN for psycopg 3: {url.drivername!r}")
    return url.set(drivername="postgresql+psycopg")


@dataclass(frozen=True, slots=True)
class NetworkBounds:
    """How long a database call may wait on the network: no call waits forever.

    A connection attempt gives up after ``connect_timeout`` seconds; a connection whose peer went
    silent is found dead by TCP keepalives after ``keepalives_idle + keepalives_interval *
    keepalives_count`` seconds (25), and unacknowledged writes after ``tcp_user_timeout_ms`` (a
    partition mid-transaction); a statement is cancelled after ``statement_timeout_ms``. Each failure
    is a temporary error the callers retry.
    """

    connect_timeout: int = 10
    keepalives_idle: int = 10
    keepalives_interval: int = 5
    keepalives_count: int = 3
    tcp_user_timeout_ms: int = 30_000
    statement_timeout_ms: int = 60_000

    def keepalives(self) -> dict[str, Any]:
        return {
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle,
            "keepalives_interval": self.keepalives_interval,
            "keepalives_count": self.keepalives_count,
            "tcp_user_timeout": self.tcp_user_timeout_ms,
        }

    def connect_args(self, dsn: str | URL) -> dict[str, Any]:
        """libpq parameters for a pool's connections; what the DSN sets itself wins."""
        args: dict[str, Any] = {
            "connect_timeout": self.connect_timeout,
            **self.keepalives(),
            "options": f"-c statement_timeout={self.statement_timeout_ms}",
            **TEXT_AS_STR,
        }
        given = to_sqlalchemy_url(dsn).query
        return {k: v for k, v in args.items() if k not in given}


def to_conninfo(dsn: str | URL) -> str:
    """A libpq connection URI (``postgresql://…``, password included) for ``psycopg.connect``."""
    url = to_sqlalchemy_url(dsn).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)
