"""Where the read, watch and abort commands get the record from: :class:`Records`, with two
implementations, the database (:class:`RepoRecords`, the default) and Flyte's RunService over Connect
(:class:`~taskaction_operator.cli.api_records.ApiRecords`, with ``--server URL``). The commands are
written once against :class:`Records`; the output and the exit codes are the same either way.

Both raise the repository's :class:`NotFoundError` for a missing run or action and its
:class:`AlreadyFinishedError` for an unforced abort of a finished one, and :class:`Unreachable` (a
CommandFailed) when the source does not answer, which waiting commands retry until their deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from taskaction_operator.cli.errors import CommandFailed
from taskaction_operator.cli.junit import FAILED, ActionError
from taskaction_operator.cli.render import error_message
from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import (
    Action,
    ActionEvent,
    ActionRepo,
    Filter,
    FilterOp,
    ListActionsRequest,
    SortBy,
)

__all__ = ["Records", "RepoRecords", "RunQuery", "Unreachable"]


class Unreachable(CommandFailed):
    """The record's source did not answer (a server down, a deadline): worth retrying."""


@dataclass(frozen=True, slots=True)
class RunQuery:
    """``runs list``'s selection: every field optional but ``limit``."""

    project: str = ""
    domain: str = ""
    phases: Sequence[ActionPhase] = field(default_factory=tuple)
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50


class Records(Protocol):
    """What the commands read and request, wherever it comes from."""

    #: Whether rows carry the abort request's state (``abort_requested_at``, attempts); RunService's
    #: messages do not.
    knows_abort_requests: bool

    async def list_runs(self, query: RunQuery) -> list[Action]: ...
    async def get_run(self, run_id: RunId) -> Action: ...
    async def get_action(self, action_id: ActionId) -> Action: ...
    async def list_run_actions(self, run_id: RunId) -> list[Action]: ...
    async def list_events(
        self, action_id: ActionId, *, attempt: int | None, since: datetime | None, limit: int
    ) -> list[ActionEvent]:
        """The action's events (of ``attempt`` only, when given; updated after ``since``, of
        ``attempt`` or else the latest attempt, when given); NotFoundError for a missing action."""
        ...

    def watch_run(self, run_id: RunId) -> AsyncIterator[list[Action]]:
        """The run's actions, then each change (subscribed before the snapshot is read), without end;
        NotFoundError for a missing run."""
        ...

    async def last_errors(self, run_id: RunId, actions: Sequence[Action]) -> dict[str, ActionError]:
        """The last reported error (kind, message) of each FAILED or TIMED_OUT action."""
        ...

    async def abort(self, target: ActionId, reason: str, *, whole_run: bool, force: bool) -> None:
        """Request the abort of the run (``whole_run``) or of one action; unless ``force``, a run or
        action that already finished is left alone (AlreadyFinishedError)."""
        ...


class RepoRecords:
    """The record read straight from PostgreSQL (:class:`ActionRepo`)."""

    knows_abort_requests = True

    def __init__(self, repo: ActionRepo) -> None:
        self.repo = repo

    async def list_runs(self, query: RunQuery) -> list[Action]:
        filters = []
        if query.project:
            filters.append(Filter.of("project", FilterOp.EQUAL, query.project))
        if query.domain:
            filters.append(Filter.of("domain", FilterOp.EQUAL, query.domain))
        if query.phases:
            filters.append(Filter.of("phase", FilterOp.VALUE_IN, *(int(p) for p in query.phases)))
        if query.since:
            filters.append(Filter.of("created_at", FilterOp.GREATER_THAN_OR_EQUAL, query.since))
        if query.until:
            filters.append(Filter.of("created_at", FilterOp.LESS_THAN_OR_EQUAL, query.until))
        runs: list[Action] = []
        offset = 0
        while len(runs) < query.limit:
            page = await self.repo.list_actions(
                ListActionsRequest(
                    roots_only=True,
                    filters=filters,
                    sort_by=(SortBy("created_at", descending=True),),
                    limit=min(200, query.limit - len(runs)),
                    offset=offset,
                )
            )
            runs += page.actions
            if not page.has_more:
                break
            offset += len(page.actions)
        return runs

    async def get_run(self, run_id: RunId) -> Action:
        return await self.repo.get_run(run_id)

    async def get_action(self, action_id: ActionId) -> Action:
        return await self.repo.get_action(action_id)

    async def list_run_actions(self, run_id: RunId) -> list[Action]:
        await self.repo.get_run(run_id)
        return await self.repo.list_run_actions(run_id)

    async def list_events(
        self, action_id: ActionId, *, attempt: int | None, since: datetime | None, limit: int
    ) -> list[ActionEvent]:
        action = await self.repo.get_action(action_id)
        if since is not None:
            latest = attempt or action.attempts or 1
            return await self.repo.list_events_since(action_id, latest, since, limit=limit)
        found = await self.repo.list_events(action_id, limit=limit)
        return [e for e in found if attempt is None or e.attempt == attempt]

    async def watch_run(self, run_id: RunId) -> AsyncIterator[list[Action]]:
        async with self.repo.watch_all_action_updates(run_id) as updates:  # subscribe first
            await self.repo.get_run(run_id)
            yield await self.repo.list_run_actions(run_id)
            async for update in updates:
                yield [update]
        raise CommandFailed(f"the database watch of run {run_id} ended")

    async def last_errors(self, run_id: RunId, actions: Sequence[Action]) -> dict[str, ActionError]:
        errors = {}
        for action in actions:
            if ActionPhase(action.phase) not in FAILED:
                continue
            for event in reversed(await self.repo.list_events(ActionId(run_id, action.name))):
                message = error_message(event)
                if event.error_kind or message:
                    errors[action.name] = ActionError(event.error_kind, message)
                    break
        return errors

    async def abort(self, target: ActionId, reason: str, *, whole_run: bool, force: bool) -> None:
        if whole_run:
            await self.repo.abort_run(target.run, reason, force=force)
        else:
            await self.repo.abort_action(target, reason, force=force)
