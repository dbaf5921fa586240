"""An action's details as RunService answers them: the row, its spec, its attempts merged from the
recorded events, and its result (upstream's buildActionDetails in runs/service/run_service.go)."""

from __future__ import annotations

from flyteidl2.workflow import run_definition_pb2 as wf

from taskaction_operator.model import ActionPhase
from taskaction_operator.repo import Action, ActionRepo
from taskaction_operator.server.attempts import attempts_from_events
from taskaction_operator.server.convert import action_details, run_spec

__all__ = ["EVENTS_PER_ACTION", "build_details", "build_run_details"]

#: Events read per action (upstream's getAttempts: ListEvents(…, 500)).
EVENTS_PER_ACTION = 500


async def build_details(repo: ActionRepo, row: Action) -> wf.ActionDetails:
    """``row`` with its attempts; a FAILED action's error is its last attempt's, once the events show
    that attempt (they are eventually consistent, as upstream says); an ABORTED one's reason is the
    row's ``abort_reason``."""
    details = action_details(row)
    attempts = attempts_from_events(await repo.list_events(row.action_id, EVENTS_PER_ACTION))
    details.attempts.extend(attempts)
    if row.phase is ActionPhase.FAILED:
        if attempts and attempts[-1].attempt == details.status.attempts:
            details.error_info.CopyFrom(attempts[-1].error_info)
    elif row.phase is ActionPhase.ABORTED:
        details.abort_info.CopyFrom(wf.AbortInfo(reason=row.abort_reason or ""))
    return details


async def build_run_details(repo: ActionRepo, root: Action) -> wf.RunDetails:
    """The run's details (upstream's GetRunDetails): the root's details and the run spec."""
    details = wf.RunDetails(action=await build_details(repo, root))
    spec = run_spec(root)
    if spec is not None:
        details.run_spec.CopyFrom(spec)
    return details
