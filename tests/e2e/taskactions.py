"""Helpers for e2e tests: TaskAction bodies as ``kubectl apply`` would send them, and a tree driver."""

from __future__ import annotations

from typing import Any

from taskaction_operator.model import ActionId, cr_name


def taskaction(
    project: str,
    run: str,
    action: str,
    parent: str | None = None,
    *,
    domain: str = "development",
    task_type: str = "python",
    **meta: Any,
) -> dict[str, Any]:
    """A TaskAction with the six flyte.org labels and no ownerReference (the operator sets it)."""
    labels = {
        "flyte.org/project": project,
        "flyte.org/domain": domain,
        "flyte.org/run": run,
        "flyte.org/action": action,
        "flyte.org/action-type": "task",
        "flyte.org/is-root": "true" if parent is None else "false",
    }
    spec: dict[str, Any] = {
        "runName": run,
        "project": project,
        "domain": domain,
        "actionName": action,
        "taskType": task_type,
        "inputUri": f"s3://bucket/{run}/{action}/inputs.pb",
        "runOutputBase": f"s3://bucket/{run}",
    }
    if parent is not None:
        spec["parentActionName"] = parent
    return {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {"name": cr_name(ActionId.of(project, domain, run, action)), "labels": labels, **meta},
        "spec": spec,
    }
