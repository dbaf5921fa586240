"""Flyte's ``ActionsService`` over Connect, on our :class:`ActionsClient`: what Flyte's in-pod
controller calls to enqueue children, follow them, update their status and abort them. It mirrors
upstream's actions/service/actions_service.go, function by function (``Enqueue``, ``WatchForUpdates``
with its snapshot and sentinel, ``Update``, ``Abort``); the work is the client's (actions/k8s/client.go
mirrored in :mod:`taskaction_operator.client.actions_client`).

DELIBERATE DIFFERENCES: a client error is classified (``invalid_argument`` for an action that cannot
be a TaskAction, ``not_found``, ``already_exists``) where upstream answers ``internal`` for all but
Enqueue's; ``Signal`` answers ``unimplemented`` (condition values are not written by this client).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from flyteidl2.actions import actions_service_pb2 as acts
from flyteidl2.actions.actions_service_connect import ActionsService
from flyteidl2.core import execution_pb2
from flyteidl2.workflow import state_service_pb2

from taskaction_operator.client.actions_client import (
    ActionExistsError,
    ActionNotFoundError,
    ActionsClient,
    ActionsClientError,
    Sentinel,
)
from taskaction_operator.client.names import InvalidActionError
from taskaction_operator.client.updates import ActionUpdate
from taskaction_operator.model import ActionPhase
from taskaction_operator.server.bounds import StreamLimits
from taskaction_operator.server.errors import action_id_of, connect_error, translating, translating_stream

__all__ = ["ActionsEndpoint", "UnservedActions", "action_update"]

Ctx = RequestContext[Any, Any]
#: What ActionsClient.watch_for_updates returns (an async generator: closed at once, it unsubscribes).
_Updates = AsyncGenerator[ActionUpdate | Sentinel, None]
_KINDS = {"USER": execution_pb2.ExecutionError.USER, "SYSTEM": execution_pb2.ExecutionError.SYSTEM}


def _connect_error(exc: Exception) -> ConnectError:
    if isinstance(exc, InvalidActionError):
        return ConnectError(Code.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, ActionNotFoundError):
        return ConnectError(Code.NOT_FOUND, str(exc))
    if isinstance(exc, ActionExistsError):
        return ConnectError(Code.ALREADY_EXISTS, str(exc))
    if isinstance(exc, ActionsClientError):
        return ConnectError(Code.INTERNAL, str(exc))
    return connect_error(exc)


#: ActionsService's methods: the client's errors classified, the rest as every method's.
_client_call = translating(_connect_error)


def action_update(update: ActionUpdate) -> state_service_pb2.ActionUpdate:
    """Upstream's ``taskActionToUpdate``: the id, phase and outputs URI, and a FAILED one's error."""
    message = state_service_pb2.ActionUpdate(
        action_id=update.action_id.to_proto(), phase=int(update.phase), output_uri=update.output_uri
    )
    if update.phase is ActionPhase.FAILED and update.error is not None:
        message.error.CopyFrom(
            execution_pb2.ExecutionError(
                code=update.error.code,
                kind=_KINDS.get(update.error.kind, execution_pb2.ExecutionError.UNKNOWN),
                message=update.error.message,
            )
        )
    return message


class ActionsEndpoint(ActionsService):  # type: ignore[misc]  # untyped generated stubs
    """ActionsService on an :class:`ActionsClient` (whose informer must be watching)."""

    def __init__(self, client: ActionsClient, limits: StreamLimits) -> None:
        self._client = client
        self._limits = limits

    @_client_call
    async def enqueue(self, request: acts.EnqueueRequest, ctx: Ctx) -> acts.EnqueueResponse:
        run_spec = request.run_spec if request.HasField("run_spec") else None
        await self._client.enqueue(request.action, run_spec)
        return acts.EnqueueResponse()

    @_client_call
    async def update(self, request: acts.UpdateRequest, ctx: Ctx) -> acts.UpdateResponse:
        """Upstream's PutStatus: the attempt and the status's cache status on the TaskAction."""
        await self._client.put_status(
            action_id_of(request.action_id), request.attempt, request.status.cache_status
        )
        return acts.UpdateResponse()

    @_client_call
    async def abort(self, request: acts.AbortRequest, ctx: Ctx) -> acts.AbortResponse:
        """Upstream's AbortAction: the TaskAction deleted; Kubernetes takes its subtree."""
        await self._client.abort_action(action_id_of(request.action_id), request.reason or None)
        return acts.AbortResponse()

    @translating_stream(_connect_error)
    async def watch_for_updates(
        self, request: acts.WatchForUpdatesRequest, ctx: Ctx
    ) -> AsyncIterator[acts.WatchForUpdatesResponse]:
        """The parent and its children now, a sentinel, then each change (subscribed first)."""
        if request.WhichOneof("filter") != "parent_action_id":
            raise ConnectError(Code.INVALID_ARGUMENT, "filter is required (parent_action_id)")
        parent = action_id_of(request.parent_action_id, "parent_action_id")
        async with (
            self._limits.stream(ctx) as stream,
            aclosing(cast(_Updates, self._client.watch_for_updates(parent))) as updates,
        ):
            async for item in stream.follow(updates):
                if isinstance(item, Sentinel):
                    control = state_service_pb2.ControlMessage(sentinel=True)
                    yield acts.WatchForUpdatesResponse(control_message=control)
                else:
                    yield acts.WatchForUpdatesResponse(action_update=action_update(item))

    async def signal(self, request: acts.SignalRequest, ctx: Ctx) -> acts.SignalResponse:
        raise ConnectError(Code.UNIMPLEMENTED, "ActionsService.Signal is not served here")


class UnservedActions(ActionsService):  # type: ignore[misc]  # untyped generated stubs
    """ActionsService when ``serve`` runs without ``--actions``: every method says how to get it."""

    @staticmethod
    def _why() -> ConnectError:
        return ConnectError(
            Code.UNIMPLEMENTED,
            "ActionsService is served only with `taskaction-operator serve --actions` "
            "(it creates and deletes TaskActions through the Kubernetes API)",
        )

    async def enqueue(self, request: acts.EnqueueRequest, ctx: Ctx) -> acts.EnqueueResponse:
        raise self._why()

    async def update(self, request: acts.UpdateRequest, ctx: Ctx) -> acts.UpdateResponse:
        raise self._why()

    async def abort(self, request: acts.AbortRequest, ctx: Ctx) -> acts.AbortResponse:
        raise self._why()

    async def signal(self, request: acts.SignalRequest, ctx: Ctx) -> acts.SignalResponse:
        raise self._why()

    async def watch_for_updates(
        self, request: acts.WatchForUpdatesRequest, ctx: Ctx
    ) -> AsyncIterator[acts.WatchForUpdatesResponse]:
        raise self._why()
        yield  # pragma: no cover - makes this a server stream
