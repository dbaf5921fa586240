"""Runs described in YAML (``taskaction-operator enqueue -f FILE``), validated whole before anything is made.

A run file names a run and its actions; each action has a name, a parent (none for the root ``a0``)
and either a ``taskType`` or a ``condition``. :func:`load_run_file` turns it into flyteidl2
``Action`` messages in parents-first order, or raises :class:`RunFileError` with ONE line that says
where the problem is. Nothing here talks to Kubernetes or the database, so an invalid file changes
nothing. Format (``examples/*.enqueue.yaml``)::

    project: flytesnacks          # optional when --project / TASKACTION_PROJECT / config give one
    domain: development           # likewise
    run: r3levels                 # run name: DNS-1035 label, at most 30 characters
    storage: s3://flyte-data      # optional; inputUri/runOutputBase are derived from it
    runSpec:                      # optional: labels, annotations, env, interruptible, runStartTime
      labels: {team: ml}
    actions:
      - name: a0                  # the root: no parent, always named a0 (as upstream CreateRun)
        taskType: python          # optional per task: task, version, shortName, image, args,
      - name: a1                  #   cacheKey, group, inputUri, runOutputBase
        parent: a0
        taskType: python
      - name: approve
        parent: a1
        condition: {type: boolean, prompt: "Ship it?", timeout: 1h}
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flyteidl2.actions import actions_service_pb2
from flyteidl2.common import identifier_pb2
from flyteidl2.core import identifier_pb2 as core_identifier_pb2
from flyteidl2.core import tasks_pb2, types_pb2
from flyteidl2.task import run_pb2, task_definition_pb2
from flyteidl2.workflow import run_definition_pb2
from google.protobuf import duration_pb2, timestamp_pb2, wrappers_pb2

from taskaction_operator.client.taskaction_cr import (
    InvalidActionError,
    build_taskaction,
    parent_name,
    validate_action,
    validate_labels,
    validate_run_name,
    validate_scope,
)
from taskaction_operator.model import ROOT_ACTION_NAME, RunId
from taskaction_operator.model.times import parse_rfc3339

DEFAULT_STORAGE = "s3://flyte-data"
DEFAULT_IMAGE = "ghcr.io/flyteorg/flyte:py3.12-v2.3.6"

_TOP_KEYS = frozenset({"project", "domain", "run", "storage", "runSpec", "actions"})
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


class RunFileError(ValueError):
    """The file is not a valid run; the message is one line naming the file, the place and the problem."""


@dataclass(frozen=True, slots=True)
class RunFile:
    """A validated run: its id, RunSpec and actions (root first, every parent before its children)."""

    run_id: RunId
    run_spec: run_pb2.RunSpec
    actions: tuple[actions_service_pb2.Action, ...]
    source: str

    @property
    def root(self) -> actions_service_pb2.Action:
        return self.actions[0]

    @property
    def children(self) -> tuple[actions_service_pb2.Action, ...]:
        return self.actions[1:]


def load_run_file(
    path: str | Path, *, text: str | None = None, project: str = "", domain: str = ""
) -> RunFile:
    """Read and validate a run file (``text`` instead of reading ``path``, e.g. stdin).

    ``project``/``domain`` are the caller's defaults, used when the file does not say.
    """
    source = str(path)
    try:
        raw = text if text is not None else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RunFileError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise RunFileError(f"{source}: {where}{problem}") from None
    return parse_run_file(data, source=source, project=project, domain=domain)


def parse_run_file(data: Any, *, source: str = "<run file>", project: str = "", domain: str = "") -> RunFile:
    """Validate a parsed run file; see :func:`load_run_file`."""

    def fail(where: str, problem: str) -> RunFileError:
        return RunFileError(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")

    if not isinstance(data, Mapping):
        raise fail("", "expected a mapping with run, actions and optionally project, domain, runSpec")
    _no_unknown_keys(data, _TOP_KEYS, "", fail)
    project = _str(data, "project", "", fail) or project
    domain = _str(data, "domain", "", fail) or domain
    run = _str(data, "run", "", fail)
    storage = (_str(data, "storage", "", fail) or DEFAULT_STORAGE).rstrip("/")
    try:
        if not project:
            raise InvalidActionError(
                "no project: set 'project:' in the file, --project, or TASKACTION_PROJECT"
            )
        if not domain:
            raise InvalidActionError("no domain: set 'domain:' in the file, --domain, or TASKACTION_DOMAIN")
        validate_scope("project", project)
        validate_scope("domain", domain)
        validate_run_name(run)
    except InvalidActionError as exc:
        raise fail("", str(exc)) from None
    run_id = RunId(project, domain, run)
    run_spec = _run_spec(data.get("runSpec"), fail)

    decls = data.get("actions")
    if not isinstance(decls, list) or not decls:
        raise fail("actions", "expected a non-empty list of actions")
    names: dict[str, int] = {}
    for i, decl in enumerate(decls):
        where = f"actions[{i}]"
        if not isinstance(decl, Mapping):
            raise fail(where, "expected a mapping with name, parent and taskType or condition")
        name = _str(decl, "name", where, fail)
        if not name:
            raise fail(where, "name is required")
        if name in names:
            raise fail(f"{where} ({name})", f"duplicate action name (also actions[{names[name]}])")
        names[name] = i
    order = _parents_first(decls, names, fail)

    base = f"{storage}/{project}/{domain}/{run}/"
    actions: list[actions_service_pb2.Action] = []
    for i in order:
        decl = decls[i]
        where = f"actions[{i}] ({decl['name']})"
        _no_unknown_keys(decl, _ACTION_KEYS, where, fail)
        action = _action(run_id, decl, base, where, fail)
        try:
            validate_action(action, run_spec)
        except InvalidActionError as exc:
            raise fail(where, str(exc)) from None
        actions.append(action)
    if actions[0].WhichOneof("spec") != "task":
        raise fail(
            f"actions[{order[0]}] ({ROOT_ACTION_NAME})", "the root must be a task (taskType), not a condition"
        )
    return RunFile(run_id, run_spec, tuple(actions), source)


def _parents_first(decls: Sequence[Mapping[str, Any]], names: Mapping[str, int], fail: Any) -> list[int]:
    """Indexes root first, then breadth-first in file order; refuses a missing parent or a cycle."""
    children: dict[str | None, list[int]] = {}
    for i, decl in enumerate(decls):
        where = f"actions[{i}] ({decl['name']})"
        parent = decl.get("parent")
        if parent is not None and (not isinstance(parent, str) or not parent):
            raise fail(where, "parent must be an action name")
        if parent is not None and parent not in names:
            raise fail(where, f"parent {parent!r} is not an action of this run")
        if parent == decl["name"]:
            raise fail(where, "an action cannot be its own parent")
        children.setdefault(parent, []).append(i)
    roots = children.get(None, [])
    if not roots:
        raise fail("actions", f"no root action: exactly one action has no parent, named {ROOT_ACTION_NAME!r}")
    if len(roots) > 1:
        listed = ", ".join(str(decls[i]["name"]) for i in roots)
        raise fail("actions", f"{len(roots)} actions have no parent ({listed}); exactly one root is allowed")
    root = roots[0]
    if decls[root]["name"] != ROOT_ACTION_NAME:
        raise fail(
            f"actions[{root}] ({decls[root]['name']})", f"the root action must be named {ROOT_ACTION_NAME!r}"
        )
    order, queue = [], [root]
    while queue:
        i = queue.pop(0)
        order.append(i)
        queue += children.get(str(decls[i]["name"]), [])
    if len(order) < len(decls):
        stuck = [i for i in range(len(decls)) if i not in set(order)]
        cycle = _cycle(decls, names, stuck[0])
        raise fail(f"actions[{stuck[0]}] ({decls[stuck[0]]['name']})", f"parent cycle: {' -> '.join(cycle)}")
    return order


def _cycle(decls: Sequence[Mapping[str, Any]], names: Mapping[str, int], start: int) -> list[str]:
    """Follow parents from ``start`` until a name repeats; the loop, closed (a -> b -> a)."""
    path: list[str] = []
    name = str(decls[start]["name"])
    while name not in path:
        path.append(name)
        name = str(decls[names[name]]["parent"])
    return [*path[path.index(name) :], name]


def _action(
    run_id: RunId, decl: Mapping[str, Any], base: str, where: str, fail: Any
) -> actions_service_pb2.Action:
    name = str(decl["name"])
    parent = decl.get("parent")
    action = actions_service_pb2.Action(
        action_id=identifier_pb2.ActionIdentifier(
            run=identifier_pb2.RunIdentifier(project=run_id.project, domain=run_id.domain, name=run_id.name),
            name=name,
        ),
        input_uri=_str(decl, "inputUri", where, fail),
        run_output_base=_str(decl, "runOutputBase", where, fail),
        group=_str(decl, "group", where, fail),
    )
    if parent is not None:
        action.parent_action_name = str(parent)
    cond = decl.get("condition")
    task_type = _str(decl, "taskType", where, fail)
    if cond is not None and task_type:
        raise fail(where, "give either taskType or condition, not both")
    if cond is not None:  # a condition reads and writes no data: no URIs unless given
        action.condition.CopyFrom(_condition(cond, name, where, fail))
        return action
    action.input_uri = action.input_uri or (f"{base}inputs" if parent is None else f"{base}{name}/inputs")
    action.run_output_base = action.run_output_base or base
    if not task_type:
        raise fail(where, "taskType is required (or give a condition)")
    task_name = _str(decl, "task", where, fail) or f"{run_id.name}.{name}"
    version = _str(decl, "version", where, fail) or "v1"
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
            image=_str(decl, "image", where, fail) or DEFAULT_IMAGE,
            args=args if args is not None else sdk_args(task_name, version),
        ),
    )
    short_name = _str(decl, "shortName", where, fail) or task_name.rpartition(".")[2]
    action.task.CopyFrom(
        run_definition_pb2.TaskAction(
            id=task_definition_pb2.TaskIdentifier(
                project=run_id.project, domain=run_id.domain, name=task_name, version=version
            ),
            spec=task_definition_pb2.TaskSpec(task_template=template, short_name=short_name),
        )
    )
    cache_key = _str(decl, "cacheKey", where, fail)
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


def _condition(cond: Any, name: str, where: str, fail: Any) -> run_definition_pb2.ConditionAction:
    if not isinstance(cond, Mapping):
        raise fail(where, "condition must be a mapping with type and optionally prompt, description, timeout")
    _no_unknown_keys(cond, _CONDITION_KEYS, f"{where}.condition", fail)
    type_name = _str(cond, "type", f"{where}.condition", fail).lower()
    if type_name not in _SIMPLE_TYPES:
        raise fail(
            f"{where}.condition",
            f"type {type_name or '(missing)'!r} must be boolean, integer, float or string",
        )
    out = run_definition_pb2.ConditionAction(
        name=_str(cond, "name", where, fail) or name,
        type=types_pb2.LiteralType(simple=_SIMPLE_TYPES[type_name]),
        prompt=_str(cond, "prompt", where, fail),
        description=_str(cond, "description", where, fail),
    )
    if cond.get("timeout") is not None:
        out.timeout.CopyFrom(_duration(cond["timeout"], f"{where}.condition.timeout", fail))
    return out


def _duration(value: Any, where: str, fail: Any) -> duration_pb2.Duration:
    """Seconds as a number, or ``1h30m``/``45s`` style."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return duration_pb2.Duration(seconds=value)
    match = _DURATION.match(str(value)) if isinstance(value, str) and value else None
    if match is None or not any(match.groups()):
        raise fail(where, f"{value!r} is not a duration (seconds, or like 90s, 15m, 1h30m)")
    h, m, s = (int(g or 0) for g in match.groups())
    return duration_pb2.Duration(seconds=h * 3600 + m * 60 + s)


def _run_spec(raw: Any, fail: Any) -> run_pb2.RunSpec:
    spec = run_pb2.RunSpec()
    if raw is None:
        return spec
    if not isinstance(raw, Mapping):
        raise fail("runSpec", "expected a mapping of labels, annotations, env, interruptible, runStartTime")
    _no_unknown_keys(raw, _RUN_SPEC_KEYS, "runSpec", fail)
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


def _str(data: Mapping[str, Any], key: str, where: str, fail: Any) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise fail(f"{where}.{key}" if where else key, "expected a string")
    return str(value)


def _no_unknown_keys(data: Mapping[str, Any], allowed: frozenset[str], where: str, fail: Any) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise fail(where, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def render_taskactions(rf: RunFile, namespace: str = "") -> list[dict[str, Any]]:
    """The TaskActions ``rf`` becomes, for ``kubectl apply`` (``enqueue --dry-run``).

    Without ownerReferences: a child applied by kubectl cannot know its parent's uid in advance, so
    the operator sets them once it sees the child. Without a namespace unless one is given.
    """
    built: dict[str, dict[str, Any]] = {}
    out = []
    for action in rf.actions:
        pname = parent_name(action)
        parent = None
        if pname is not None:
            parent = {**built[pname], "metadata": {**built[pname]["metadata"], "uid": ""}}
        body = build_taskaction(action, rf.run_spec, namespace=namespace, parent=parent)
        built[action.action_id.name] = body
        body["metadata"].pop("ownerReferences", None)
        if not namespace:
            body["metadata"].pop("namespace", None)
        out.append(body)
    return out
