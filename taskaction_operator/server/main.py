"""``taskaction-operator serve``: the Connect server in its own process, served by hypercorn
(HTTP/1.1 and HTTP/2 over cleartext, so Connect, gRPC-Web and gRPC clients all reach it)."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from taskaction_operator.repo import ActionRepo
from taskaction_operator.server.app import build_app

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8090
    #: Longest a request (a stream's whole life included) may last, in seconds.
    graceful_timeout: float = 5.0


async def serve(options: ServeOptions) -> None:
    """Serve until SIGINT/SIGTERM; then finish in-flight calls (bounded) and close the pool."""
    repo = await ActionRepo.connect(options.database_url)
    config = Config()
    config.bind = [f"{options.host}:{options.port}"]
    config.graceful_timeout = options.graceful_timeout
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = build_app(repo)
    log.info("serving %s on %s:%d", ", ".join(p.strip("/") for p in app.paths), options.host, options.port)
    try:
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        await repo.close()
