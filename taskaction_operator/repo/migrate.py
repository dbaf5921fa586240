"""Schema migrations, applied by the operator itself at start-up (no ``alembic.ini`` at run time).

Alembic is configured programmatically from the package's own ``migrations`` directory, so it works
from an installed wheel. Two replicas starting together must not race on DDL, so the whole upgrade
runs under a session-level ``pg_advisory_lock`` on the connection that applies it (upstream's
migrator does the same: upstream flytestdlib/database/migrate.go: Migrate). The key is upstream's,
5432, so that this operator and a Flyte runs service migrating the same database serialize with each
other too: our DDL mirrors upstream's and uses ``IF NOT EXISTS``, so whichever goes first, the other
finds the tables in place.

DELIBERATE DIFFERENCE from upstream: upstream records applied files in ``schema_migrations``; we use
Alembic with its own version table, ``taskaction_schema_version``, so we never collide with upstream's
bookkeeping or another Alembic user of the same database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from taskaction_operator.repo.dsn import to_sqlalchemy_url
from taskaction_operator.repo.errors import classify_db_error

__all__ = [
    "MIGRATION_LOCK_KEY",
    "VERSION_TABLE",
    "alembic_config",
    "downgrade",
    "upgrade",
    "upgrade_async",
]

#: The advisory lock held around an upgrade (upstream's key, see the module docstring).
MIGRATION_LOCK_KEY = 5432
#: Alembic's version table for this schema.
VERSION_TABLE = "taskaction_schema_version"
_SCRIPTS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations; no ini file involved."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.set_main_option("version_table", VERSION_TABLE)
    return cfg


def upgrade(dsn: str, revision: str = "head") -> None:
    """Bring the schema at ``dsn`` (``postgresql://…``) to ``revision``, holding the migration lock.

    Blocks (the calling thread) while another process holds the lock; afterwards finds the schema
    current and does nothing. Failures are raised as classified repository errors.
    """
    _run(dsn, lambda cfg: command.upgrade(cfg, revision))


def downgrade(dsn: str, revision: str) -> None:
    """Take the schema at ``dsn`` back to ``revision`` (``"base"`` drops our tables). For tests and ops."""
    _run(dsn, lambda cfg: command.downgrade(cfg, revision))


async def upgrade_async(dsn: str, revision: str = "head") -> None:
    """:func:`upgrade` in a worker thread, so the event loop keeps running meanwhile."""
    await asyncio.to_thread(upgrade, dsn, revision)


def _run(dsn: str, action: Callable[[Config], None]) -> None:
    engine = create_engine(to_sqlalchemy_url(dsn), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                action(cfg)
                conn.commit()
            finally:
                if not conn.closed and not conn.invalidated:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                    conn.commit()
    except Exception as exc:
        raise classify_db_error(exc) from exc
    finally:
        engine.dispose()
