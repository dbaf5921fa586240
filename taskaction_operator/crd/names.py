"""Every name of the TaskAction resource, in one place: group/version/plural, labels, our finalizer
and annotations, the label selectors built from them, and the owner reference.

The labels and the resource are upstream's (``actions/k8s/client.go``: ``newTaskActionCR``,
``setParentOwnership``; ``executor/pkg/controller/taskaction_controller.go``: ``ensureTerminalLabels``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskaction_operator.model import ActionId, RunId

GROUP = "flyte.org"
VERSION = "v1"
PLURAL = "taskactions"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TaskAction"

LABEL_PROJECT = "flyte.org/project"
LABEL_DOMAIN = "flyte.org/domain"
LABEL_RUN = "flyte.org/run"
LABEL_ACTION = "flyte.org/action"
LABEL_ACTION_TYPE = "flyte.org/action-type"
LABEL_IS_ROOT = "flyte.org/is-root"
#: The six labels every TaskAction gets at creation; nothing inherited ever overrides them.
IDENTITY_LABELS = (LABEL_PROJECT, LABEL_DOMAIN, LABEL_RUN, LABEL_ACTION, LABEL_ACTION_TYPE, LABEL_IS_ROOT)

#: Set by the operator once the action's terminal status is committed to the database.
RECORDED_LABEL = "flyte.org/terminal-status-recorded"
#: Labels written once an action is terminal (executor's ``ensureTerminalLabels``, recorder's label).
TERMINAL_LABELS = frozenset({RECORDED_LABEL, "flyte.org/termination-status", "flyte.org/completed-time"})

#: Our finalizer: holds a TaskAction until its end is recorded in the database.
RECORD_GUARD_FINALIZER = "flyte.org/record-guard"
#: Annotation a root TaskAction may carry to say where its run came from (e.g. ``RUN_SOURCE_CLI``).
RUN_SOURCE_ANNOTATION = "flyte.org/run-source"

#: What the operator watches: TaskActions whose end is not recorded yet.
UNRECORDED_SELECTOR = f"{RECORDED_LABEL}!=true"
#: TaskActions whose end is recorded (out of the watch).
RECORDED_SELECTOR = f"{RECORDED_LABEL}=true"


def run_selector(run: RunId) -> str:
    """The label selector of every TaskAction of one run (run names are unique per project/domain)."""
    return f"{LABEL_PROJECT}={run.project},{LABEL_DOMAIN}={run.domain},{LABEL_RUN}={run.name}"


def action_selector(action_id: ActionId) -> str:
    """The label selector of one action's TaskAction."""
    return f"{run_selector(action_id.run)},{LABEL_ACTION}={action_id.name}"


def owner_reference(parent_name: str, parent_uid: str) -> dict[str, Any]:
    """Upstream's ownerReference (``setParentOwnership``): blockOwnerDeletion true, no ``controller``."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": parent_name,
        "uid": parent_uid,
        "blockOwnerDeletion": True,
    }


def is_recorded(body: Mapping[str, Any]) -> bool:
    """Labelled terminal-status-recorded: invisible to the operator's watch and to the client's."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    return labels.get(RECORDED_LABEL) == "true"
