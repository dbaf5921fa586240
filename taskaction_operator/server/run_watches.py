"""RunService's watches, on the repository's LISTEN/NOTIFY watches: one listener connection per
process, however many streams, and one subscription per watched run, action or "all runs", shared by
every stream of it (:mod:`.fanout`: a notified row is read once, whatever the number of streams).

Every watch subscribes before it reads, so nothing committed between the read and the subscription
is missed (upstream does the same, runs/service/run_service.go). A stream ends at the server's
lifetime or the client's deadline (see :mod:`.streams`), or as upstream's does:

* WatchActionDetails: once the action's last attempt is terminal in its events (lastAttemptIsTerminal).
* WatchClusterEvents: once the action or the attempt's events are terminal.
* WatchActions, WatchRuns, WatchRunDetails: never on their own.

DELIBERATE DIFFERENCES: upstream's WatchRunDetails is a stub that sends empty details; this one sends
the run's details (as GetRunDetails) first and whenever the root action changes (its row, its events,
an abort). WatchActions answers ``not_found`` for a run that does not exist (upstream sends nothing,
forever). WatchClusterEvents drains a burst of events from a fixed ``since`` (upstream moves ``since``
between pages of one burst, so its offset can skip events).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from connectrpc.request import RequestContext
from flyteidl2.workflow import run_service_pb2 as rs

from taskaction_operator.model import ActionId, RunId
from taskaction_operator.repo import Action, ActionRepo, ListActionsRequest, RepoError, Subscription
from taskaction_operator.server import convert
from taskaction_operator.server.attempts import event_message, is_terminal_phase, last_attempt_is_terminal
from taskaction_operator.server.bounds import StreamLimits
from taskaction_operator.server.details import build_details, build_run_details
from taskaction_operator.server.errors import action_id_of, run_id_of, translated_stream
from taskaction_operator.server.fanout import Fanout
from taskaction_operator.server.run_tree import NodeUpdate, RunTree

__all__ = ["CLUSTER_EVENTS_PAGE", "RUNS_SNAPSHOT", "SNAPSHOT_PAGE", "RunWatches"]

log = logging.getLogger(__name__)

Ctx = RequestContext[Any, Any]
#: Actions per page of WatchActions' snapshot (upstream's listAndSendAllActions: 1000).
SNAPSHOT_PAGE = 1000
#: Runs in WatchRuns' first answer (upstream's convertWatchRequestToListInput: limit 100).
RUNS_SNAPSHOT = 100
#: Events per read of WatchClusterEvents (upstream: 500).
CLUSTER_EVENTS_PAGE = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _tree_response(updates: Sequence[NodeUpdate]) -> rs.WatchActionsResponse:
    enriched = [convert.tree_action(u.action, u.meets_filter, u.child_phase_counts) for u in updates]
    return rs.WatchActionsResponse(enriched_actions=enriched)


class RunWatches:
    """The server-streaming methods of :class:`~taskaction_operator.server.runs.RunsEndpoint`."""

    _repo: ActionRepo
    _limits: StreamLimits

    def _init_fanouts(self, repo: ActionRepo) -> None:
        """One subscription per watched run, action, or all runs, shared by the streams (:mod:`.fanout`)."""

        async def run_actions(run_id: RunId) -> Subscription[Action]:
            return await repo.watch_all_action_updates(run_id)

        async def action_rows(action_id: ActionId) -> Subscription[Action]:
            return await repo.watch_action_updates(action_id)

        async def all_runs(_: str) -> Subscription[Action]:
            return await repo.watch_all_run_updates()

        self._run_actions: Fanout[RunId, Action] = Fanout(run_actions, lambda a: a.name)
        self._action_rows: Fanout[ActionId, Action] = Fanout(action_rows, lambda a: a.name)
        self._all_runs: Fanout[str, Action] = Fanout(all_runs, lambda a: str(a.run_id))

    @translated_stream
    async def watch_run_details(
        self, request: rs.WatchRunDetailsRequest, ctx: Ctx
    ) -> AsyncIterator[rs.WatchRunDetailsResponse]:
        run_id = run_id_of(request.run_id)
        # The root is the action without a parent (a0 in every run Flyte creates); it is read again
        # once subscribed, so nothing committed in between is missed.
        root_id = (await self._repo.get_run(run_id)).action_id
        async with self._limits.stream(ctx) as stream, self._action_rows.receive(root_id) as updates:
            root = await self._repo.get_run(run_id)
            yield rs.WatchRunDetailsResponse(details=await build_run_details(self._repo, root))
            async for _ in stream.follow(updates):
                root = await self._repo.get_run(run_id)
                yield rs.WatchRunDetailsResponse(details=await build_run_details(self._repo, root))

    @translated_stream
    async def watch_action_details(
        self, request: rs.WatchActionDetailsRequest, ctx: Ctx
    ) -> AsyncIterator[rs.WatchActionDetailsResponse]:
        action_id = action_id_of(request.action_id)
        async with self._limits.stream(ctx) as stream, self._action_rows.receive(action_id) as updates:
            row: Action | None = await self._repo.get_action(action_id)
            async with aclosing(stream.follow(updates)) as rows:
                while row is not None:
                    details = await build_details(self._repo, row)
                    yield rs.WatchActionDetailsResponse(details=details)
                    if last_attempt_is_terminal(details.attempts):
                        return
                    row = await anext(rows, None)

    @translated_stream
    async def watch_runs(self, request: rs.WatchRunsRequest, ctx: Ctx) -> AsyncIterator[rs.WatchRunsResponse]:
        """Upstream's WatchRuns: of the targets, only ``project_id`` filters (the snapshot and the
        updates); the others (org, cluster, task) are accepted and match every run, as upstream."""
        project = None
        if request.WhichOneof("target") == "project_id":
            project = (request.project_id.name, request.project_id.domain)
        async with self._limits.stream(ctx) as stream, self._all_runs.receive("") as updates:
            try:
                page = await self._repo.list_actions(
                    ListActionsRequest(roots_only=True, project=project, limit=RUNS_SNAPSHOT)
                )
            except RepoError as exc:
                # Upstream logs the failed snapshot and goes on watching.
                log.warning("WatchRuns: the first list of runs failed: %s", exc)
            else:
                if page.actions:
                    yield rs.WatchRunsResponse(runs=[convert.run(a) for a in page.actions])
            async for run in stream.follow(updates):
                if project is None or (run.project, run.domain) == project:
                    yield rs.WatchRunsResponse(runs=[convert.run(run)])

    @translated_stream
    async def watch_actions(
        self, request: rs.WatchActionsRequest, ctx: Ctx
    ) -> AsyncIterator[rs.WatchActionsResponse]:
        """Upstream's WatchActions: the run's tree in pages of 1000 (parents first), then each change,
        with what the filter shows and hides and the descendants' phase counts (:class:`RunTree`)."""
        run_id = run_id_of(request.run_id)
        tree = RunTree(request.filter)
        async with (
            self._limits.stream(ctx) as stream,
            self._run_actions.receive(run_id) as updates,
        ):
            await self._repo.get_run(run_id)
            async for page in self._repo.run_action_pages(run_id, SNAPSHOT_PAGE):
                changed = tree.upsert(page)
                if changed:
                    yield _tree_response(changed)
            async for row in stream.follow(updates):
                changed = tree.upsert([row])
                if changed:
                    yield _tree_response(changed)

    @translated_stream
    async def watch_cluster_events(
        self, request: rs.WatchClusterEventsRequest, ctx: Ctx
    ) -> AsyncIterator[rs.WatchClusterEventsResponse]:
        """Upstream's WatchClusterEvents: the attempt's cluster events as they are recorded."""
        action_id = action_id_of(request.id, "id")
        async with self._limits.stream(ctx) as stream, self._action_rows.receive(action_id) as updates:
            row: Action | None = await self._repo.get_action(action_id)
            since = _EPOCH
            async with aclosing(stream.follow(updates)) as rows:
                while row is not None:
                    terminal = row.phase.is_terminal()
                    async for events, latest, ended in self._cluster_events(
                        action_id, request.attempt, since
                    ):
                        terminal = terminal or ended
                        since = max(since, latest)
                        if events:
                            yield rs.WatchClusterEventsResponse(cluster_events=events)
                    if terminal:
                        return
                    row = await anext(rows, None)

    async def _cluster_events(
        self, action_id: ActionId, attempt: int, since: datetime
    ) -> AsyncIterator[tuple[list[Any], datetime, bool]]:
        """Pages of the attempt's events updated after ``since``: their cluster events, the latest
        ``updated_at`` and whether one is terminal (upstream's getClusterEventsInfo)."""
        offset = 0
        while True:
            rows = await self._repo.list_events_since(action_id, attempt, since, offset, CLUSTER_EVENTS_PAGE)
            messages = [event_message(r) for r in rows]
            latest = max((r.updated_at for r in rows if r.updated_at is not None), default=since)
            ended = any(is_terminal_phase(m.phase) for m in messages)
            yield [ce for m in messages for ce in m.cluster_events], latest, ended
            if len(rows) < CLUSTER_EVENTS_PAGE:
                return
            offset += CLUSTER_EVENTS_PAGE
