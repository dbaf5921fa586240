"""Flyte's RunService over Connect, read as the record: what ``taskaction-operator --server URL`` asks
a ``taskaction-operator serve`` (or any server of Flyte's RunService) instead of the database.

Every call carries the caller's Kubernetes bearer token when there is one (``serve --auth
kubernetes`` checks it); its failures stay :class:`~connectrpc.errors.ConnectError` (the caller turns
them into its own messages), but a missing run or action is the repository's
:class:`~taskaction_operator.repo.NotFoundError`, as when reading the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from flyteidl2.common import list_pb2
from flyteidl2.workflow import run_definition_pb2 as wf
from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.run_service_connect import RunServiceClient
from pyqwest import Client as HTTPClient
from pyqwest import HTTPTransport

from taskaction_operator.client.api_rows import action_of, details_row
from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import Action, NotFoundError

__all__ = ["PAGE", "RunApi"]

#: Runs or actions per ListRuns/ListActions page (upstream's maximum limit).
PAGE = 200


def _filter(field: str, function: int, *values: object) -> list_pb2.Filter:
    return list_pb2.Filter(field=field, function=function, values=[str(v) for v in values])


def _attached(name: str, by_name: dict[str, Action]) -> bool:
    """Whether the action's ancestors are all listed (WatchActions sends an action only then)."""
    seen: set[str] = set()
    row: Action | None = by_name.get(name)
    while row is not None and row.parent_action_name is not None and row.name not in seen:
        seen.add(row.name)
        row = by_name.get(row.parent_action_name)
    return row is not None and row.parent_action_name is None


class RunApi:
    """One RunService at ``url``; unary calls bounded by ``timeout`` seconds, watches by the caller."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._headers = {"authorization": f"Bearer {token}"} if token else {}
        self._timeout_ms = int(timeout * 1000)
        # A transport of its own, closed with the client: the shared default one is left to the
        # interpreter's exit, where its runtime thread can abort the process.
        self._transport = HTTPTransport(tls_include_system_certs=True, enable_otel=False)
        self._client = RunServiceClient(self.url, http_client=HTTPClient(self._transport))

    async def close(self) -> None:
        await self._client.close()
        await self._transport.aclose()
        # The transport's runtime drops its connections in the background: a process exiting
        # before that finished aborted (SIGABRT) about once in 30 runs; after a moment it never did.
        await asyncio.sleep(0.05)

    @contextlib.contextmanager
    def _not_found(self, what: str) -> Iterator[None]:
        """A ``not_found`` answer as the repository's NotFoundError (``run … not found``)."""
        try:
            yield
        except ConnectError as exc:
            if exc.code is Code.NOT_FOUND:
                raise NotFoundError(f"{what} not found") from None
            raise

    # --- reads -----------------------------------------------------------------------------------
    async def list_runs(
        self,
        *,
        project: str = "",
        domain: str = "",
        phases: Sequence[ActionPhase] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[Action]:
        """Runs newest first (ListRuns, page after page up to ``limit``)."""
        f = list_pb2.Filter
        filters = []
        if project:
            filters.append(_filter("project", f.EQUAL, project))
        if domain:
            filters.append(_filter("domain", f.EQUAL, domain))
        if phases:
            filters.append(_filter("phase", f.VALUE_IN, *(int(p) for p in phases)))
        if since is not None:
            filters.append(_filter("created_at", f.GREATER_THAN_OR_EQUAL, since.isoformat()))
        if until is not None:
            filters.append(_filter("created_at", f.LESS_THAN_OR_EQUAL, until.isoformat()))
        order = [list_pb2.Sort(key="created_at", direction=list_pb2.Sort.DESCENDING)]
        runs: list[Action] = []
        token = ""
        while len(runs) < limit:
            request = list_pb2.ListRequest(
                limit=min(PAGE, limit - len(runs)), token=token, filters=filters, sort_by_fields=order
            )
            page = await self._client.list_runs(
                rs.ListRunsRequest(request=request), headers=self._headers, timeout_ms=self._timeout_ms
            )
            runs += [action_of(r.action) for r in page.runs]
            token = page.token
            if not token or not page.runs:
                break
        return runs[:limit]

    async def run_details(self, run_id: RunId) -> wf.RunDetails:
        with self._not_found(f"run {run_id}"):
            answer = await self._client.get_run_details(
                rs.GetRunDetailsRequest(run_id=run_id.to_proto()),
                headers=self._headers,
                timeout_ms=self._timeout_ms,
            )
        return answer.details

    async def action_details(self, action_id: ActionId) -> wf.ActionDetails:
        with self._not_found(f"action {action_id}"):
            answer = await self._client.get_action_details(
                rs.GetActionDetailsRequest(action_id=action_id.to_proto()),
                headers=self._headers,
                timeout_ms=self._timeout_ms,
            )
        return answer.details

    async def get_run(self, run_id: RunId) -> Action:
        return details_row((await self.run_details(run_id)).action)

    async def get_action(self, action_id: ActionId) -> Action:
        return details_row(await self.action_details(action_id))

    async def _listed_actions(self, run_id: RunId) -> list[Action]:
        out: list[Action] = []
        token = ""
        while True:
            request = list_pb2.ListRequest(limit=PAGE, token=token)
            with self._not_found(f"run {run_id}"):
                page = await self._client.list_actions(
                    rs.ListActionsRequest(request=request, run_id=run_id.to_proto()),
                    headers=self._headers,
                    timeout_ms=self._timeout_ms,
                )
            out += [action_of(a) for a in page.actions]
            token = page.token
            if not token or not page.actions:
                return out

    async def list_run_actions(self, run_id: RunId) -> list[Action]:
        """Every action of the run, with the metadata the tree shows: ListActions says which actions
        there are (its metadata is the parent and group only, as upstream's), then the snapshot of a
        WatchActions stream supplies each one's type and task; an action whose parent is not recorded
        (WatchActions holds it back) keeps ListActions' row."""
        listed = {a.name: a for a in await self._listed_actions(run_id)}
        expected = {name for name in listed if _attached(name, listed)}
        rich: dict[str, Action] = {}
        if expected:
            stream = self._client.watch_actions(
                rs.WatchActionsRequest(run_id=run_id.to_proto()),
                headers=self._headers,
                timeout_ms=self._timeout_ms,
            )
            with self._not_found(f"run {run_id}"):
                async with contextlib.aclosing(stream):
                    async for answer in stream:
                        for enriched in answer.enriched_actions:
                            rich[enriched.action.id.name] = action_of(enriched.action)
                        if expected <= rich.keys():
                            break
        return [rich.get(name, row) for name, row in listed.items()] + [
            row for name, row in rich.items() if name not in listed
        ]

    async def watch_run(self, run_id: RunId) -> AsyncIterator[list[Action]]:
        """The run's actions (WatchActions): the snapshot, then each change, as rows; subscribed again
        whenever the server ends the stream cleanly (after its ``--max-stream-seconds``), as Flyte's
        SDK does. Unbounded: the caller sets the deadline."""
        while True:
            stream = self._client.watch_actions(
                rs.WatchActionsRequest(run_id=run_id.to_proto()), headers=self._headers
            )
            with self._not_found(f"run {run_id}"):
                async with contextlib.aclosing(stream):
                    async for answer in stream:
                        rows = [action_of(e.action) for e in answer.enriched_actions]
                        if rows:
                            yield rows

    # --- aborts ----------------------------------------------------------------------------------
    async def abort_run(self, run_id: RunId, reason: str) -> None:
        with self._not_found(f"run {run_id}"):
            await self._client.abort_run(
                rs.AbortRunRequest(run_id=run_id.to_proto(), reason=reason),
                headers=self._headers,
                timeout_ms=self._timeout_ms,
            )

    async def abort_action(self, action_id: ActionId, reason: str) -> None:
        with self._not_found(f"action {action_id}"):
            await self._client.abort_action(
                rs.AbortActionRequest(action_id=action_id.to_proto(), reason=reason),
                headers=self._headers,
                timeout_ms=self._timeout_ms,
            )
