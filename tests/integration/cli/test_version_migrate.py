"""``migrate`` says which revisions it applied, or that the schema was already current, against a
database of its own; ``version -o json`` reports the schema revision that ``migrate`` reaches."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import psycopg
import pytest

from taskaction_operator import __version__
from taskaction_operator.repo.migrate import downgrade
from tests.conftest import ROOT

pytestmark = pytest.mark.db
CLI = ROOT / ".venv" / "bin" / "taskaction-operator"


@pytest.fixture
def empty_dsn(database_url: str) -> Iterator[str]:
    name = f"taskaction_migrate_{uuid.uuid4().hex[:10]}"
    base = database_url.rsplit("/", 1)[0]
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli(tmp_path: Path, *args: str, dsn: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKACTION_")}
    env.update(TASKACTION_CONFIG=str(tmp_path / "none.yaml"))
    if dsn:
        env["TASKACTION_DATABASE_URL"] = dsn
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False
    )


def test_migrate_names_what_it_applied_then_says_already_at_head(empty_dsn: str, tmp_path: Path) -> None:
    head = json.loads(cli(tmp_path, "version", "-o", "json").stdout)["schemaRevision"]
    revisions = sorted(
        p.stem.split("_")[0] for p in (ROOT / "taskaction_operator/repo/migrations/versions").glob("m*.py")
    )
    assert head == revisions[-1]

    first = cli(tmp_path, "migrate", dsn=empty_dsn)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"applied {', '.join(revisions)} (was empty, now at {head})\n"

    again = cli(tmp_path, "migrate", dsn=empty_dsn)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"already at {head}\n"

    downgrade(empty_dsn, revisions[-3])
    partial = cli(tmp_path, "migrate", dsn=empty_dsn)
    assert partial.stdout == f"applied {', '.join(revisions[-2:])} (was {revisions[-3]}, now at {head})\n"
    with psycopg.connect(empty_dsn) as conn:
        row = conn.execute("SELECT version_num FROM taskaction_schema_version").fetchone()
    assert row == (head,)


def test_version_plain_and_json(tmp_path: Path) -> None:
    plain = cli(tmp_path, "version")
    assert (plain.returncode, plain.stdout) == (0, f"taskaction-operator {__version__}\n")
    assert cli(tmp_path, "version", "-o", "name").stdout == f"{__version__}\n"
    info = json.loads(cli(tmp_path, "version", "-o", "json").stdout)
    assert info["version"] == __version__ == metadata.version("taskaction-operator")
    assert info["flyteidl2"] == metadata.version("flyteidl2")
    assert info["kopf"] == metadata.version("kopf")
    assert set(info) == {"version", "flyteidl2", "kopf", "schemaRevision"}
