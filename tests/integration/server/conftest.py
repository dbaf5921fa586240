"""The Connect server on a free port of this machine, over the real PostgreSQL, for one test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config

from taskaction_operator.repo import ActionRepo
from taskaction_operator.server.app import Router, build_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: Router) -> AsyncIterator[str]:
    """``app`` served by hypercorn (HTTP/1.1 and h2c) in this event loop; yields its base URL."""
    config = Config()
    port = _free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 1
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            assert loop.time() < deadline, "the server did not listen within 15 s"
            await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def server(repo: ActionRepo) -> AsyncIterator[str]:
    """The base URL of a server with the default bounds."""
    async with serving(build_app(repo)) as url:
        yield url
