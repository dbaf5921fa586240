"""Fixtures of the integration suites (the real PostgreSQL, no cluster): the shared database
migrated once, a repository per test, and a unique project per test (other suites share this
database, so tests never truncate tables)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from taskaction_operator.repo import ActionRepo, upgrade


@pytest.fixture(scope="session")
def repo_dsn(database_url: str) -> str:
    """The real PostgreSQL, migrated to head (idempotent: other suites may have migrated it too)."""
    upgrade(database_url)
    return database_url


@pytest.fixture
async def repo(repo_dsn: str) -> AsyncIterator[ActionRepo]:
    r = await ActionRepo.connect(repo_dsn, pool_size=4, max_overflow=4)
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture
def project() -> str:
    """A project name no other test uses: the isolation unit of this suite."""
    return f"t-{uuid.uuid4().hex[:16]}"
