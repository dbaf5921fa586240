"""``taskaction-operator serve``: the Connect server in its own process, served by hypercorn
(HTTP/1.1 and HTTP/2 over cleartext, so Connect, gRPC-Web and gRPC clients all reach it)."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from taskaction_operator.client.actions_client import ActionsClient
from taskaction_operator.k8s import KubeOps
from taskaction_operator.k8s.reviews import Reviews
from taskaction_operator.repo import ActionRepo
from taskaction_operator.server.app import READ_MAX_BYTES, build_app
from taskaction_operator.server.auth import KubernetesAuth
from taskaction_operator.server.bounds import StreamLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8090
    #: How long in-flight calls may take to finish at shutdown, in seconds.
    graceful_timeout: float = 5.0
    #: Watch streams open at once at most (more answer resource_exhausted).
    max_streams: int = 1000
    #: Longest a watch stream lasts, in seconds (then it ends cleanly; Flyte's SDK re-subscribes).
    max_stream_seconds: float = 3600.0
    #: Largest request message, in bytes.
    read_max_bytes: int = READ_MAX_BYTES
    #: Longest a unary call may take, in seconds (a client's shorter deadline wins).
    unary_seconds: float = 30.0
    #: With ``--auth kubernetes``: the cluster whose TokenReview and SubjectAccessReview decide, and
    #: the namespace of the TaskActions whose rights a caller needs; None serves without auth.
    kube: KubeOps | None = None
    namespace: str = "flyte"
    #: Whether to serve ActionsService (on ``kube``, in ``namespace``).
    actions: bool = False
    #: Whether ``kube`` reviews every call (``--auth kubernetes``).
    auth: bool = False
    #: Where CreateRun puts a run's data when its run spec names no ``run_base_dir``.
    storage_prefix: str = ""
    #: A second listener (host, port) serving only the events endpoint, never reviewed.
    events_listen: tuple[str, int] | None = None


async def serve(options: ServeOptions) -> None:
    """Serve until SIGINT/SIGTERM; then finish in-flight calls (bounded), stop the TaskAction watch
    (with ``actions``) and close the pool."""
    kube = options.kube
    if (options.auth or options.actions) and kube is None:
        raise ValueError("--auth kubernetes and --actions need a Kubernetes client (kube)")
    auth = KubernetesAuth(Reviews(kube), options.namespace) if options.auth and kube is not None else None
    actions = ActionsClient(kube, options.namespace) if options.actions and kube is not None else None
    config = Config()
    config.bind = [f"{options.host}:{options.port}"]
    if options.events_listen is not None:
        config.bind.append(f"{options.events_listen[0]}:{options.events_listen[1]}")
    config.graceful_timeout = options.graceful_timeout
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    repo = await ActionRepo.connect(options.database_url)
    try:
        if actions is not None:
            await actions.start_watching()
        limits = StreamLimits(options.max_streams, options.max_stream_seconds)
        app = build_app(
            repo,
            limits=limits,
            read_max_bytes=options.read_max_bytes,
            unary_seconds=options.unary_seconds,
            auth=auth,
            actions=actions,
            storage_prefix=options.storage_prefix,
            events_port=options.events_listen[1] if options.events_listen is not None else None,
        )
        served = ", ".join(p.strip("/") for p in app.paths)
        log.info("serving %s on %s:%d", served, options.host, options.port)

        async def shutdown() -> None:
            await stop.wait()
            limits.close()  # watches end now rather than at the graceful timeout

        await hypercorn_serve(app, config, shutdown_trigger=shutdown)  # type: ignore[arg-type]
    finally:
        if actions is not None:
            await actions.stop_watching()
        await repo.close()
