"""A database whose encoding is SQL_ASCII (what `initdb` makes under the bare C locale): psycopg then
hands text back as bytes, and SQLAlchemy's first connect failed with "cannot use a string pattern on
a bytes-like object" (seen with a Debian-made PostgreSQL under kind). Our connections ask for UTF8."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from taskaction_operator.repo import upgrade
from taskaction_operator.repo.dsn import NetworkBounds, to_sqlalchemy_url


@pytest.fixture
def sql_ascii_dsn(database_url: str) -> Iterator[str]:
    name = f"taskaction_ascii_{uuid.uuid4().hex[:10]}"
    base = database_url.rsplit("/", 1)[0]
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        )
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_and_reads_work_on_a_sql_ascii_database(sql_ascii_dsn: str) -> None:
    upgrade(sql_ascii_dsn)
    # The pools' connection parameters (ActionRepo's engine is built with these).
    engine = sa.create_engine(
        to_sqlalchemy_url(sql_ascii_dsn), connect_args=NetworkBounds().connect_args(sql_ascii_dsn)
    )
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW client_encoding")).scalar_one() == "UTF8"
            version = conn.execute(sa.text("SELECT version_num FROM taskaction_schema_version")).scalar_one()
    finally:
        engine.dispose()
    assert isinstance(version, str)
