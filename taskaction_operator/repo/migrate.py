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

Alembic is imported only where it is used: the operator migrates in a child process
(:func:`upgrade_async`), so its modules never stay resident in the long-lived one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from taskaction_operator.repo.dsn import TEXT_AS_STR, to_sqlalchemy_url
from taskaction_operator.repo.errors import (
    PermanentRepoError,
    RepoError,
    TemporaryRepoError,
    classify_db_error,
)

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

__all__ = [
    "MIGRATION_LOCK_KEY",
    "VERSION_TABLE",
    "Upgraded",
    "alembic_config",
    "downgrade",
    "head_revision",
    "upgrade",
    "upgrade_async",
]

#: The advisory lock held around an upgrade (upstream's key, see the module docstring).
MIGRATION_LOCK_KEY = 5432
#: Longest wait for the migration lock, in seconds (another replica's migration holds it meanwhile).
LOCK_TIMEOUT = 120.0
#: Alembic's version table for this schema.
VERSION_TABLE = "taskaction_schema_version"
_SCRIPTS = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Upgraded:
    """What :func:`upgrade` did: the revision before and after, the revisions applied in order (none
    when the schema was current), and whether the database was ahead of this code (left alone)."""

    before: str | None
    after: str | None
    applied: tuple[str, ...]
    ahead: bool = False


def head_revision() -> str:
    """The schema revision this code expects (the newest packaged migration)."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations; no ini file involved."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.set_main_option("version_table", VERSION_TABLE)
    return cfg


def upgrade(dsn: str, revision: str = "head", *, lock_timeout: float = LOCK_TIMEOUT) -> Upgraded:
    """Bring the schema at ``dsn`` (``postgresql://…``) to ``revision``, holding the migration lock.

    Blocks (the calling thread) while another process holds the lock, for ``lock_timeout`` seconds at
    most (then a TemporaryRepoError); afterwards finds the schema current and does nothing. A database
    whose revision this code does not know is ahead of it (the operator was rolled back): it is left
    as it is, with a warning, so the operator starts against it instead of failing on every start.
    Failures are raised as classified repository errors.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    def apply(cfg: Config) -> Upgraded:
        current = _current_revision(cfg)
        if current is not None and not _known(cfg, current):
            log.warning(
                "the database schema (revision %s) is newer than this operator's (%s): not migrating; "
                "running against it",
                current,
                ScriptDirectory.from_config(cfg).get_current_head(),
            )
            return Upgraded(current, current, (), ahead=True)
        command.upgrade(cfg, revision)
        after = _current_revision(cfg)
        applied: tuple[str, ...] = ()
        if after is not None and after != current:
            steps = ScriptDirectory.from_config(cfg).iterate_revisions(after, current or "base")
            applied = tuple(reversed([step.revision for step in steps]))
        return Upgraded(current, after, applied)

    return _run(dsn, apply, lock_timeout=lock_timeout)


def downgrade(dsn: str, revision: str) -> None:
    """Take the schema at ``dsn`` back to ``revision`` (``"base"`` drops our tables). For tests and ops."""
    from alembic import command

    _run(dsn, lambda cfg: command.downgrade(cfg, revision))


async def upgrade_async(dsn: str, revision: str = "head") -> Upgraded:
    """:func:`upgrade` in a child process (a fresh interpreter), so the event loop keeps running
    meanwhile and neither Alembic nor the migration scripts are ever imported into this process (their
    modules, ~11 MB, would stay resident for the operator's life). Its result and its errors (the
    classified repository errors) come back as :func:`upgrade`'s own, and its log records go to this
    process's loggers of the same names. The DSN is handed over on the child's stdin, never in argv."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from taskaction_operator.repo.migrate import _child_main; _child_main()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    level = logging.getLogger().getEffectiveLevel()
    proc.stdin.write(pickle.dumps((dsn, revision, level)))
    proc.stdin.close()
    outcome: tuple[str, Any] | None = None
    try:
        while True:
            try:
                size = int.from_bytes(await proc.stdout.readexactly(4), "big")
            except asyncio.IncompleteReadError:
                break
            kind, payload = pickle.loads(await proc.stdout.readexactly(size))
            if kind == "log":
                logging.getLogger(payload.name).handle(payload)
            else:
                outcome = (kind, payload)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()  # cancelled (the operator stops): the child's connection goes with it
        await proc.wait()
    if outcome is None:
        raise PermanentRepoError(f"the migration process exited with {proc.returncode} and no result")
    if outcome[0] == "error":
        raise outcome[1]
    result: Upgraded = outcome[1]
    return result


def _child_main() -> None:
    """The child of :func:`upgrade_async`: (dsn, revision, log level) on stdin; log records, then the
    result or the error, as length-prefixed pickles on stdout."""
    out = sys.stdout.buffer
    lock = threading.Lock()

    def send(kind: str, payload: Any) -> None:
        data = pickle.dumps((kind, payload))
        with lock:
            out.write(len(data).to_bytes(4, "big") + data)
            out.flush()

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            record.msg, record.args = record.getMessage(), None
            if record.exc_info:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
                record.exc_info = None
            send("log", record)

    dsn, revision, level = pickle.loads(sys.stdin.buffer.read())
    import alembic.command  # noqa: F401 - its import-time records (plugin set-up) were never logged

    root = logging.getLogger()
    root.handlers[:] = [_Forward()]
    root.setLevel(level)
    try:
        result = upgrade(dsn, revision)
    except RepoError as exc:
        send("error", exc)
    except Exception as exc:  # any failure is the parent's to raise
        send("error", PermanentRepoError(f"{type(exc).__name__}: {exc}"))
    else:
        send("result", result)


def _current_revision(cfg: Config) -> str | None:
    from alembic.runtime.migration import MigrationContext

    conn = cfg.attributes["connection"]
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _known(cfg: Config, revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.script.revision import ResolutionError
    from alembic.util.exc import CommandError

    try:
        return ScriptDirectory.from_config(cfg).get_revision(revision) is not None
    except (ResolutionError, CommandError):
        return False


def _run(dsn: str, action: Callable[[Config], T], *, lock_timeout: float = LOCK_TIMEOUT) -> T:
    engine = create_engine(to_sqlalchemy_url(dsn), poolclass=NullPool, connect_args=TEXT_AS_STR)
    try:
        with engine.connect() as conn:
            # lock_timeout bounds the wait for the advisory lock too; reset once it is held.
            conn.execute(text(f"SET lock_timeout = {int(lock_timeout * 1000)}"))
            try:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) == "55P03":
                    raise TemporaryRepoError(
                        f"timed out after {lock_timeout:.0f} s waiting for the migration lock "
                        f"(pg_advisory_lock {MIGRATION_LOCK_KEY}; another migration is running)"
                    ) from exc
                raise
            conn.execute(text("RESET lock_timeout"))
            conn.commit()
            try:
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                result = action(cfg)
                conn.commit()
                return result
            finally:
                if not conn.closed and not conn.invalidated:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                    conn.commit()
    except TemporaryRepoError:
        raise
    except Exception as exc:
        raise classify_db_error(exc) from exc
    finally:
        engine.dispose()
