"""The events endpoint of Flyte's executor: ``EventsProxyService.Record`` and the run service's
``InternalRunService.RecordActionEvents`` it forwards to upstream, served here over one path.

Upstream (``events/service/events_proxy_service.go: Record``) validates the request, forwards the
events to ``runs/service/internal_run_service.go: RecordActionEvents``, which builds each row with
``models.NewActionEventModel`` and inserts with ``ON CONFLICT DO NOTHING``
(``runs/repository/impl/action.go: InsertEvents``). Flyte's executor blocks every status write on
this call (``executor/pkg/controller/taskaction_controller.go: recordEvent``).

DELIBERATE DIFFERENCE: a reported event replaces a row with the same key that the operator derived
from the TaskAction's status before the report arrived (the executor's event carries logs, error
info and cluster events; ours only the phase and time), so the executor's events are the record and
there is never a second row for one transition. The operator's own derived rows never overwrite a
reported one (first write wins for them, as upstream).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectrpc.request import RequestContext
from flyteidl2.workflow import events_proxy_service_pb2, internal_run_service_pb2, run_definition_pb2
from flyteidl2.workflow.events_proxy_service_connect import EventsProxyService
from flyteidl2.workflow.internal_run_service_connect import InternalRunService
from google.rpc import status_pb2

from taskaction_operator.repo import ActionEvent, ActionRepo
from taskaction_operator.server.errors import GRPC_CODES, connect_error, translated, validate_events


class EventsEndpoint(EventsProxyService, InternalRunService):  # type: ignore[misc]  # untyped stubs
    """Stores the ActionEvents Flyte's executor reports; every other InternalRunService method
    answers ``unimplemented`` (the operator records actions and phases from the TaskActions)."""

    def __init__(self, repo: ActionRepo) -> None:
        self._repo = repo

    async def _store(self, events: Sequence[run_definition_pb2.ActionEvent]) -> None:
        validate_events(events)
        await self._repo.insert_reported_events([ActionEvent.from_proto(e) for e in events])

    @translated
    async def record(
        self, request: events_proxy_service_pb2.RecordRequest, ctx: RequestContext[Any, Any]
    ) -> events_proxy_service_pb2.RecordResponse:
        await self._store(request.events)
        return events_proxy_service_pb2.RecordResponse()

    async def record_action_events(
        self, request: internal_run_service_pb2.RecordActionEventsRequest, ctx: RequestContext[Any, Any]
    ) -> internal_run_service_pb2.RecordActionEventsResponse:
        """Upstream answers failures in-band (``statusFromError``), never as an RPC error."""
        try:
            await self._store(request.events)
        except Exception as exc:
            err = connect_error(exc)
            status = status_pb2.Status(code=GRPC_CODES[err.code], message=err.message)
            return internal_run_service_pb2.RecordActionEventsResponse(status=status)
        return internal_run_service_pb2.RecordActionEventsResponse(status=status_pb2.Status())
