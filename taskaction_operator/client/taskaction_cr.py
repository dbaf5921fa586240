"""Build the TaskAction a Flyte v2 ``Action`` becomes: pure functions, no I/O.

This is upstream's ``ActionsClient.Enqueue`` minus the API calls (``actions/k8s/client.go``:
``newTaskActionCR``, ``setParentOwnership``, ``applyRunSpecToTaskAction``,
``inheritRunContextFromParentTaskAction``, ``buildActionSpec``, ``embedTaskTemplate``), so that
naming, labels, inheritance and the owner reference are unit-tested without a cluster and the
client only adds the calls around it. What may be built at all is decided first, in :mod:`.validate`.

Deliberate differences from upstream, each marked where it happens:

* the action is validated in full before anything is built (:func:`.validate.validate_action`);
* a child never inherits the executor's and recorder's terminal labels (upstream's
  ``inheritRunContextFromParentTaskAction`` in ``actions/k8s/client.go`` copies every parent label
  the child lacks, so a child of a finished parent would be born "recorded" and hidden from the
  operator), nor tool-private annotations (kopf's and kubectl's state, our run-source annotation);
* a non-root action whose CR name would collide with the root's ``<run>-a0`` is refused (upstream's
  ``buildTaskActionName`` maps an action named like the run there; see :mod:`.validate`).
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Mapping
from typing import Any

from flyteidl2.actions import actions_service_pb2
from flyteidl2.core import tasks_pb2
from flyteidl2.task import run_pb2
from flyteidl2.workflow import run_definition_pb2

from taskaction_operator.client.validate import action_id_of, action_kind, parent_name, validate_action
from taskaction_operator.crd.names import (
    API_VERSION,
    KIND,
    LABEL_ACTION,
    LABEL_ACTION_TYPE,
    LABEL_DOMAIN,
    LABEL_IS_ROOT,
    LABEL_PROJECT,
    LABEL_RUN,
    RECORD_GUARD_FINALIZER,
    RUN_SOURCE_ANNOTATION,
    TERMINAL_LABELS,
    owner_reference,
)
from taskaction_operator.model import cr_name

#: Annotations that describe one object's handling by a tool, never the run: not inherited.
_PRIVATE_ANNOTATION_PREFIXES = ("kopf.zalando.org/", "kubectl.kubernetes.io/last-applied-configuration")

#: The placeholder flyte-sdk puts in container args; Enqueue bakes the run start time in.
RUN_START_TIME_VAR = "{{.runStartTime}}"


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
    record_guard: bool = False,
) -> dict[str, Any]:
    """The TaskAction body for ``action`` (validated first).

    ``parent`` is the parent TaskAction as read from the API server; it is required for a child
    (its uid goes into the owner reference, as upstream's ``Enqueue`` sets it before ``Create``:
    ``actions/k8s/client.go`` ``setParentOwnership``; its run context is inherited) and ignored for a
    root. ``record_guard`` creates it holding the operator's ``flyte.org/record-guard`` finalizer
    (deliberately unlike upstream, which has no such guard), so that the operator, finding both
    already there, has nothing to patch on first sight.
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
    if record_guard:
        body["metadata"]["finalizers"] = [RECORD_GUARD_FINALIZER]
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
