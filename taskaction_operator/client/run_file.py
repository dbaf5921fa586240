"""Runs described in YAML (``taskaction-operator enqueue -f FILE``), validated whole before anything is made.

A run file names a run and its actions; each action has a name, a parent (none for the root ``a0``)
and either a ``taskType`` or a ``condition``. :func:`load_run_file` turns it into flyteidl2
``Action`` messages in parents-first order, or raises :class:`RunFileError` with ONE line that says
where the problem is. This module reads the document (its keys, the run, the parent order); the
messages each declaration becomes are built in :mod:`.run_file_build`. Nothing here talks to
Kubernetes or the database, so an invalid file changes nothing. Format (``examples/*.enqueue.yaml``)::

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from flyteidl2.actions import actions_service_pb2
from flyteidl2.task import run_pb2

from taskaction_operator.client.names import InvalidActionError, validate_run_name, validate_scope
from taskaction_operator.client.run_file_build import Fail, build_action, build_run_spec, check_keys, read_str
from taskaction_operator.client.taskaction_cr import build_taskaction
from taskaction_operator.client.validate import parent_name, validate_action
from taskaction_operator.model import ROOT_ACTION_NAME, RunId

DEFAULT_STORAGE = "s3://flyte-data"

_TOP_KEYS = frozenset({"project", "domain", "run", "storage", "runSpec", "actions"})


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
    check_keys(data, _TOP_KEYS, "", fail)
    project = read_str(data, "project", "", fail) or project
    domain = read_str(data, "domain", "", fail) or domain
    run = read_str(data, "run", "", fail)
    storage = (read_str(data, "storage", "", fail) or DEFAULT_STORAGE).rstrip("/")
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
    run_spec = build_run_spec(data.get("runSpec"), fail)

    decls = data.get("actions")
    if not isinstance(decls, list) or not decls:
        raise fail("actions", "expected a non-empty list of actions")
    names: dict[str, int] = {}
    for i, decl in enumerate(decls):
        where = f"actions[{i}]"
        if not isinstance(decl, Mapping):
            raise fail(where, "expected a mapping with name, parent and taskType or condition")
        name = read_str(decl, "name", where, fail)
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
        action = build_action(run_id, decl, base, where, fail)
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


def _parents_first(decls: Sequence[Mapping[str, Any]], names: Mapping[str, int], fail: Fail) -> list[int]:
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
