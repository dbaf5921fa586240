"""Database rows from an Observation: the ``actions`` row to insert-if-absent, and ``action_events``.

Mirrors what upstream's RecordAction stores for a TaskAction (the request ``notifyRunService``
builds, ``actions/k8s/client.go``, stored by ``runs/service/internal_run_service.go:
recordSingleAction``): the task's project and domain from the CR's spec, its name and version (and the
function name) from the TaskTemplate's id, the short name ``spec.shortName`` else the full task name,
ActionSpec bytes, ``detailed_info`` a RunInfo with ``inputs_uri`` (and a condition's ConditionAction),
``action_details = '{}'``, attempts 1, created_at from the CR's creationTimestamp. A root row carries
its run source as the enum name (from the ``flyte.org/run-source`` annotation, else
``RUN_SOURCE_UNSPECIFIED``), as CreateRun would; child rows keep ``''``.
"""

from __future__ import annotations

from flyteidl2.common import identifier_pb2
from flyteidl2.core import tasks_pb2
from flyteidl2.task import task_definition_pb2
from flyteidl2.workflow import run_definition_pb2, run_info_pb2
from google.protobuf import wrappers_pb2
from google.protobuf.message import DecodeError

from taskaction_operator.crd.observe import Observation, PhaseEvent, decode_bytes
from taskaction_operator.model import ActionId, ActionPhase, ActionType
from taskaction_operator.repo import Action, ActionEvent

#: ``errorState.kind`` on the CR → ``ErrorInfo.Kind``.
_ERROR_KINDS = {
    "USER": run_definition_pb2.ErrorInfo.Kind.KIND_USER,
    "SYSTEM": run_definition_pb2.ErrorInfo.Kind.KIND_SYSTEM,
}


def action_identifier(action_id: ActionId) -> identifier_pb2.ActionIdentifier:
    return action_id.to_proto()


def _template(obs: Observation) -> tasks_pb2.TaskTemplate | None:
    raw = decode_bytes(obs.spec.get("taskTemplate"))
    if raw is None:
        return None
    tpl = tasks_pb2.TaskTemplate()
    try:
        tpl.ParseFromString(raw)
    except DecodeError:
        return None
    return tpl


def _condition(obs: Observation) -> run_definition_pb2.ConditionAction | None:
    raw = decode_bytes(obs.spec.get("conditionSpec"))
    if raw is None:
        return None
    cond = run_definition_pb2.ConditionAction()
    try:
        cond.ParseFromString(raw)
    except DecodeError:
        return None
    return cond


def action_row(obs: Observation) -> Action:
    """The ``actions`` row for a first sighting (written with INSERT … ON CONFLICT DO NOTHING)."""
    spec = obs.spec
    aid = obs.action_id
    action_spec = run_definition_pb2.ActionSpec(
        action_id=action_identifier(aid),
        input_uri=str(spec.get("inputUri") or ""),
        run_output_base=str(spec.get("runOutputBase") or ""),
        group=str(spec.get("group") or ""),
    )
    if obs.parent is not None:
        action_spec.parent_action_name = obs.parent
    row = Action.new(
        aid,
        parent_action_name=obs.parent,
        action_type=obs.action_type,
        action_group=spec.get("group") or None,
        task_type=str(spec.get("taskType") or ""),
        task_short_name=spec.get("shortName") or None,
        created_at=obs.created_at,
    )
    if obs.is_root:
        row.set_run_source(obs.run_source)
    if obs.action_type is ActionType.CONDITION:
        cond = _condition(obs)
        if cond is not None:
            action_spec.condition.CopyFrom(cond)
            row.function_name = cond.name
            row.task_name = cond.name or None
    else:
        tpl = _template(obs)
        if tpl is not None:
            tid = tpl.id
            action_spec.task.CopyFrom(
                run_definition_pb2.TaskAction(
                    id=task_definition_pb2.TaskIdentifier(
                        project=aid.project, domain=aid.domain, name=tid.name, version=tid.version
                    ),
                    spec=task_definition_pb2.TaskSpec(
                        task_template=tpl, short_name=str(spec.get("shortName") or "")
                    ),
                )
            )
            if spec.get("cacheKey"):
                action_spec.task.cache_key.CopyFrom(wrappers_pb2.StringValue(value=str(spec["cacheKey"])))
            row.task_project = aid.project or None
            row.task_domain = aid.domain or None
            row.task_name = tid.name or None
            row.task_version = tid.version or None
            row.function_name = tid.name
            if not row.task_short_name and tid.name:
                row.task_short_name = tid.name
    row.set_action_spec(action_spec)
    row.set_detailed_info(_run_info(obs))
    return row


def _run_info(obs: Observation) -> run_info_pb2.RunInfo:
    info = run_info_pb2.RunInfo(inputs_uri=str(obs.spec.get("inputUri") or ""))
    if obs.action_type is ActionType.CONDITION:
        cond = _condition(obs)
        if cond is not None:
            info.condition.CopyFrom(cond)
    return info


def signalled_run_info(obs: Observation) -> bytes | None:
    """The RunInfo of a signalled condition that SUCCEEDED: the row's own (as :func:`action_row`
    builds it) with the signal's value as ``output`` and who signalled as ``principal``, as upstream
    persists them (``actions/k8s/client.go`` ships ``status.signalValue``/``signalledBy`` with the
    terminal UpdateActionStatus; ``runs/service/internal_run_service.go: mergeRunInfoOutput`` sets
    them on the stored RunInfo: "the CR is GC'd after terminal recording, so RunInfo in the DB is
    the long-term record"). None for anything else, or a value that is no Literal."""
    if obs.signal_value is None or obs.phase is not ActionPhase.SUCCEEDED:
        return None
    if obs.action_type is not ActionType.CONDITION:
        return None
    info = _run_info(obs)
    try:
        info.output.ParseFromString(obs.signal_value)
    except DecodeError:
        return None
    if obs.signalled_by:
        info.principal.user.id.subject = obs.signalled_by
    return bytes(info.SerializeToString(deterministic=True))


def event_row(obs: Observation, ev: PhaseEvent) -> ActionEvent:
    """One ``action_events`` row; ``info`` is a flyteidl2 ActionEvent (version 0)."""
    msg = run_definition_pb2.ActionEvent(
        id=action_identifier(obs.action_id),
        attempt=ev.attempt,
        phase=int(ev.phase),
        version=0,
        cache_status=obs.cache_status,
    )
    if ev.occurred_at is not None:
        msg.updated_time.FromDatetime(ev.occurred_at)
    if ev.message and ev.phase is not ActionPhase.SUCCEEDED and ev.phase.is_terminal():
        msg.error_info.message = ev.message
        kind = _ERROR_KINDS.get(obs.error_kind)
        if kind is not None:
            msg.error_info.kind = kind
    return ActionEvent.from_proto(msg)
