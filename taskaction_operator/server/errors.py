"""Repository and validation errors as Connect errors, the codes upstream's services answer with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from functools import wraps
from typing import ParamSpec, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from flyteidl2.common import identifier_pb2
from flyteidl2.workflow import run_definition_pb2

from taskaction_operator.model import ActionId, RunId
from taskaction_operator.repo import InvalidArgumentError, NotFoundError, RepoError, TemporaryRepoError

_P = ParamSpec("_P")
_R = TypeVar("_R")


def connect_error(exc: Exception) -> ConnectError:
    """The Connect error a failure of ours answers with (a ConnectError is passed through)."""
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, NotFoundError):
        return ConnectError(Code.NOT_FOUND, str(exc))
    if isinstance(exc, InvalidArgumentError):
        return ConnectError(Code.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, TemporaryRepoError):
        return ConnectError(Code.UNAVAILABLE, f"database unavailable: {exc}")
    if isinstance(exc, RepoError):
        return ConnectError(Code.INTERNAL, f"database: {exc}")
    return ConnectError(Code.INTERNAL, f"{type(exc).__name__}: {exc}")


#: gRPC's numeric codes (``google.rpc.Code``), for statuses answered in-band.
GRPC_CODES: dict[Code, int] = {
    Code.CANCELED: 1,
    Code.UNKNOWN: 2,
    Code.INVALID_ARGUMENT: 3,
    Code.DEADLINE_EXCEEDED: 4,
    Code.NOT_FOUND: 5,
    Code.ALREADY_EXISTS: 6,
    Code.PERMISSION_DENIED: 7,
    Code.RESOURCE_EXHAUSTED: 8,
    Code.FAILED_PRECONDITION: 9,
    Code.ABORTED: 10,
    Code.OUT_OF_RANGE: 11,
    Code.UNIMPLEMENTED: 12,
    Code.INTERNAL: 13,
    Code.UNAVAILABLE: 14,
    Code.DATA_LOSS: 15,
    Code.UNAUTHENTICATED: 16,
}


ErrorMapper = Callable[[Exception], ConnectError]


def translating(
    to_error: ErrorMapper,
) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Awaitable[_R]]]:
    """A decorator: a unary method whose failures reach the client as ``to_error`` makes them."""

    def decorate(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
        @wraps(fn)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                raise to_error(exc) from exc

        return wrapper

    return decorate


def translating_stream(
    to_error: ErrorMapper,
) -> Callable[[Callable[_P, AsyncIterator[_R]]], Callable[_P, AsyncIterator[_R]]]:
    """A decorator: a server-streaming method whose failures end the stream as ``to_error`` makes them."""

    def decorate(fn: Callable[_P, AsyncIterator[_R]]) -> Callable[_P, AsyncIterator[_R]]:
        @wraps(fn)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> AsyncIterator[_R]:
            try:
                async for message in fn(*args, **kwargs):
                    yield message
            except Exception as exc:
                raise to_error(exc) from exc

        return wrapper

    return decorate


#: A unary method of ours: its failures reach the client as Connect errors, never as a crash.
translated = translating(connect_error)
#: A server-streaming method of ours: its failures end the stream as Connect errors.
translated_stream = translating_stream(connect_error)


def validate_events(events: Iterable[run_definition_pb2.ActionEvent]) -> None:
    """What an event's row needs: the action's identity, an attempt from 1 and a phase.

    DELIBERATE DIFFERENCE, on the strict side only where a row would be meaningless: upstream's
    ``Validate()`` (protoc-gen-validate, ``gen/go/.../run_definition.pb.validate.go``) checks no
    field of an ActionEvent, and the proto's ``buf.validate`` rules are not enforced by it; Flyte's
    executor leaves ``RunIdentifier.org`` empty (``taskaction_controller.go: buildEvent``), so org is
    not required here either."""
    problems: list[str] = []
    for i, event in enumerate(events):
        run = event.id.run
        for field, value in (
            ("id.run.project", run.project),
            ("id.run.domain", run.domain),
            ("id.run.name", run.name),
            ("id.name", event.id.name),
        ):
            if not value:
                problems.append(f"events[{i}].{field}: required")
        if event.attempt < 1:
            problems.append(f"events[{i}].attempt: must be at least 1")
        if event.phase == 0:
            problems.append(f"events[{i}].phase: required (not ACTION_PHASE_UNSPECIFIED)")
    if problems:
        raise ConnectError(Code.INVALID_ARGUMENT, "; ".join(problems))


def run_id_of(message: identifier_pb2.RunIdentifier, field: str = "run_id") -> RunId:
    """The run a request names; ``invalid_argument`` when the id lacks a part.

    DELIBERATE DIFFERENCE: upstream's ``Validate()`` checks none of these (the ``buf.validate`` rules
    of the proto are not enforced by protoc-gen-validate), so an empty id reaches its database and
    answers ``not_found``; here it is refused before any query."""
    missing = [f"{field}.{part}" for part in ("project", "domain", "name") if not getattr(message, part)]
    if missing:
        raise ConnectError(Code.INVALID_ARGUMENT, f"{', '.join(missing)}: required")
    return RunId.from_proto(message)


def action_id_of(message: identifier_pb2.ActionIdentifier, field: str = "action_id") -> ActionId:
    """The action a request names (see :func:`run_id_of`)."""
    run_id = run_id_of(message.run, f"{field}.run")
    if not message.name:
        raise ConnectError(Code.INVALID_ARGUMENT, f"{field}.name: required")
    return ActionId(run_id, message.name)
