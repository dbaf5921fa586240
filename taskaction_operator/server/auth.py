"""``serve --auth kubernetes``: every call's bearer token checked with a TokenReview, and the call
with a SubjectAccessReview against the TaskActions of the namespace the operator manages, both
cached briefly. No token answers ``unauthenticated``, a token without the right ``permission_denied``,
an API server that does not answer ``unavailable``.

What each call needs on ``taskactions.flyte.org`` in that namespace:

=====================================================  =========================================
RunService ``Get*``                                    ``get``
RunService ``List*``, ``Watch*``                       ``list``
RunService ``Abort*``                                  ``delete`` (what the operator then does)
RunService ``CreateRun``, ActionsService ``Enqueue``    ``create``
ActionsService ``Abort``                               ``delete``
ActionsService ``WatchForUpdates``                     ``list``
anything else (events endpoint, ActionsService         ``update`` on ``taskactions/status`` (what
``Update``, ``SignalEvent``)                           Flyte's executor already may do)
=====================================================  =========================================
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext

from taskaction_operator.k8s.reviews import Identity

__all__ = ["CACHE_SECONDS", "KubernetesAuth", "required_access"]

log = logging.getLogger(__name__)

#: How long a review's answer is reused (a revoked right or token keeps working this long at most).
CACHE_SECONDS = 10.0
_MAX_ENTRIES = 10_000
_RUN_SERVICE = "flyteidl2.workflow.RunService"
_ACTIONS_SERVICE = "flyteidl2.actions.ActionsService"
_ACTIONS_VERBS = {"Enqueue": "create", "Abort": "delete", "WatchForUpdates": "list"}

K = TypeVar("K")
V = TypeVar("V")


class ReviewClient(Protocol):
    """What the check needs of :class:`~taskaction_operator.k8s.reviews.Reviews`."""

    async def identity(self, token: str) -> Identity | None: ...
    async def allowed(
        self, who: Identity, *, verb: str, namespace: str, subresource: str = ""
    ) -> tuple[bool, str]: ...


def required_access(service: str, method: str) -> tuple[str, str]:
    """The (verb, subresource) on TaskActions a call needs (the module's table)."""
    if service == _RUN_SERVICE:
        for prefix, verb in (("Get", "get"), ("List", "list"), ("Watch", "list"), ("Abort", "delete")):
            if method.startswith(prefix):
                return verb, ""
        if method == "CreateRun":
            return "create", ""
    if service == _ACTIONS_SERVICE and method in _ACTIONS_VERBS:
        return _ACTIONS_VERBS[method], ""
    return "update", "status"


class _Cache(Generic[K, V]):
    """Answers kept ``ttl`` seconds; emptied when it grows past its bound."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[K, tuple[float, V]] = {}

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await compute()
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (now + self._ttl, value)
        return value


def _bearer(ctx: RequestContext[Any, Any]) -> str:
    header = ctx.request_headers().get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ConnectError(
            Code.UNAUTHENTICATED, "a Kubernetes bearer token is required (Authorization: Bearer …)"
        )
    return token.strip()


class KubernetesAuth:
    """A connectrpc metadata interceptor refusing a call before it runs unless Kubernetes allows it."""

    def __init__(
        self, reviews: ReviewClient, namespace: str, *, cache_seconds: float = CACHE_SECONDS
    ) -> None:
        self._reviews = reviews
        self.namespace = namespace
        self._identities: _Cache[str, Identity | None] = _Cache(cache_seconds)
        self._decisions: _Cache[tuple[Identity, str, str], tuple[bool, str]] = _Cache(cache_seconds)

    async def _review(self, what: str, call: Awaitable[V]) -> V:
        try:
            return await call
        except Exception as exc:  # KubeError, and the client's connection and timeout errors alike
            log.warning("%s failed: %s", what, exc)
            raise ConnectError(
                Code.UNAVAILABLE, f"the Kubernetes API did not answer the {what}: {exc}"
            ) from exc

    async def on_start(self, ctx: RequestContext[Any, Any]) -> None:
        token = _bearer(ctx)
        digest = hashlib.sha256(token.encode()).hexdigest()
        who = await self._identities.get(
            digest, lambda: self._review("TokenReview", self._reviews.identity(token))
        )
        if who is None:
            raise ConnectError(
                Code.UNAUTHENTICATED, "the bearer token was not accepted by the Kubernetes API"
            )
        info = ctx.method()
        verb, subresource = required_access(info.service_name, info.name)
        allowed, reason = await self._decisions.get(
            (who, verb, subresource),
            lambda: self._review(
                "SubjectAccessReview",
                self._reviews.allowed(who, verb=verb, namespace=self.namespace, subresource=subresource),
            ),
        )
        if not allowed:
            resource = "taskactions" + (f"/{subresource}" if subresource else "")
            detail = f" ({reason})" if reason else ""
            raise ConnectError(
                Code.PERMISSION_DENIED,
                f"{who.username} may not {verb} {resource}.flyte.org in namespace {self.namespace}{detail}",
            )

    async def on_end(self, token: None, ctx: RequestContext[Any, Any], error: Exception | None, /) -> None:
        return None
