"""Build the TaskAction a Flyte v2 ``Action`` becomes: pure functions, no I/O.

This is upstream's ``ActionsClient.Enqueue`` minus the API calls (``actions/k8s/client.go``:
``newTaskActionCR``, ``setParentOwnership``, ``applyRunSpecToTaskAction``,
``inheritRunContextFromParentTaskAction``, ``buildActionSpec``, ``embedTaskTemplate``), so that
naming, labels, inheritance, the owner reference and validation are unit-tested without a cluster
and the client only adds the calls around it.

Deliberate differences from upstream, each marked where it happens:

* every limit the CRD or the API server would enforce is checked *before* any API call and raised
  as one readable :class:`InvalidActionError` (upstream lets the API server refuse, or not at all);
* a child never inherits the executor's and recorder's terminal labels (research §8.12: a child of a
  finished parent would otherwise be born "recorded" and hidden from the operator), nor
  tool-private annotations (kopf's and kubectl's state, our run-source annotation);
* a non-root action whose CR name would collide with the root's ``<run>-a0`` is refused (§8.11).
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from flyteidl2.actions import actions_service_pb2
from flyteidl2.core import tasks_pb2, types_pb2
from flyteidl2.task import run_pb2
from flyteidl2.workflow import run_definition_pb2

from taskaction_operator.crd.names import (
    API_VERSION,
    KIND,
    LABEL_ACTION,
    LABEL_ACTION_TYPE,
    LABEL_DOMAIN,
    LABEL_IS_ROOT,
    LABEL_PROJECT,
    LABEL_RUN,
    RUN_SOURCE_ANNOTATION,
    TERMINAL_LABELS,
    owner_reference,
)
from taskaction_operator.model import ROOT_ACTION_NAME, ActionId, cr_name

#: Annotations that describe one object's handling by a tool, never the run: not inherited.
_PRIVATE_ANNOTATION_PREFIXES = ("kopf.zalando.org/", "kubectl.kubernetes.io/last-applied-configuration")

#: The placeholder flyte-sdk puts in container args; Enqueue bakes the run start time in.
RUN_START_TIME_VAR = "{{.runStartTime}}"
#: Condition types a signal can satisfy (upstream ``validateConditionDeclaredType``).
SIGNALABLE_TYPES = frozenset(
    {
        types_pb2.SimpleType.BOOLEAN,
        types_pb2.SimpleType.INTEGER,
        types_pb2.SimpleType.FLOAT,
        types_pb2.SimpleType.STRING,
    }
)

MAX_RUN_NAME = 30
MAX_ACTION_NAME = 30
MAX_PROJECT_DOMAIN = 63
MAX_CACHE_KEY = 256
MAX_TASK_TYPE = 63
MAX_SHORT_NAME = 63
MAX_GROUP = 256

_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


class InvalidActionError(ValueError):
    """An action that must not reach the API server; the message says which field and why."""


# --- validation ----------------------------------------------------------------------------------
def validate_run_name(name: str) -> None:
    """1..30 characters and a DNS-1035 label (upstream ``validateRunName``)."""
    if not name:
        raise InvalidActionError("run name is empty")
    if len(name) > MAX_RUN_NAME:
        raise InvalidActionError(f"run name {name!r} is {len(name)} characters; at most {MAX_RUN_NAME}")
    if not _DNS1035_LABEL.match(name):
        raise InvalidActionError(
            f"run name {name!r} is not a DNS-1035 label: lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )


def validate_scope(what: str, value: str) -> None:
    """A project or domain: 1..63 characters, and a valid label value (it becomes one)."""
    if not value:
        raise InvalidActionError(f"{what} is empty")
    if len(value) > MAX_PROJECT_DOMAIN:
        raise InvalidActionError(f"{what} {value!r} is {len(value)} characters; at most {MAX_PROJECT_DOMAIN}")
    if not _LABEL_VALUE.match(value):
        raise InvalidActionError(
            f"{what} {value!r} is not a valid label value: letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )


def validate_action_name(run_name: str, name: str, what: str = "action name") -> None:
    """1..30 characters, and ``<run>-<name>`` must be a valid object name (DNS-1123 subdomain)."""
    if not name:
        raise InvalidActionError(f"{what} is empty")
    if len(name) > MAX_ACTION_NAME:
        raise InvalidActionError(f"{what} {name!r} is {len(name)} characters; at most {MAX_ACTION_NAME}")
    if not _DNS1123_SUBDOMAIN.match(f"{run_name}-{name}") or not _LABEL_VALUE.match(name):
        raise InvalidActionError(
            f"{what} {name!r} cannot name a TaskAction ({run_name}-{name}): use lowercase letters, "
            "digits, '-' or '.', starting and ending with a letter or digit"
        )


def _max_len(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidActionError(f"{what} is {len(value)} characters; at most {limit}")


def validate_labels(what: str, labels: Mapping[str, str], *, values_too: bool = True) -> None:
    """Kubernetes label (or annotation, ``values_too=False``) keys, and label values."""
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix))) or (
            not name or len(name) > 63 or not _QUALIFIED_NAME.match(name)
        ):
            raise InvalidActionError(f"{what} key {key!r} is not a valid Kubernetes key")
        if values_too and (len(value) > 63 or not _LABEL_VALUE.match(value)):
            raise InvalidActionError(
                f"{what} {key}={value!r} is not a valid label value (at most 63 "
                "letters, digits, '-', '_' or '.')"
            )


def action_kind(action: actions_service_pb2.Action) -> str:
    """``task``, ``condition`` or ``trace``; ``""`` when no spec is set."""
    return str(action.WhichOneof("spec") or "")


def parent_name(action: actions_service_pb2.Action) -> str | None:
    """The parent action's name; None for a root (absent or empty, as upstream)."""
    return (
        action.parent_action_name
        if action.HasField("parent_action_name") and action.parent_action_name
        else None
    )


def action_id_of(action: actions_service_pb2.Action) -> ActionId:
    run = action.action_id.run
    return ActionId.of(run.project, run.domain, run.name, action.action_id.name)


def validate_action(action: actions_service_pb2.Action, run_spec: run_pb2.RunSpec | None = None) -> None:
    """Every limit the CRD and the API server enforce, checked up front (research §8.20).

    Raises InvalidActionError naming the first offending field.
    """
    run = action.action_id.run
    validate_scope("project", run.project)
    validate_scope("domain", run.domain)
    validate_run_name(run.name)
    name = action.action_id.name
    validate_action_name(run.name, name)
    parent = parent_name(action)
    if parent is not None:
        validate_action_name(run.name, parent, "parent action name")
        if parent == name:
            raise InvalidActionError(f"action {name!r} names itself as its parent")
        # Ours: upstream maps an action named like the run to <run>-a0 and would collide with the root.
        if cr_name(ActionId.of(run.project, run.domain, run.name, name)) == f"{run.name}-{ROOT_ACTION_NAME}":
            raise InvalidActionError(
                f"action name {name!r} is reserved: its TaskAction would be the run's root {run.name}-a0"
            )
    _max_len("group", action.group, MAX_GROUP)
    kind = action_kind(action)
    if kind == "task":
        task = action.task
        _max_len("cacheKey", task.cache_key.value, MAX_CACHE_KEY)
        _max_len("taskType", task.spec.task_template.type, MAX_TASK_TYPE)
        _max_len("shortName", task.spec.short_name, MAX_SHORT_NAME)
    elif kind == "condition":
        declared = action.condition.type.simple if action.condition.type.HasField("simple") else None
        if declared not in SIGNALABLE_TYPES:
            raise InvalidActionError(
                f"condition {action.condition.name or name!r} must declare a boolean, integer, float or "
                "string type"
            )
    elif kind == "trace":
        raise InvalidActionError(
            f"action {name!r} is a trace: traces are recorded, not enqueued (no TaskAction exists for them)"
        )
    else:
        raise InvalidActionError(f"action {name!r} has no spec: set task or condition")
    if run_spec is not None and parent is None:
        validate_labels("run label", dict(run_spec.labels.values))
        validate_labels("run annotation", dict(run_spec.annotations.values), values_too=False)


# --- building ------------------------------------------------------------------------------------
def build_action_spec(
    action: actions_service_pb2.Action, run_spec: run_pb2.RunSpec | None
) -> run_definition_pb2.ActionSpec:
    """Upstream ``buildActionSpec``: the ``workflow.ActionSpec`` an ``actions.Action`` stands for."""
    spec = run_definition_pb2.ActionSpec(
        action_id=action.action_id,
        input_uri=action.input_uri,
        run_output_base=action.run_output_base,
        group=action.group,
    )
    if action.HasField("parent_action_name"):
        spec.parent_action_name = action.parent_action_name
    if run_spec is not None:
        spec.run_spec.CopyFrom(run_spec)
    kind = action_kind(action)
    if kind:
        getattr(spec, kind).CopyFrom(getattr(action, kind))
    return spec


def substitute_run_start_time(
    template: tasks_pb2.TaskTemplate, run_spec: run_pb2.RunSpec | None
) -> tasks_pb2.TaskTemplate:
    """``{{.runStartTime}}`` in container args → RFC 3339 UTC, on a copy (``substituteRunStartTime``)."""
    if run_spec is None or not run_spec.HasField("run_start_time") or not template.container.args:
        return template
    when = run_spec.run_start_time.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
    out = tasks_pb2.TaskTemplate()
    out.CopyFrom(template)
    args = [arg.replace(RUN_START_TIME_VAR, when) for arg in out.container.args]
    del out.container.args[:]
    out.container.args.extend(args)
    return out


def b64(message: Any) -> str:
    """A protobuf message as the CRD's ``format: byte`` (base64 of its serialization)."""
    return base64.b64encode(message.SerializeToString(deterministic=True)).decode("ascii")


def build_taskaction(
    action: actions_service_pb2.Action,
    run_spec: run_pb2.RunSpec | None,
    *,
    namespace: str,
    parent: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The TaskAction body for ``action`` (validated first).

    ``parent`` is the parent TaskAction as read from the API server; it is required for a child
    (its uid goes into the owner reference, its run context is inherited) and ignored for a root.
    """
    validate_action(action, run_spec)
    aid = action_id_of(action)
    kind = action_kind(action)
    pname = parent_name(action)
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": cr_name(aid),
            "namespace": namespace,
            "labels": {
                LABEL_PROJECT: aid.project,
                LABEL_DOMAIN: aid.domain,
                LABEL_RUN: aid.run_name,
                LABEL_ACTION: aid.name,
                LABEL_ACTION_TYPE: kind,
                LABEL_IS_ROOT: "true" if pname is None else "false",
            },
        },
    }
    spec: dict[str, Any] = {
        "runName": aid.run_name,
        "project": aid.project,
        "domain": aid.domain,
        "actionName": aid.name,
    }
    if pname is not None:
        spec["parentActionName"] = pname
    if kind == "condition":
        spec["actionType"] = "condition"
        spec["conditionSpec"] = b64(action.condition)
    body["spec"] = spec
    if pname is not None:
        if parent is None:
            raise ValueError(f"building child {aid} needs its parent TaskAction")
        meta = parent.get("metadata") or {}
        body["metadata"]["ownerReferences"] = [owner_reference(str(meta.get("name")), str(meta.get("uid")))]
        if kind == "task":  # upstream: a condition child does not inherit the parent's run context
            inherit_run_context(body, parent)
    elif kind == "task":  # upstream applies the RunSpec to a task root only
        apply_run_spec(body, run_spec)
    if action.input_uri:
        spec["inputUri"] = action.input_uri
    if action.run_output_base:
        spec["runOutputBase"] = action.run_output_base
    if kind == "task":
        task = action.task
        if task.HasField("cache_key") and task.cache_key.value:
            spec["cacheKey"] = task.cache_key.value
        if task.spec.HasField("task_template"):
            template = substitute_run_start_time(task.spec.task_template, run_spec)
            if template.type:
                spec["taskType"] = template.type
            if task.spec.short_name:
                spec["shortName"] = task.spec.short_name
            spec["taskTemplate"] = b64(template)
    if action.group:
        spec["group"] = action.group
    return _ordered_spec(body)


_SPEC_ORDER = (
    "runName",
    "project",
    "domain",
    "actionName",
    "parentActionName",
    "actionType",
    "conditionSpec",
    "inputUri",
    "runOutputBase",
    "cacheKey",
    "taskType",
    "shortName",
    "taskTemplate",
    "envVars",
    "interruptible",
    "group",
)


def _ordered_spec(body: dict[str, Any]) -> dict[str, Any]:
    """Spec keys in upstream's struct order, so the YAML reads like Flyte's own."""
    spec = body["spec"]
    body["spec"] = {k: spec[k] for k in _SPEC_ORDER if k in spec}
    return body


def apply_run_spec(body: dict[str, Any], run_spec: run_pb2.RunSpec | None) -> None:
    """Upstream ``applyRunSpecToTaskAction`` (root only): envs, interruptible, labels, annotations.

    RunSpec labels never override the identity labels; annotations are copied as given.
    """
    spec = body["spec"]
    meta = body["metadata"]
    spec.pop("envVars", None)
    spec.pop("interruptible", None)
    if run_spec is None:
        return
    envs = {kv.key: kv.value for kv in run_spec.envs.values}
    if envs:
        spec["envVars"] = envs
    if run_spec.HasField("interruptible"):
        spec["interruptible"] = bool(run_spec.interruptible.value)
    labels = meta.setdefault("labels", {})
    for key, value in run_spec.labels.values.items():
        labels.setdefault(key, value)
    if run_spec.annotations.values:
        meta.setdefault("annotations", {}).update(run_spec.annotations.values)


def inherit_run_context(body: dict[str, Any], parent: Mapping[str, Any]) -> None:
    """Upstream ``inheritRunContextFromParentTaskAction``: a task child takes its parent's run context.

    envVars and interruptible are copied as they are on the parent (absent stays absent); labels
    and annotations are copied for keys the child does not have. Deliberately unlike upstream, the
    terminal labels and tool-private annotations are never copied (see the module docstring).
    """
    pspec = parent.get("spec") or {}
    pmeta = parent.get("metadata") or {}
    spec = body["spec"]
    meta = body["metadata"]
    envs = pspec.get("envVars") or {}
    if envs:
        spec["envVars"] = dict(envs)
    else:
        spec.pop("envVars", None)
    if pspec.get("interruptible") is not None:
        spec["interruptible"] = bool(pspec["interruptible"])
    else:
        spec.pop("interruptible", None)
    labels = meta.setdefault("labels", {})
    for key, value in (pmeta.get("labels") or {}).items():
        if key not in TERMINAL_LABELS:
            labels.setdefault(key, value)
    annotations = {
        k: v
        for k, v in (pmeta.get("annotations") or {}).items()
        if k != RUN_SOURCE_ANNOTATION and not k.startswith(_PRIVATE_ANNOTATION_PREFIXES)
    }
    if annotations:
        merged = meta.setdefault("annotations", {})
        for key, value in annotations.items():
            merged.setdefault(key, value)


# --- reading -------------------------------------------------------------------------------------
_SHARD_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_SHARDS = tuple(a + b for a in _SHARD_ALPHABET for b in _SHARD_ALPHABET)


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def shard_prefix(namespace: str, name: str) -> str:
    """Upstream's base-36 output shard: FNV-32a of ``namespace/name`` over the 1296 two-character prefixes."""
    return _SHARDS[_fnv32a(f"{namespace}/{name}".encode()) % len(_SHARDS)]


def output_uri(body: Mapping[str, Any]) -> str:
    """Upstream ``BuildOutputUri``: ``<scheme>://<bucket>/<shard>/<base path>/<action>/<attempt>``."""
    spec = body.get("spec") or {}
    base = str(spec.get("runOutputBase") or "")
    if not base:
        return ""
    meta = body.get("metadata") or {}
    attempt = int((body.get("status") or {}).get("attempts") or 0) or 1
    parts = urllib.parse.urlsplit(base)
    rest = parts.path.strip("/")
    segments = [shard_prefix(str(meta.get("namespace") or ""), str(meta.get("name") or ""))]
    if rest:
        segments.append(rest)
    segments += [str(spec.get("actionName") or ""), str(attempt)]
    return urllib.parse.urlunsplit(parts._replace(path="/" + "/".join(segments)))
