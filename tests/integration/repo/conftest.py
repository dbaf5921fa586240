"""Fixtures of the repository suite, beside the shared ones of ``tests/integration/conftest.py``.

Abort bookkeeping is the exception: an operator started by another suite sweeps every pending abort
request in the shared database, whatever its project, and would race these tests' counters. Those
tests use :func:`private_repo`, on a database of this session's own."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from taskaction_operator.repo import ActionRepo, upgrade
from tests.integration.conftest import connected


@contextlib.contextmanager
def _new_database(database_url: str) -> Iterator[str]:
    """A database of its own, migrated to head, dropped on exit."""
    name = f"taskaction_repo_{uuid.uuid4().hex[:10]}"
    base = database_url.rsplit("/", 1)[0]
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(f"{base}/{name}")
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def private_dsn(database_url: str) -> Iterator[str]:
    """A migrated database no other suite (and no running operator) knows about; dropped at the end."""
    with _new_database(database_url) as dsn:
        yield dsn


@pytest.fixture
def empty_dsn(database_url: str) -> Iterator[str]:
    """A migrated database with no rows, for this test alone: where the plan depends on table size."""
    with _new_database(database_url) as dsn:
        yield dsn


@pytest.fixture
async def private_repo(private_dsn: str) -> AsyncIterator[ActionRepo]:
    async with connected(private_dsn, 2) as r:
        yield r
