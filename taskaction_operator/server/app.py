"""The ASGI application: Connect services by path prefix (Flyte's RunService, and the events
endpoint), ``/healthz`` (the process answers), ``/readyz`` (the database answers), ``/metrics``
(Prometheus)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from flyteidl2.actions.actions_service_connect import ActionsServiceASGIApplication
from flyteidl2.workflow.events_proxy_service_connect import EventsProxyServiceASGIApplication
from flyteidl2.workflow.internal_run_service_connect import InternalRunServiceASGIApplication
from flyteidl2.workflow.run_service_connect import RunServiceASGIApplication
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from taskaction_operator.client.actions_client import ActionsClient
from taskaction_operator.repo import ActionRepo
from taskaction_operator.server.actions import ActionsEndpoint, UnservedActions
from taskaction_operator.server.auth import KubernetesAuth
from taskaction_operator.server.bounds import StreamLimits, UnaryDeadline, watch_disconnect
from taskaction_operator.server.events import EventsEndpoint
from taskaction_operator.server.observability import REGISTRY, RpcMetrics, StreamMessages
from taskaction_operator.server.runs import RunsEndpoint

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: Largest request message accepted (bytes); Connect answers resource_exhausted above it.
READ_MAX_BYTES = 4 * 1024 * 1024
TEXT = "text/plain; charset=utf-8"


class ASGIApp(Protocol):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class Router:
    """Dispatches ``/<package.Service>/<Method>`` to the service's Connect application."""

    def __init__(
        self,
        services: Sequence[Any],
        ready: Callable[[], Awaitable[bool]],
        *,
        events_port: int | None = None,
        events_services: Sequence[Any] = (),
    ) -> None:
        self._routes: dict[str, ASGIApp] = {svc.path: svc for svc in services}
        self._ready = ready
        #: The events listener's port and what it serves (the events endpoint only, unreviewed).
        self._events_port = events_port
        self._events_routes: dict[str, ASGIApp] = {svc.path: svc for svc in events_services}

    @property
    def paths(self) -> list[str]:
        return sorted(self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = str(scope["path"])
        if path == "/healthz":
            await _plain(send, 200, b"ok\n")
        elif path == "/readyz":
            ok = await self._ready()
            await _plain(send, 200 if ok else 503, b"ok\n" if ok else b"database unavailable\n")
        elif path == "/metrics":
            await _plain(send, 200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        else:
            service = path.lstrip("/").split("/", 1)[0]
            routes = self._routes
            if self._events_port is not None and (scope.get("server") or ("", None))[1] == self._events_port:
                routes = self._events_routes
            app = routes.get("/" + service)
            if app is None and "." in service:
                await _drain(receive)
                await _unserved(scope, send, service, sorted(routes))
            elif app is None:
                await _drain(receive)
                await _plain(send, 404, b"not found\n")
            else:
                await app(scope, watch_disconnect(receive), send)


def build_app(
    repo: ActionRepo,
    *,
    limits: StreamLimits | None = None,
    read_max_bytes: int = READ_MAX_BYTES,
    unary_seconds: float = 30.0,
    auth: KubernetesAuth | None = None,
    actions: ActionsClient | None = None,
    storage_prefix: str = "",
    events_port: int | None = None,
) -> Router:
    """Every service the server offers, over one repository (one pool, one listener for every
    watch); requests larger than ``read_max_bytes`` answer ``resource_exhausted``, watches beyond
    ``limits`` too, and unary calls longer than ``unary_seconds`` ``deadline_exceeded``. With
    ``auth``, every call is checked before it runs (and after it is counted in the metrics). With
    ``actions`` (an ActionsClient whose informer is watching), ActionsService is served on it; without,
    its methods answer ``unimplemented``; RunService's CreateRun too, which creates root TaskActions
    through it (their data under ``storage_prefix``). With ``events_port``, requests arriving on that
    port reach the events endpoint only (EventsProxyService, InternalRunService), and ``auth`` does not
    apply there: Flyte's executor sends no token, so that listener is for its pods alone (a
    NetworkPolicy in the manifests)."""
    interceptors: list[Any] = [RpcMetrics(), StreamMessages(), UnaryDeadline(unary_seconds)]
    if auth is not None:
        interceptors.insert(1, auth)
    events = EventsEndpoint(repo)
    limits = limits or StreamLimits()
    runs = RunsEndpoint(repo, limits, actions=actions, storage_prefix=storage_prefix)
    actions_service = UnservedActions() if actions is None else ActionsEndpoint(actions, limits)
    bounds: dict[str, Any] = {"interceptors": interceptors, "read_max_bytes": read_max_bytes}
    unreviewed = {**bounds, "interceptors": [i for i in interceptors if i is not auth]}
    return Router(
        [
            EventsProxyServiceASGIApplication(events, **bounds),
            InternalRunServiceASGIApplication(events, **bounds),
            RunServiceASGIApplication(runs, **bounds),
            ActionsServiceASGIApplication(actions_service, **bounds),
        ],
        ready=repo.ping,
        events_port=events_port,
        events_services=[
            EventsProxyServiceASGIApplication(events, **unreviewed),
            InternalRunServiceASGIApplication(events, **unreviewed),
        ],
    )


async def _drain(receive: Receive) -> None:
    """Read (and drop) the request's body before answering without it: over HTTP/2, an answer that
    ends the stream while the body is still arriving makes hypercorn fail on the late DATA frame
    (``KeyError`` on the closed stream) and drop the connection, so the client sees a broken pipe
    instead of the status."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _unserved(scope: Scope, send: Send, service: str, served: Sequence[str]) -> None:
    """A Connect, gRPC or gRPC-Web call to a service this server does not have: ``unimplemented``,
    saying which services it has (Flyte's SDK calls e.g. DataProxyService for logs and data)."""
    message = f"{service} is not served here; this server serves {', '.join(p.strip('/') for p in served)}"
    headers = dict(scope.get("headers") or [])
    content_type = headers.get(b"content-type", b"").decode()
    if content_type.startswith("application/grpc"):
        # Trailers-only: the status in the headers of an empty answer.
        response = [(b"content-type", content_type.encode()), (b"grpc-status", b"12")]
        response.append((b"grpc-message", urllib.parse.quote(message).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": response})
        await send({"type": "http.response.body", "body": b""})
        return
    error = {"code": "unimplemented", "message": message}
    if content_type.startswith("application/connect+"):
        # A Connect stream: the error in its end-of-stream envelope.
        payload = json.dumps({"error": error}).encode()
        body = bytes([2]) + len(payload).to_bytes(4, "big") + payload
        await _plain(send, 200, body, content_type)
    else:
        await _plain(send, 404, json.dumps(error).encode(), "application/json")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _plain(
    send: Send, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
