"""No database call waits forever: the pool and the LISTEN connection carry a connect timeout,
TCP keepalives, a TCP user timeout and a statement timeout, unless the DSN sets its own."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from taskaction_operator.model import RunId
from taskaction_operator.repo import ActionRepo, TemporaryRepoError
from taskaction_operator.repo.dsn import NetworkBounds

pytestmark = pytest.mark.db


async def _show(repo: ActionRepo, setting: str) -> str:
    async with repo.engine.connect() as conn:
        return str((await conn.execute(text(f"SHOW {setting}"))).scalar_one())


async def _client_parameters(repo: ActionRepo) -> dict[str, str]:
    """The libpq parameters a pooled connection was made with (client-side socket options included)."""
    async with repo.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        params: dict[str, str] = raw.driver_connection.info.get_parameters()  # type: ignore[union-attr]
        return params


async def test_the_pool_carries_the_bounds(repo_dsn: str) -> None:
    repo = await ActionRepo.connect(repo_dsn)
    try:
        assert await _show(repo, "statement_timeout") == "1min"
        params = await _client_parameters(repo)
        assert (params["connect_timeout"], params["tcp_user_timeout"]) == ("10", "30000")
        assert (params["keepalives"], params["keepalives_idle"], params["keepalives_count"]) == (
            "1",
            "10",
            "3",
        )
    finally:
        await repo.close()


async def test_the_dsn_wins_over_the_bounds(repo_dsn: str) -> None:
    dsn = repo_dsn + ("&" if "?" in repo_dsn else "?") + "options=-c%20statement_timeout%3D5000"
    repo = await ActionRepo.connect(dsn)
    try:
        assert await _show(repo, "statement_timeout") == "5s"
    finally:
        await repo.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


async def test_a_server_that_accepts_and_never_answers_fails_within_the_connect_timeout(
    silent_port: int,
) -> None:
    repo = await ActionRepo.connect(
        f"postgresql://postgres@127.0.0.1:{silent_port}/taskaction", bounds=NetworkBounds(connect_timeout=2)
    )
    try:
        started = time.monotonic()
        with pytest.raises(TemporaryRepoError):
            await asyncio.wait_for(repo.get_run(RunId("p", "d", "r1")), 60)
        assert time.monotonic() - started < 20
    finally:
        await repo.close()
