"""The schema: Flyte's exact columns and indexes (compared with ``upstream_schema.json``, made from
upstream's own migration files), our own table beside them, the ORM metadata equal to what the
migrations build, and concurrent upgrades serialized by the advisory lock."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from taskaction_operator.repo import TemporaryRepoError, upgrade
from taskaction_operator.repo.dsn import to_sqlalchemy_url
from taskaction_operator.repo.migrate import MIGRATION_LOCK_KEY, VERSION_TABLE, downgrade
from taskaction_operator.repo.schema import Base

pytestmark = pytest.mark.db

#: Upstream's two tables as its own migrations build them (data: see ``source`` in the file).
UPSTREAM = json.loads((Path(__file__).with_name("upstream_schema.json")).read_text())
ACTIONS = {
    n: (c["type"], c["nullable"], c["default"]) for n, c in UPSTREAM["tables"]["actions"]["columns"].items()
}
EVENTS = {
    n: (c["type"], c["nullable"], c["default"])
    for n, c in UPSTREAM["tables"]["action_events"]["columns"].items()
}
INDEXES = {**UPSTREAM["tables"]["actions"]["indexes"], **UPSTREAM["tables"]["action_events"]["indexes"]}
#: Ours, beside upstream's tables (never in them: upstream's sqlx reads refuse unknown columns).
STATES = {
    "project": ("text", False, None),
    "domain": ("text", False, None),
    "run_name": ("text", False, None),
    "name": ("text", False, None),
    "state": ("text", False, None),
    "updated_at": ("timestamp with time zone", False, "CURRENT_TIMESTAMP"),
}
STATES_TABLE = "taskaction_action_states"


def _columns(dsn: str, table: str) -> dict[str, tuple[str, bool, str | None]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type, is_nullable = 'YES', column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s",
            (table,),
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_actions_columns_are_flytes(repo_dsn: str) -> None:
    assert _columns(repo_dsn, "actions") == ACTIONS


def test_action_events_columns_are_flytes(repo_dsn: str) -> None:
    assert _columns(repo_dsn, "action_events") == EVENTS


def test_indexes_and_primary_keys_are_flytes(repo_dsn: str) -> None:
    with psycopg.connect(repo_dsn) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('actions', 'action_events')"
        ).fetchall()
    assert {name: d.replace("CREATE ", "", 1) for name, d in rows} == INDEXES


def test_orm_metadata_equals_the_migrated_schema(repo_dsn: str) -> None:
    """Autogenerate finds nothing to change: the typed models and the migrations agree."""
    engine = create_engine(to_sqlalchemy_url(repo_dsn), poolclass=NullPool)
    ours = {"actions", "action_events", STATES_TABLE}

    def include_name(name: str | None, type_: str, parent: object) -> bool:
        return type_ != "table" or name in ours

    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={"compare_type": True, "compare_server_default": True, "include_name": include_name},
            )
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


@pytest.fixture
def scratch_dsn(repo_dsn: str) -> Iterator[str]:
    """An empty database of its own, dropped afterwards."""
    name = f"taskaction_scratch_{uuid.uuid4().hex[:10]}"
    admin = repo_dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield repo_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_concurrent_upgrades_both_succeed_and_leave_one_schema(scratch_dsn: str) -> None:
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            start.wait(timeout=30)
            upgrade(scratch_dsn)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert not any(t.is_alive() for t in threads)
    with psycopg.connect(scratch_dsn) as conn:
        assert conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [("m0007",)]
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).fetchall()
    assert tables == [("action_events",), ("actions",), (STATES_TABLE,), (VERSION_TABLE,)]
    assert set(_columns(scratch_dsn, "actions")) == set(ACTIONS)


def test_upgrade_waits_for_the_advisory_lock(scratch_dsn: str) -> None:
    """While another session holds the migration lock, upgrade blocks on it; then it proceeds."""
    done = threading.Event()
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(scratch_dsn)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    with psycopg.connect(scratch_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        thread = threading.Thread(target=migrate)
        thread.start()
        waiting = 0
        for _ in range(300):  # up to 30 s for the upgrade to queue behind our lock
            waiting = holder.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s",
                (MIGRATION_LOCK_KEY,),
            ).fetchone()[0]  # type: ignore[index]
            if waiting:
                break
            done.wait(0.1)
        assert waiting == 1
        assert not done.is_set()
        assert holder.execute("SELECT to_regclass('public.actions')").fetchone() == (None,)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        assert done.wait(60)
    thread.join(timeout=10)
    assert errors == []
    assert set(_columns(scratch_dsn, "actions")) == set(ACTIONS)


def test_our_state_table_is_beside_upstreams_and_keyed_like_actions(repo_dsn: str) -> None:
    assert _columns(repo_dsn, STATES_TABLE) == STATES
    with psycopg.connect(repo_dsn) as conn:
        (fk,) = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'f'",
            (STATES_TABLE,),
        ).fetchone()  # type: ignore[misc]
    assert fk == (
        "FOREIGN KEY (project, domain, run_name, name) REFERENCES actions(project, domain, run_name, name) "
        "ON DELETE CASCADE"
    )


def test_the_migration_moves_action_state_out_of_upstreams_table(scratch_dsn: str) -> None:
    """A database of the previous schema (actions.action_state) keeps its states, in our table."""
    upgrade(scratch_dsn, "m0006")
    with psycopg.connect(scratch_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO actions (project, domain, run_name, name, action_state) VALUES "
            "('p', 'd', 'r', 'a0', '{\"phase\": \"x\"}'), ('p', 'd', 'r', 'a1', NULL)"
        )
    upgrade(scratch_dsn)
    assert _columns(scratch_dsn, "actions") == ACTIONS
    with psycopg.connect(scratch_dsn) as conn:
        rows = conn.execute(f"SELECT name, state FROM {STATES_TABLE}").fetchall()
    assert rows == [("a0", '{"phase": "x"}')]
    downgrade(scratch_dsn, "m0006")
    with psycopg.connect(scratch_dsn) as conn:
        back = conn.execute("SELECT name, action_state FROM actions ORDER BY name").fetchall()
    assert back == [("a0", '{"phase": "x"}'), ("a1", None)]


def test_downgrade_to_base_and_back(scratch_dsn: str) -> None:
    upgrade(scratch_dsn)
    downgrade(scratch_dsn, "m0005")
    assert "action_state" not in _columns(scratch_dsn, "actions")
    downgrade(scratch_dsn, "base")
    assert _columns(scratch_dsn, "actions") == {}
    upgrade(scratch_dsn)
    assert _columns(scratch_dsn, "actions") == ACTIONS


def test_a_database_ahead_of_the_code_starts_with_a_warning_not_a_crash(
    scratch_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """After a rollback of the operator the database may carry a newer revision than the code knows:
    upgrading must leave it alone with a warning, not fail on every start (a crash loop)."""
    upgrade(scratch_dsn)
    with psycopg.connect(scratch_dsn, autocommit=True) as conn:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = 'm9999'")
    with caplog.at_level("WARNING"):
        upgrade(scratch_dsn)
    assert "m9999" in caplog.text and "newer" in caplog.text
    with psycopg.connect(scratch_dsn) as conn:
        assert conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [("m9999",)]


def test_waiting_for_the_migration_lock_has_a_deadline(scratch_dsn: str) -> None:
    with psycopg.connect(scratch_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        started = time.monotonic()
        with pytest.raises(TemporaryRepoError, match="migration lock"):
            upgrade(scratch_dsn, lock_timeout=1.0)
        assert time.monotonic() - started < 10


_CHILD_CHECK = """
import asyncio, json, logging, sys
from taskaction_operator.controller import handlers, lifecycle, runtime  # the operator's imports
from taskaction_operator.repo import TemporaryRepoError, upgrade_async

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.name, record.levelname, record.getMessage()))
logging.getLogger().addHandler(Keep())
logging.getLogger().setLevel(logging.INFO)
done = asyncio.run(upgrade_async(sys.argv[1]))
try:
    asyncio.run(upgrade_async("postgresql://nobody@127.0.0.1:1/none"))
    error = None
except TemporaryRepoError as exc:
    error = str(exc)
print(json.dumps({"after": done.after, "applied": list(done.applied), "error": error,
                  "alembic": sorted(m for m in sys.modules if m.split(".")[0] == "alembic"),
                  "records": records}))
"""


def test_the_operator_migrates_in_a_child_process(scratch_dsn: str) -> None:
    """upgrade_async runs the migration in a child process: the schema is migrated, the calling process
    never imports Alembic (it would stay resident), the child's log records reach the caller's loggers,
    and an unreachable database is the same TemporaryRepoError as in-process."""
    import subprocess
    import sys

    downgrade(scratch_dsn, "base")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD_CHECK, scratch_dsn], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["alembic"] == []
    assert got["applied"] and got["after"] == got["applied"][-1]
    assert _columns(scratch_dsn, "actions") == ACTIONS
    assert any(name.startswith("alembic") and "Running upgrade" in msg for name, _, msg in got["records"])
    assert got["error"] and "Connection refused" in got["error"]
