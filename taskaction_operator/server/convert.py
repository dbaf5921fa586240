"""Rows of the record as RunService messages: upstream's converters in runs/service/run_service.go,
each mirrored by the function named in its docstring.

Upstream builds an action's status and metadata in four slightly different ways (a run in a list, an
action in a list, an action of a watched tree, an action's details); they are kept apart here on
purpose, so that a client sees exactly the fields upstream's answer carries.
"""

from __future__ import annotations

from datetime import datetime

from flyteidl2.common import identifier_pb2
from flyteidl2.task import run_pb2, task_definition_pb2
from flyteidl2.workflow import run_definition_pb2 as wf
from google.protobuf import timestamp_pb2

from taskaction_operator.model import ActionType
from taskaction_operator.repo import Action

__all__ = [
    "action_details",
    "action_status",
    "filter_name",
    "listed_action",
    "metadata",
    "run",
    "run_spec",
    "timestamp",
    "tree_action",
]


def timestamp(when: datetime | None) -> timestamp_pb2.Timestamp | None:
    if when is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


def action_status(row: Action, *, min_duration: int | None = None) -> wf.ActionStatus:
    """Phase, start (``created_at``), end, attempts, cache status; ``duration_ms`` when the row has
    one of at least ``min_duration`` (upstream: any in actionModelToDetails, ``>= 0`` in
    convertRunToProto, ``> 0`` in convertActionToEnrichedProto and convertNodeUpdateToEnrichedProto)."""
    status = wf.ActionStatus(
        phase=int(row.phase),
        start_time=timestamp(row.created_at),
        end_time=timestamp(row.ended_at),
        attempts=row.attempts,
        cache_status=int(row.cache_status),
    )
    if row.duration_ms is not None and (min_duration is None or row.duration_ms >= min_duration):
        status.duration_ms = max(row.duration_ms, 0)
    return status


def _decode_spec(row: Action) -> wf.ActionSpec | None:
    """The stored ActionSpec, or None when absent or unreadable (upstream: extractActionSpec)."""
    try:
        return row.get_action_spec()
    except Exception:  # upstream ignores a spec that does not parse
        return None


def _trigger(row: Action, md: wf.ActionMetadata) -> None:
    if row.trigger_name is None:
        return
    md.trigger_name = row.trigger_name
    md.trigger_id.name.CopyFrom(
        identifier_pb2.TriggerName(
            project=row.project,
            domain=row.domain,
            name=row.trigger_name,
            task_name=row.trigger_task_name or "",
        )
    )
    if row.trigger_revision is not None:
        md.trigger_id.revision = row.trigger_revision


def _condition(row: Action) -> wf.ConditionActionMetadata:
    meta = wf.ConditionActionMetadata(name=row.function_name)
    spec = _decode_spec(row)
    if spec is not None and spec.HasField("condition"):
        if spec.condition.HasField("type"):
            meta.type.CopyFrom(spec.condition.type)
        meta.name = meta.name or spec.condition.name
    return meta


def _source(row: Action) -> int:
    """``run_source`` (stored as the enum's name) as its number; 0 when empty or unknown."""
    value: int = wf.RunSource.Value(row.run_source) if row.run_source in wf.RunSource.keys() else 0  # noqa: SIM118 - an enum wrapper, not a dict
    return value


def _task_id(row: Action) -> task_definition_pb2.TaskIdentifier:
    return task_definition_pb2.TaskIdentifier(
        project=row.task_project or "",
        domain=row.task_domain or "",
        name=row.task_name or "",
        version=row.task_version or "",
    )


def metadata(row: Action) -> wf.ActionMetadata:
    """Upstream's actionMetadataFromModel (runs and action details)."""
    md = wf.ActionMetadata(
        action_type=int(row.action_type),
        funtion_name=row.function_name,
        parent=row.parent_action_name or "",
        group=row.action_group or "",
        environment_name=row.environment_name or "",
        source=_source(row),
    )
    try:
        identity = row.get_created_by()
    except Exception:  # upstream leaves executed_by unset for unreadable bytes
        identity = None
    if identity is not None:
        md.executed_by.CopyFrom(identity)
    _trigger(row, md)
    if row.action_type is ActionType.TASK:
        md.task.SetInParent()
        md.task.task_type = row.task_type
        if row.task_name is not None:
            md.task.id.CopyFrom(_task_id(row))
        if row.task_short_name is not None:
            md.task.short_name = row.task_short_name
    elif row.action_type is ActionType.TRACE:
        md.trace.SetInParent()
        md.trace.name = row.function_name
    elif row.action_type is ActionType.CONDITION:
        md.condition.CopyFrom(_condition(row))
    return md


def run(row: Action) -> wf.Run:
    """Upstream's convertRunToProto.

    DELIBERATE DIFFERENCE: upstream then overlays the status with the JSON ``action_details`` column
    when it holds a status; in this record every writer stores ``{}`` there (upstream's
    UpdateActionState writes its state JSON into that column, ours keeps the state in a table of its
    own), so the overlay never applies and is left out."""
    action = wf.Action(
        id=row.action_id.to_proto(),
        metadata=metadata(row),
        status=action_status(row, min_duration=0),
    )
    return wf.Run(action=action)


def listed_action(row: Action) -> wf.Action:
    """An action in ListActions' answer: upstream's convertActionToEnrichedProto, whose metadata
    carries the parent and group only."""
    return wf.Action(
        id=row.action_id.to_proto(),
        metadata=wf.ActionMetadata(parent=row.parent_action_name or "", group=row.action_group or ""),
        status=action_status(row, min_duration=1),
    )


def _short_name(task_name: str) -> str:
    """Upstream's ExtractFunctionName without an environment: the last dot-separated segment."""
    return task_name.rsplit(".", 1)[-1]


def tree_action(row: Action, meets_filter: bool, child_phase_counts: dict[int, int]) -> wf.EnrichedAction:
    """An action of a watched run's tree: upstream's convertNodeUpdateToEnrichedProto."""
    md = wf.ActionMetadata(
        parent=row.parent_action_name or "",
        group=row.action_group or "",
        funtion_name=row.function_name,
        source=_source(row),
    )
    if row.action_type is ActionType.TRACE:
        md.trace.SetInParent()
        md.trace.name = row.task_name or ""
    elif row.action_type is ActionType.TASK:
        md.task.id.CopyFrom(_task_id(row))
        md.task.task_type = row.task_type
        md.task.short_name = (
            row.task_short_name if row.task_short_name is not None else _short_name(row.task_name or "")
        )
        md.environment_name = row.environment_name or ""
    elif row.action_type is ActionType.CONDITION:
        md.condition.CopyFrom(_condition(row))
    _trigger(row, md)
    return wf.EnrichedAction(
        action=wf.Action(id=row.action_id.to_proto(), metadata=md, status=action_status(row, min_duration=1)),
        meets_filter=meets_filter,
        children_phase_counts=child_phase_counts,
    )


def filter_name(row: Action) -> str:
    """The name WatchActions' NAME filter matches: upstream's actionFilterName (the short name of the
    spec's task id or the spec's short name, else the action's name)."""
    spec = _decode_spec(row)
    name = ""
    if spec is not None and spec.HasField("task"):
        name = spec.task.id.name or spec.task.spec.short_name
    return _short_name(name) if name else row.name


def action_details(row: Action) -> wf.ActionDetails:
    """Upstream's actionModelToDetails, with the spec taken from the stored ActionSpec
    (setActionDetailsSpecFromActionSpec) and a signalled condition's value from the RunInfo.

    DELIBERATE DIFFERENCE: upstream first looks the task spec up by the RunInfo's digest in its tasks
    table; this record has no tasks table, so the spec is always the one embedded in the ActionSpec
    (upstream's own fallback)."""
    details = wf.ActionDetails(id=row.action_id.to_proto(), metadata=metadata(row), status=action_status(row))
    spec = _decode_spec(row)
    if spec is not None:
        which = spec.WhichOneof("spec")
        if which == "task" and spec.task.HasField("spec"):
            details.task.CopyFrom(spec.task.spec)
        elif which == "trace" and spec.trace.HasField("spec"):
            details.trace.CopyFrom(spec.trace.spec)
        elif which == "condition":
            details.condition.CopyFrom(spec.condition)
    if row.action_type is ActionType.CONDITION:
        try:
            info = row.get_detailed_info()
        except Exception:  # an unreadable RunInfo carries no signal
            info = None
        if info is not None and info.HasField("output"):
            details.signal_info.output.CopyFrom(info.output)
            details.signal_info.signalled_by.CopyFrom(info.principal)
    return details


def run_spec(row: Action) -> run_pb2.RunSpec | None:
    """Upstream's extractRunSpecFromActionModel: the ``run_spec`` column, else the ActionSpec's."""
    try:
        spec = row.get_run_spec()
    except Exception:  # upstream falls back to the ActionSpec's
        spec = None
    if spec is not None:
        return spec
    action_spec = _decode_spec(row)
    if action_spec is not None and action_spec.HasField("run_spec"):
        return action_spec.run_spec
    return None
