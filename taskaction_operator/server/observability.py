"""Per-RPC metrics of the server (count by code, latency, in-flight calls), in a registry of its own
served on the server's ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RPC_REQUESTS = Counter(
    "taskaction_rpc_requests_total",
    "RPCs answered, by service, method and Connect code",
    ["service", "method", "code"],
    registry=REGISTRY,
)
RPC_SECONDS = Histogram(
    "taskaction_rpc_duration_seconds",
    "RPC duration (a stream's whole life), by service and method",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 600),
    registry=REGISTRY,
)
RPC_IN_FLIGHT = Gauge(
    "taskaction_rpc_in_flight",
    "RPCs in progress (open streams included), by service and method",
    ["service", "method"],
    registry=REGISTRY,
)


class RpcMetrics:
    """A connectrpc metadata interceptor: it sees every method's start and end, never the bodies."""

    async def on_start(self, ctx: RequestContext[Any, Any]) -> float:
        method = ctx.method()
        RPC_IN_FLIGHT.labels(method.service_name, method.name).inc()
        return time.perf_counter()

    async def on_end(self, token: float, ctx: RequestContext[Any, Any], error: Exception | None, /) -> None:
        info = ctx.method()
        service, method = info.service_name, info.name
        RPC_IN_FLIGHT.labels(service, method).dec()
        RPC_SECONDS.labels(service, method).observe(time.perf_counter() - token)
        if error is None:
            code = "ok"
        elif isinstance(error, ConnectError):
            code = error.code.value
        else:
            code = "unknown"
        RPC_REQUESTS.labels(service, method, code).inc()


RPC_STREAMS_REFUSED = Counter(
    "taskaction_rpc_streams_refused_total",
    "Watch streams refused with resource_exhausted because the server had its maximum open",
    registry=REGISTRY,
)
RPC_STREAM_MESSAGES = Counter(
    "taskaction_rpc_stream_messages_total",
    "Messages sent on server streams, by service and method",
    ["service", "method"],
    registry=REGISTRY,
)


class StreamMessages:
    """A connectrpc server-stream interceptor counting the messages each watch sends."""

    async def intercept_server_stream(
        self,
        call_next: Callable[[Any, RequestContext[Any, Any]], AsyncIterator[Any]],
        request: Any,
        ctx: RequestContext[Any, Any],
    ) -> AsyncIterator[Any]:
        info = ctx.method()
        sent = RPC_STREAM_MESSAGES.labels(info.service_name, info.name)
        async for message in call_next(request, ctx):
            sent.inc()
            yield message
