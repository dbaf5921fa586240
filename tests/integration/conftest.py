"""Fixtures of the integration suites (the real PostgreSQL, no cluster): the shared database
migrated once, a repository per test, and a unique project per test (other suites share this
database, so tests never truncate tables)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from taskaction_operator.repo import ActionRepo, upgrade


@pytest.fixture(scope="session")
def repo_dsn(database_url: str) -> str:
    """The real PostgreSQL, migrated to head (idempotent: other suites may have migrated it too)."""
    upgrade(database_url)
    return database_url


@contextlib.asynccontextmanager
async def connected(dsn: str, pool: int) -> AsyncIterator[ActionRepo]:
    """An ActionRepo on ``dsn`` with ``pool`` connections (and as many overflow), closed on exit."""
    r = await ActionRepo.connect(dsn, pool_size=pool, max_overflow=pool)
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture
async def repo(repo_dsn: str) -> AsyncIterator[ActionRepo]:
    async with connected(repo_dsn, 4) as r:
        yield r


@pytest.fixture
def project() -> str:
    """A project name no other test uses: the isolation unit of this suite."""
    return f"t-{uuid.uuid4().hex[:16]}"
