"""The benchmark's workload: run trees of depth 3 and the TaskAction bodies the executor side creates."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

from flyteidl2.core import identifier_pb2, tasks_pb2

from taskaction_operator.model import ActionId, ActionPhase, cr_name

DOMAIN = "development"
#: executor plugin phases of one action's life, and the ActionPhase each one is recorded as
SUCCESS_PATH = ("Queued", "Initializing", "Executing", "Completed")
FAILURE_PATH = ("Queued", "Initializing", "Executing", "PermanentFailure")
RECORDED_AS = {
    "Queued": int(ActionPhase.QUEUED),
    "Initializing": int(ActionPhase.INITIALIZING),
    "Executing": int(ActionPhase.RUNNING),
    "Completed": int(ActionPhase.SUCCEEDED),
    "PermanentFailure": int(ActionPhase.FAILED),
}
TERMINAL = tuple(int(p) for p in (5, 6, 7, 8, 10))


@dataclass
class Node:
    """One action of a run tree."""

    run: str
    name: str
    parent: str | None
    index: int  # position in the whole workload (decides FAILED: every tenth)
    children: list[str] = field(default_factory=list)

    @property
    def cr(self) -> str:
        return f"{self.run}-{self.name}"

    @property
    def path(self) -> tuple[str, ...]:
        return FAILURE_PATH if self.index % 10 == 9 else SUCCESS_PATH


def run_tree(run: str, size: int, start_index: int = 0) -> list[Node]:
    """``a0`` → ~sqrt(size) children → the rest as grandchildren (round robin), parents first."""
    if size < 1:
        raise ValueError("a run has at least its root action")
    root = Node(run, "a0", None, start_index)
    nodes = [root]
    n_children = min(size - 1, max(1, round(math.sqrt(size - 1)))) if size > 1 else 0
    children = [Node(run, f"c{i}", "a0", 0) for i in range(n_children)]
    grand: list[Node] = []
    for j in range(size - 1 - n_children):
        parent = children[j % n_children]
        grand.append(Node(run, f"{parent.name}-g{j // n_children}", parent.name, 0))
    for node in [*children, *grand]:
        node.index = start_index + len(nodes)
        nodes.append(node)
    by_name = {n.name: n for n in nodes}
    for node in nodes[1:]:
        assert node.parent is not None
        by_name[node.parent].children.append(node.name)
    return nodes


def workload(total: int, run_size: int, prefix: str = "r") -> list[list[Node]]:
    """``total`` actions as runs of ``run_size`` actions (the last run may be smaller)."""
    runs: list[list[Node]] = []
    index = 0
    while index < total:
        size = min(run_size, total - index)
        runs.append(run_tree(f"{prefix}{len(runs):04d}", size, index))
        index += size
    return runs


_TEMPLATE: str | None = None


def _template_b64() -> str:
    global _TEMPLATE
    if _TEMPLATE is None:
        tpl = tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(
                resource_type=identifier_pb2.ResourceType.TASK,
                project="bench",
                domain=DOMAIN,
                name="bench.workflows.step",
                version="v1",
            ),
            type="python",
            container=tasks_pb2.Container(
                image="ghcr.io/flyteorg/flyte:bench", args=["pyflyte-execute", "--inputs", "{{.input}}"]
            ),
        )
        _TEMPLATE = base64.b64encode(tpl.SerializeToString()).decode()
    return _TEMPLATE


def body(project: str, node: Node) -> dict[str, Any]:
    """The TaskAction as Flyte's actions service creates it: flyte.org labels, a task template, no
    ownerReference (the operator sets it)."""
    labels = {
        "flyte.org/project": project,
        "flyte.org/domain": DOMAIN,
        "flyte.org/run": node.run,
        "flyte.org/action": node.name,
        "flyte.org/action-type": "task",
        "flyte.org/is-root": "true" if node.parent is None else "false",
    }
    spec: dict[str, Any] = {
        "runName": node.run,
        "project": project,
        "domain": DOMAIN,
        "actionName": node.name,
        "taskType": "python",
        "shortName": "step",
        "taskTemplate": _template_b64(),
        "inputUri": f"s3://bench/{project}/{node.run}/{node.name}/inputs.pb",
        "runOutputBase": f"s3://bench/{project}/{node.run}",
    }
    if node.parent is not None:
        spec["parentActionName"] = node.parent
    name = cr_name(ActionId.of(project, DOMAIN, node.run, node.name))
    assert name == node.cr
    return {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }
