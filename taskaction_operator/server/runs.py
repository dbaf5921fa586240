"""Flyte's ``RunService`` over Connect, on the record: what Flyte's SDK, CLI and UI call to list, read,
follow and abort runs. The unary methods are here, the watches in :mod:`.run_watches`.

Each method mirrors the function of the same name in upstream's runs/service/run_service.go: the
same scope filters, the same ``NewListResourceInputFromProto`` rules for filters, sort keys, limits
and the decimal page token (:meth:`ListActionsRequest.from_proto`), the same defaults. Aborts mark
the record exactly as upstream's do; the operator's abort sweep then deletes the TaskAction, as
upstream's abort reconciler does.

DELIBERATE DIFFERENCES: a database that is down answers ``unavailable`` (upstream: ``internal`` or
``not_found``); a filter on a value of the wrong type answers ``invalid_argument`` before any SQL runs
(upstream lets PostgreSQL fail with ``internal``); a request whose identifier lacks a part answers
``invalid_argument`` (upstream looks it up and answers ``not_found``).
"""

from __future__ import annotations

from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.run_service_connect import RunService

from taskaction_operator.client.actions_client import ActionsClient
from taskaction_operator.model import ActionPhase, ActionType
from taskaction_operator.repo import ActionRepo, ListActionsRequest, NotFoundError, TaskScope, TriggerScope
from taskaction_operator.server import convert
from taskaction_operator.server.attempts import attempts_from_events, event_message
from taskaction_operator.server.bounds import StreamLimits
from taskaction_operator.server.create_run import create_run_from_request
from taskaction_operator.server.details import EVENTS_PER_ACTION, build_details, build_run_details
from taskaction_operator.server.errors import action_id_of, run_id_of, translated
from taskaction_operator.server.run_watches import RunWatches

__all__ = ["DEFAULT_ABORT_REASON", "RunsEndpoint"]

#: Upstream's reason when a request gives none (AbortRun, AbortAction).
DEFAULT_ABORT_REASON = "User requested abort"

Ctx = RequestContext[Any, Any]


#: Why each method that is not served is not: the message of its ``unimplemented`` answer.
_WHY = {
    "CreateRun": "it creates the root TaskAction through the Kubernetes API: start serve with --actions",
    "GetActionData": "deprecated upstream, which answers unimplemented too; use DataProxyService",
    "SignalEvent": "condition actions cannot be signalled through this record",
    "WatchGroups": "task groups are not kept (there is no tasks table)",
}


def _unimplemented(method: str) -> ConnectError:
    return ConnectError(Code.UNIMPLEMENTED, f"RunService.{method} is not served here: {_WHY[method]}")


def _scopes(request: rs.ListRunsRequest) -> dict[str, Any]:
    """ListRuns' scope filters (upstream's ``ScopeBy`` switch), roots only, ANDed before the user's."""
    scopes: dict[str, Any] = {"roots_only": True, "has_paused_action": request.paused_actions_only}
    match request.WhichOneof("scope_by"):
        case "project_id":
            scopes["project"] = (request.project_id.name, request.project_id.domain)
        case "trigger_name":
            t = request.trigger_name
            scopes["trigger"] = TriggerScope(t.project, t.domain, t.task_name, t.name)
        case "task_name":
            n = request.task_name
            scopes["task"] = TaskScope(n.project, n.domain, n.name)
        case "task_id":
            i = request.task_id
            scopes["task"] = TaskScope(i.project, i.domain, i.name, i.version)
    return scopes


class RunsEndpoint(RunWatches, RunService):  # type: ignore[misc]  # untyped generated stubs
    """RunService on an :class:`ActionRepo`: every watch shares the repository's one listener."""

    def __init__(
        self,
        repo: ActionRepo,
        limits: StreamLimits | None = None,
        *,
        actions: ActionsClient | None = None,
        storage_prefix: str = "",
    ) -> None:
        self._repo = repo
        self._limits = limits or StreamLimits()
        self._actions = actions
        self._storage_prefix = storage_prefix
        self._init_fanouts(repo)

    @translated
    async def list_runs(self, request: rs.ListRunsRequest, ctx: Ctx) -> rs.ListRunsResponse:
        """Upstream's ListRuns: root actions in the scope, the user's filters ANDed on."""
        page = await self._repo.list_actions(
            ListActionsRequest.from_proto(request.request, **_scopes(request))
        )
        return rs.ListRunsResponse(runs=[convert.run(a) for a in page.actions], token=page.next_token)

    @translated
    async def list_actions(self, request: rs.ListActionsRequest, ctx: Ctx) -> rs.ListActionsResponse:
        """Upstream's ListActions: the run's actions, the user's filters ANDed on."""
        run_id = run_id_of(request.run_id)
        page = await self._repo.list_actions(ListActionsRequest.from_proto(request.request, run=run_id))
        return rs.ListActionsResponse(
            actions=[convert.listed_action(a) for a in page.actions], token=page.next_token
        )

    @translated
    async def get_run_details(self, request: rs.GetRunDetailsRequest, ctx: Ctx) -> rs.GetRunDetailsResponse:
        """Upstream's GetRunDetails: the root's details and the run spec."""
        row = await self._repo.get_run(run_id_of(request.run_id))
        return rs.GetRunDetailsResponse(details=await build_run_details(self._repo, row))

    @translated
    async def get_action_details(
        self, request: rs.GetActionDetailsRequest, ctx: Ctx
    ) -> rs.GetActionDetailsResponse:
        """Upstream's GetActionDetails: the row, its spec, its attempts and its result."""
        row = await self._repo.get_action(action_id_of(request.action_id))
        return rs.GetActionDetailsResponse(details=await build_details(self._repo, row))

    @translated
    async def abort_run(self, request: rs.AbortRunRequest, ctx: Ctx) -> rs.AbortRunResponse:
        """Upstream's AbortRun: the root marked ABORTED (unconditionally) and its abort requested; the
        operator deletes the root's TaskAction and Kubernetes the rest of the tree."""
        run_id = run_id_of(request.run_id)
        reason = request.reason if request.HasField("reason") else DEFAULT_ABORT_REASON
        await self._repo.abort_run(run_id, reason)
        return rs.AbortRunResponse()

    @translated
    async def abort_action(self, request: rs.AbortActionRequest, ctx: Ctx) -> rs.AbortActionResponse:
        """Upstream's AbortAction: the action marked ABORTED and its abort requested."""
        action_id = action_id_of(request.action_id)
        await self._repo.abort_action(action_id, request.reason or DEFAULT_ABORT_REASON)
        return rs.AbortActionResponse()

    @translated
    async def get_action_log_context(
        self, request: rs.GetActionLogContextRequest, ctx: Ctx
    ) -> rs.GetActionLogContextResponse:
        """Upstream's GetActionLogContext: the log context of the attempt's latest event."""
        action_id = action_id_of(request.action_id)
        try:
            row = await self._repo.get_latest_event_by_attempt(action_id, request.attempt)
        except NotFoundError:
            raise NotFoundError(f"no event found for action {action_id} attempt {request.attempt}") from None
        event = event_message(row)
        if not event.HasField("log_context"):
            raise NotFoundError(f"no log context found for action {action_id} attempt {request.attempt}")
        return rs.GetActionLogContextResponse(log_context=event.log_context, cluster=event.cluster)

    @translated
    async def get_action_data_u_r_is(
        self, request: rs.GetActionDataURIsRequest, ctx: Ctx
    ) -> rs.GetActionDataURIsResponse:
        """Upstream's GetActionDataURIs: inputs from the RunInfo; outputs, once the action succeeded,
        from the RunInfo (a trace) or the last attempt's event."""
        action_id = action_id_of(request.action_id)
        row = await self._repo.get_action(action_id)
        info = row.get_detailed_info()
        if info is None:
            raise NotFoundError("run data not available")
        response = rs.GetActionDataURIsResponse(inputs_uri=info.inputs_uri)
        if row.phase in (ActionPhase.SUCCEEDED, ActionPhase.RECOVERED):
            if row.action_type is ActionType.TRACE:
                response.outputs_uri = info.outputs_uri
            else:
                attempts = attempts_from_events(await self._repo.list_events(action_id, EVENTS_PER_ACTION))
                if not attempts:
                    raise NotFoundError("outputs not available, no attempts for action")
                if not attempts[-1].outputs.output_uri:
                    raise NotFoundError("outputs not available")
                response.outputs_uri = attempts[-1].outputs.output_uri
        return response

    @translated
    async def create_run(self, request: rs.CreateRunRequest, ctx: Ctx) -> rs.CreateRunResponse:
        """Upstream's CreateRun for a task spec (:mod:`.create_run`); with ``serve --actions`` only."""
        if self._actions is None:
            raise _unimplemented("CreateRun")
        return await create_run_from_request(self._repo, self._actions, request, self._storage_prefix)

    # -- not served ---------------------------------------------------------------------------------

    async def get_action_data(self, request: rs.GetActionDataRequest, ctx: Ctx) -> rs.GetActionDataResponse:
        raise _unimplemented("GetActionData")

    async def signal_event(self, request: rs.SignalEventRequest, ctx: Ctx) -> rs.SignalEventResponse:
        raise _unimplemented("SignalEvent")

    async def watch_groups(self, request: rs.WatchGroupsRequest, ctx: Ctx) -> Any:
        raise _unimplemented("WatchGroups")
        yield  # pragma: no cover - makes this a server stream
