"""RunService's messages read back as the record's rows (:class:`Action`, :class:`ActionEvent`), so that
whoever shows the record (the CLI) shows a run read through Flyte's API exactly as one read from the
database. The reverse of the server's converters (``server/convert.py``, upstream's converters in
runs/service/run_service.go).

A message carries less than a row; what it does not carry stays at the row's default: ``updated_at``,
``abort_requested_at`` and ``abort_attempt_count`` (None, 0), the ActionSpec's input URI and run output
base, the RunInfo and the run spec. Listed actions (ListActions) carry only the parent and the group
in their metadata, tree actions (WatchActions) and details everything else the columns show.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flyteidl2.workflow import run_definition_pb2 as wf
from google.protobuf import timestamp_pb2

from taskaction_operator.model import ActionId, ActionPhase, ActionType, CatalogCacheStatus
from taskaction_operator.repo import Action, ActionEvent

__all__ = ["action_of", "details_row", "events_of", "last_error"]

_TYPES = {"task": ActionType.TASK, "trace": ActionType.TRACE, "condition": ActionType.CONDITION}


def _time(ts: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    if not present:
        return None
    when: datetime = ts.ToDatetime(tzinfo=UTC)
    return when


def action_of(message: wf.Action) -> Action:
    """An :class:`Action` row from a RunService ``Action`` (a run, a listed action, a tree action)."""
    md, status = message.metadata, message.status
    row = Action.new(ActionId.from_proto(message.id), parent_action_name=md.parent or None)
    row.phase = ActionPhase(int(status.phase))
    which = md.WhichOneof("spec")
    if md.action_type:
        row.action_type = ActionType(int(md.action_type))
    else:  # a tree action: its type is the metadata's spec
        row.action_type = _TYPES.get(which or "", ActionType.UNSPECIFIED)
    row.action_group = md.group or None
    row.function_name = md.funtion_name
    row.environment_name = md.environment_name or None
    row.run_source = wf.RunSource.Name(md.source) if md.source else ""
    if which == "task":
        task = md.task
        row.task_type = task.task_type
        if task.HasField("id"):
            row.task_project = task.id.project or None
            row.task_domain = task.id.domain or None
            row.task_name = task.id.name or None
            row.task_version = task.id.version or None
        row.task_short_name = task.short_name or None
    elif which == "trace":
        row.task_name = md.trace.name or None
    if md.trigger_name:
        row.trigger_name = md.trigger_name
        row.trigger_task_name = md.trigger_id.name.task_name or None
        row.trigger_revision = md.trigger_id.revision or None
    row.created_at = _time(status.start_time, status.HasField("start_time"))
    row.ended_at = _time(status.end_time, status.HasField("end_time"))
    row.attempts = int(status.attempts)
    row.cache_status = CatalogCacheStatus(int(status.cache_status))
    if status.HasField("duration_ms"):
        row.duration_ms = int(status.duration_ms)
    elif row.ended_at is not None and row.created_at is not None:
        # Upstream leaves a 0 ms duration out of listed and tree actions; the row has it.
        row.duration_ms = max(0, int((row.ended_at - row.created_at).total_seconds() * 1000))
    return row


def details_row(details: wf.ActionDetails) -> Action:
    """An :class:`Action` row from ``ActionDetails`` (GetRunDetails, GetActionDetails): the abort
    reason too."""
    row = action_of(wf.Action(id=details.id, metadata=details.metadata, status=details.status))
    if details.HasField("abort_info"):
        row.abort_reason = details.abort_info.reason or None
    return row


def _kind(error: wf.ErrorInfo) -> str:
    return str(wf.ErrorInfo.Kind.Name(error.kind))


def events_of(details: wf.ActionDetails) -> list[ActionEvent]:
    """The action's phase events as RunService shows them: one per phase first seen in each attempt
    (its ``phase_transitions``, upstream's mergeEvents), the attempt's error on its terminal phase.
    The events' versions are not carried (0)."""
    run = details.id.run
    out = []
    for attempt in details.attempts:
        for transition in attempt.phase_transitions:
            event = wf.ActionEvent(
                id=details.id,
                attempt=attempt.attempt,
                phase=transition.phase,
                updated_time=transition.start_time,
            )
            error_kind = None
            terminal = ActionPhase(int(transition.phase)).is_terminal()
            if terminal and attempt.HasField("error_info"):
                event.error_info.CopyFrom(attempt.error_info)
                error_kind = _kind(attempt.error_info)
            when = _time(transition.start_time, transition.HasField("start_time"))
            out.append(
                ActionEvent(
                    run.project,
                    run.domain,
                    run.name,
                    details.id.name,
                    int(attempt.attempt),
                    ActionPhase(int(transition.phase)),
                    0,
                    info=bytes(event.SerializeToString()),
                    error_kind=error_kind,
                    created_at=when,
                    updated_at=when,
                )
            )
    out.sort(key=lambda e: (e.attempt, int(e.phase)))
    return out


def last_error(details: wf.ActionDetails) -> tuple[str | None, str | None]:
    """The (kind, message) of the action's last reported error: its details' ``error_info``, else its
    last attempt's; (None, None) when there is none."""
    errors = [details.error_info] if details.HasField("error_info") else []
    errors += [a.error_info for a in reversed(details.attempts) if a.HasField("error_info")]
    if not errors:
        return None, None
    return _kind(errors[0]), errors[0].message or None
