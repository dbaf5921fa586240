"""Building the flyteidl2 messages of a run file (:mod:`.run_file`): one action declaration becomes an
``Action`` (a task with its template, or a condition), ``runSpec`` a ``RunSpec``.

Every problem is raised through the caller's ``fail(where, problem)``, so it reads as one line of
the file's own error. Pure functions, no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from flyteidl2.actions import actions_service_pb2
from flyteidl2.common import identifier_pb2
from flyteidl2.core import identifier_pb2 as core_identifier_pb2
from flyteidl2.core import tasks_pb2, types_pb2
from flyteidl2.task import run_pb2, task_definition_pb2
from flyteidl2.workflow import run_definition_pb2
from google.protobuf import duration_pb2, timestamp_pb2, wrappers_pb2

from taskaction_operator.client.names import InvalidActionError
from taskaction_operator.client.validate import validate_labels
from taskaction_operator.model import RunId
from taskaction_operator.model.times import parse_rfc3339

#: Makes the error of a problem at a place in the file: ``fail(where, problem)``.
Fail = Callable[[str, str], Exception]

DEFAULT_IMAGE = "ghcr.io/flyteorg/flyte:py3.12-v2.3.6"

_RUN_SPEC_KEYS = frozenset({"labels", "annotations", "env", "interruptible", "runStartTime"})
_ACTION_KEYS = frozenset(
    {
        "name",
        "parent",
        "taskType",
        "task",
        "version",
        "shortName",
        "image",
        "args",
        "cacheKey",
        "group",
        "inputUri",
        "runOutputBase",
        "condition",
    }
)
_CONDITION_KEYS = frozenset({"name", "type", "prompt", "description", "timeout"})
_SIMPLE_TYPES = {
    "boolean": types_pb2.SimpleType.BOOLEAN,
    "bool": types_pb2.SimpleType.BOOLEAN,
    "integer": types_pb2.SimpleType.INTEGER,
    "int": types_pb2.SimpleType.INTEGER,
    "float": types_pb2.SimpleType.FLOAT,
    "string": types_pb2.SimpleType.STRING,
    "str": types_pb2.SimpleType.STRING,
}
_FLYTE_SDK = tasks_pb2.RuntimeMetadata.RuntimeType.FLYTE_SDK
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def build_action(
    run_id: RunId, decl: Mapping[str, Any], base: str, where: str, fail: Fail
) -> actions_service_pb2.Action:
    """The ``Action`` one declaration stands for; URIs derived from ``base`` unless given."""
    check_keys(decl, _ACTION_KEYS, where, fail)
    name = str(decl["name"])
    parent = decl.get("parent")
    action = actions_service_pb2.Action(
        action_id=identifier_pb2.ActionIdentifier(
            run=identifier_pb2.RunIdentifier(project=run_id.project, domain=run_id.domain, name=run_id.name),
            name=name,
        ),
        input_uri=read_str(decl, "inputUri", where, fail),
        run_output_base=read_str(decl, "runOutputBase", where, fail),
        group=read_str(decl, "group", where, fail),
    )
    if parent is not None:
        action.parent_action_name = str(parent)
    cond = decl.get("condition")
    task_type = read_str(decl, "taskType", where, fail)
    if cond is not None and task_type:
        raise fail(where, "give either taskType or condition, not both")
    if cond is not None:  # a condition reads and writes no data: no URIs unless given
        action.condition.CopyFrom(_condition(cond, name, where, fail))
        return action
    action.input_uri = action.input_uri or (f"{base}inputs" if parent is None else f"{base}{name}/inputs")
    action.run_output_base = action.run_output_base or base
    if not task_type:
        raise fail(where, "taskType is required (or give a condition)")
    task_name = read_str(decl, "task", where, fail) or f"{run_id.name}.{name}"
    version = read_str(decl, "version", where, fail) or "v1"
    args = decl.get("args")
    if args is not None and (not isinstance(args, list) or not all(isinstance(a, str) for a in args)):
        raise fail(where, "args must be a list of strings")
    template = tasks_pb2.TaskTemplate(
        id=core_identifier_pb2.Identifier(
            resource_type=core_identifier_pb2.ResourceType.TASK,
            project=run_id.project,
            domain=run_id.domain,
            name=task_name,
            version=version,
        ),
        type=task_type,
        metadata=tasks_pb2.TaskMetadata(runtime=tasks_pb2.RuntimeMetadata(type=_FLYTE_SDK, flavor="python")),
        container=tasks_pb2.Container(
            image=read_str(decl, "image", where, fail) or DEFAULT_IMAGE,
            args=args if args is not None else sdk_args(task_name, version),
        ),
    )
    short_name = read_str(decl, "shortName", where, fail) or task_name.rpartition(".")[2]
    action.task.CopyFrom(
        run_definition_pb2.TaskAction(
            id=task_definition_pb2.TaskIdentifier(
                project=run_id.project, domain=run_id.domain, name=task_name, version=version
            ),
            spec=task_definition_pb2.TaskSpec(task_template=template, short_name=short_name),
        )
    )
    cache_key = read_str(decl, "cacheKey", where, fail)
    if cache_key:
        action.task.cache_key.CopyFrom(wrappers_pb2.StringValue(value=cache_key))
    return action


def sdk_args(task_name: str, version: str) -> list[str]:
    """Container args as flyte-sdk v2 writes them (the ``a0`` entrypoint and its template variables)."""
    module, _, function = task_name.rpartition(".")
    return [
        "a0",
        "--inputs",
        "{{.input}}",
        "--outputs-path",
        "{{.outputPrefix}}",
        "--version",
        version,
        "--raw-data-path",
        "{{.rawOutputDataPrefix}}",
        "--checkpoint-path",
        "{{.checkpointOutputPrefix}}",
        "--prev-checkpoint",
        "{{.prevCheckpointPrefix}}",
        "--run-name",
        "{{.runName}}",
        "--name",
        "{{.actionName}}",
        "--run-start-time",
        "{{.runStartTime}}",
        "--resolver",
        "flyte._internal.resolvers.default.DefaultTaskResolver",
        "mod",
        module or "main",
        "instance",
        function,
    ]


def _condition(cond: Any, name: str, where: str, fail: Fail) -> run_definition_pb2.ConditionAction:
    if not isinstance(cond, Mapping):
        raise fail(where, "condition must be a mapping with type and optionally prompt, description, timeout")
    check_keys(cond, _CONDITION_KEYS, f"{where}.condition", fail)
    type_name = read_str(cond, "type", f"{where}.condition", fail).lower()
    if type_name not in _SIMPLE_TYPES:
        raise fail(
            f"{where}.condition",
            f"type {type_name or '(missing)'!r} must be boolean, integer, float or string",
        )
    out = run_definition_pb2.ConditionAction(
        name=read_str(cond, "name", where, fail) or name,
        type=types_pb2.LiteralType(simple=_SIMPLE_TYPES[type_name]),
        prompt=read_str(cond, "prompt", where, fail),
        description=read_str(cond, "description", where, fail),
    )
    if cond.get("timeout") is not None:
        out.timeout.CopyFrom(_duration(cond["timeout"], f"{where}.condition.timeout", fail))
    return out


def _duration(value: Any, where: str, fail: Fail) -> duration_pb2.Duration:
    """Seconds as a number, or ``1h30m``/``45s`` style."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return duration_pb2.Duration(seconds=value)
    match = _DURATION.match(str(value)) if isinstance(value, str) and value else None
    if match is None or not any(match.groups()):
        raise fail(where, f"{value!r} is not a duration (seconds, or like 90s, 15m, 1h30m)")
    h, m, s = (int(g or 0) for g in match.groups())
    return duration_pb2.Duration(seconds=h * 3600 + m * 60 + s)


def build_run_spec(raw: Any, fail: Fail) -> run_pb2.RunSpec:
    """The ``RunSpec`` of the file's ``runSpec`` (an empty one when absent)."""
    spec = run_pb2.RunSpec()
    if raw is None:
        return spec
    if not isinstance(raw, Mapping):
        raise fail("runSpec", "expected a mapping of labels, annotations, env, interruptible, runStartTime")
    check_keys(raw, _RUN_SPEC_KEYS, "runSpec", fail)
    for key in ("labels", "annotations", "env"):
        values = raw.get(key) or {}
        if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
            raise fail(f"runSpec.{key}", "expected a mapping of names to strings")
        values = {k: str(v) for k, v in values.items()}
        if key != "env":
            try:
                validate_labels(f"runSpec.{key[:-1]}", values, values_too=key == "labels")
            except InvalidActionError as exc:
                raise fail("runSpec", str(exc)) from None
        if key == "labels":
            spec.labels.values.update(values)
        elif key == "annotations":
            spec.annotations.values.update(values)
        else:
            for k, v in values.items():
                kv = spec.envs.values.add()
                kv.key, kv.value = k, v
    if raw.get("interruptible") is not None:
        if not isinstance(raw["interruptible"], bool):
            raise fail("runSpec.interruptible", "expected true or false")
        spec.interruptible.CopyFrom(wrappers_pb2.BoolValue(value=raw["interruptible"]))
    start = raw.get("runStartTime")
    if start is not None:
        when = parse_rfc3339(start)
        if when is None:
            raise fail("runSpec.runStartTime", f"{start!r} is not an RFC 3339 time")
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(when.astimezone(dt.UTC).replace(tzinfo=None))
        spec.run_start_time.CopyFrom(ts)
    return spec


def read_str(data: Mapping[str, Any], key: str, where: str, fail: Fail) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise fail(f"{where}.{key}" if where else key, "expected a string")
    return str(value)


def check_keys(data: Mapping[str, Any], allowed: frozenset[str], where: str, fail: Fail) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise fail(where, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
