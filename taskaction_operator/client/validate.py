"""What a Flyte v2 ``Action`` must be before it becomes a TaskAction: every limit, checked up front.

Upstream leaves most of these to the API server: the CRD's validation markers on ``TaskActionSpec``
(``executor/api/v1/taskaction_types.go``: runName and actionName 1..30, project and domain 1..63,
cacheKey and group 256, taskType and shortName 63), ``validateRunName`` (``runs/service/utils.go``:
a DNS-1035 label) and buf.validate on ``ActionIdentifier.name`` (``flyteidl2/common/identifier.proto``).
Deliberately unlike upstream, they are all checked here (the name rules in ``client/names.py``),
*before* any API call, and the first one broken is raised as one readable :class:`InvalidActionError`.
Also here: the few readers of an ``Action`` message (its kind, parent and id) that validation and
building share. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from flyteidl2.actions import actions_service_pb2
from flyteidl2.core import types_pb2
from flyteidl2.task import run_pb2

from taskaction_operator.client.names import (
    DNS1123_SUBDOMAIN,
    LABEL_VALUE,
    MAX_CACHE_KEY,
    MAX_GROUP,
    MAX_SHORT_NAME,
    MAX_TASK_TYPE,
    QUALIFIED_NAME,
    InvalidActionError,
    validate_action_name,
    validate_run_name,
    validate_scope,
)
from taskaction_operator.model import ROOT_ACTION_NAME, ActionId, cr_name

#: Condition types a signal can satisfy (upstream ``validateConditionDeclaredType``).
SIGNALABLE_TYPES = frozenset(
    {
        types_pb2.SimpleType.BOOLEAN,
        types_pb2.SimpleType.INTEGER,
        types_pb2.SimpleType.FLOAT,
        types_pb2.SimpleType.STRING,
    }
)


# --- reading an Action -------------------------------------------------------------------------
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


# --- validation ----------------------------------------------------------------------------------
def _max_len(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidActionError(f"{what} is {len(value)} characters; at most {limit}")


def validate_labels(what: str, labels: Mapping[str, str], *, values_too: bool = True) -> None:
    """Kubernetes label (or annotation, ``values_too=False``) keys, and label values."""
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix))) or (
            not name or len(name) > 63 or not QUALIFIED_NAME.match(name)
        ):
            raise InvalidActionError(f"{what} key {key!r} is not a valid Kubernetes key")
        if values_too and (len(value) > 63 or not LABEL_VALUE.match(value)):
            raise InvalidActionError(
                f"{what} {key}={value!r} is not a valid label value (at most 63 "
                "letters, digits, '-', '_' or '.')"
            )


def validate_action(action: actions_service_pb2.Action, run_spec: run_pb2.RunSpec | None = None) -> None:
    """Every limit the CRD and the API server enforce, checked up front (see the module docstring).

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
        # Ours: upstream's buildTaskActionName (actions/k8s/client.go) maps an action named like the
        # run to <run>-a0, where it would collide with the root.
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
