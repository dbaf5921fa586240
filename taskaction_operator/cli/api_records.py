"""The record read through Flyte's RunService over Connect (``--server URL``): the second
implementation of :class:`~taskaction_operator.cli.records.Records`, on
:class:`~taskaction_operator.client.run_api.RunApi`.

A Connect error becomes one line naming the server: ``unauthenticated`` and ``permission_denied``
say who was refused and why (the server's message), ``unavailable`` and ``deadline_exceeded`` that it
did not answer (:class:`Unreachable`, which waiting commands retry).

Differences from the database, all from what RunService's messages carry: ``events`` lists each
attempt's phase transitions (upstream's mergeEvents: one per phase first seen, no version: 0); rows
have no ``updatedAt``, abort request state, input URI or run output base; an unforced abort reads the
phase first and then aborts (two calls: RunService's AbortRun is unconditional, as upstream's).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from taskaction_operator.cli.errors import CommandFailed
from taskaction_operator.cli.junit import FAILED, ActionError
from taskaction_operator.cli.records import RunQuery, Unreachable
from taskaction_operator.client.api_rows import events_of, last_error
from taskaction_operator.client.run_api import RunApi
from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import Action, ActionEvent, AlreadyFinishedError

__all__ = ["ApiRecords", "api_failure"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def api_failure(exc: ConnectError, url: str, token_problem: str = "") -> CommandFailed:
    """The one-line failure of a Connect error from the server at ``url`` (``token_problem``: why no
    bearer token was sent, if none was)."""
    message = exc.message or exc.code.name.lower()
    match exc.code:
        case Code.UNAUTHENTICATED:
            hint = f" ({token_problem})" if token_problem else ""
            return CommandFailed(f"{url}: not authenticated: {message}{hint}")
        case Code.PERMISSION_DENIED:
            return CommandFailed(f"{url}: permission denied: {message}")
        case Code.UNAVAILABLE:
            return Unreachable(f"{url} is unavailable: {message}")
        case Code.DEADLINE_EXCEEDED:
            return Unreachable(f"{url} did not answer in time: {message}")
        case Code.UNIMPLEMENTED:
            return CommandFailed(f"{url} does not serve this (is it taskaction-operator serve?): {message}")
        case _:
            return CommandFailed(f"{url}: {exc.code.name.lower()}: {message}")


def _translated(fn: Callable[_P, Coroutine[Any, Any, _R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        self = args[0]
        assert isinstance(self, ApiRecords)
        try:
            return await fn(*args, **kwargs)
        except ConnectError as exc:
            raise api_failure(exc, self.api.url, self.token_problem) from None

    return wrapper


class ApiRecords:
    """The record as a RunService at ``api.url`` answers it."""

    knows_abort_requests = False

    def __init__(self, api: RunApi, token_problem: str = "") -> None:
        self.api = api
        self.token_problem = token_problem

    @_translated
    async def list_runs(self, query: RunQuery) -> list[Action]:
        return await self.api.list_runs(
            project=query.project,
            domain=query.domain,
            phases=query.phases,
            since=query.since,
            until=query.until,
            limit=query.limit,
        )

    @_translated
    async def get_run(self, run_id: RunId) -> Action:
        return await self.api.get_run(run_id)

    @_translated
    async def get_action(self, action_id: ActionId) -> Action:
        return await self.api.get_action(action_id)

    @_translated
    async def list_run_actions(self, run_id: RunId) -> list[Action]:
        return await self.api.list_run_actions(run_id)

    @_translated
    async def list_events(
        self, action_id: ActionId, *, attempt: int | None, since: datetime | None, limit: int
    ) -> list[ActionEvent]:
        details = await self.api.action_details(action_id)
        found = events_of(details)
        if since is not None:
            attempt = attempt or details.status.attempts or 1
            found = [e for e in found if e.updated_at is not None and e.updated_at > since]
        if attempt is not None:
            found = [e for e in found if e.attempt == attempt]
        return found[:limit]

    async def watch_run(self, run_id: RunId) -> AsyncIterator[list[Action]]:
        stream = self.api.watch_run(run_id)
        try:
            async for rows in stream:
                yield rows
        except ConnectError as exc:
            raise api_failure(exc, self.api.url, self.token_problem) from None
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    @_translated
    async def last_errors(self, run_id: RunId, actions: Sequence[Action]) -> dict[str, ActionError]:
        errors = {}
        for action in actions:
            if ActionPhase(action.phase) in FAILED:
                kind, message = last_error(await self.api.action_details(ActionId(run_id, action.name)))
                if kind or message:
                    errors[action.name] = ActionError(kind, message)
        return errors

    @_translated
    async def abort(self, target: ActionId, reason: str, *, whole_run: bool, force: bool) -> None:
        if not force:
            row = await (self.api.get_run(target.run) if whole_run else self.api.get_action(target))
            if row.phase.is_terminal() and row.phase is not ActionPhase.ABORTED:
                raise AlreadyFinishedError(str(target), row.phase.name)
        if whole_run:
            await self.api.abort_run(target.run, reason)
        else:
            await self.api.abort_action(target, reason)
