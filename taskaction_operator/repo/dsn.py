"""DSN handling: callers hand us ``postgresql://…``; SQLAlchemy needs a driver name, libpq does not.

One place converts a libpq-style DSN into the SQLAlchemy URL for the psycopg 3 driver (for the pool)
and back into a libpq URI (for the raw LISTEN connection, which bypasses SQLAlchemy).
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

__all__ = ["to_conninfo", "to_sqlalchemy_url"]

_PG_DRIVERS = frozenset({"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg_async"})


def to_sqlalchemy_url(dsn: str | URL) -> URL:
    """``postgresql://…`` (or ``postgres://``) as a SQLAlchemy URL for psycopg 3 (``postgresql+psycopg``)."""
    url = make_url(dsn.replace("postgres://", "postgresql://", 1) if isinstance(dsn, str) else dsn)
    if url.drivername not in _PG_DRIVERS:
        raise ValueError(f"not a PostgreSQL DSN for psycopg 3: {url.drivername!r}")
    return url.set(drivername="postgresql+psycopg")


def to_conninfo(dsn: str | URL) -> str:
    """A libpq connection URI (``postgresql://…``, password included) for ``psycopg.connect``."""
    url = to_sqlalchemy_url(dsn).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)
