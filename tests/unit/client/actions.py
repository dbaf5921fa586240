"""flyteidl2 ``Action`` messages and parent TaskAction bodies for the unit tests of the client's
pure parts (validation and building)."""

from __future__ import annotations

from typing import Any

from flyteidl2.actions import actions_service_pb2
from flyteidl2.common import identifier_pb2
from flyteidl2.core import tasks_pb2, types_pb2
from flyteidl2.task import run_pb2, task_definition_pb2
from flyteidl2.workflow import run_definition_pb2
from google.protobuf import duration_pb2, wrappers_pb2


def task(
    name: str = "a0",
    parent: str | None = None,
    *,
    run: str = "rdemo1",
    project: str = "flytesnacks",
    domain: str = "development",
    task_type: str = "python",
    short_name: str = "say_hello",
    cache_key: str = "",
    group: str = "",
    args: tuple[str, ...] = (),
) -> actions_service_pb2.Action:
    template = tasks_pb2.TaskTemplate(
        type=task_type, container=tasks_pb2.Container(image="img", args=list(args))
    )
    action = actions_service_pb2.Action(
        action_id=identifier_pb2.ActionIdentifier(
            run=identifier_pb2.RunIdentifier(project=project, domain=domain, name=run), name=name
        ),
        input_uri=f"s3://bucket/{project}/{domain}/{run}/inputs",
        run_output_base=f"s3://bucket/{project}/{domain}/{run}/",
        group=group,
        task=run_definition_pb2.TaskAction(
            id=task_definition_pb2.TaskIdentifier(
                project=project, domain=domain, name="mod.fn", version="v1"
            ),
            spec=task_definition_pb2.TaskSpec(task_template=template, short_name=short_name),
        ),
    )
    if cache_key:
        action.task.cache_key.CopyFrom(wrappers_pb2.StringValue(value=cache_key))
    if parent is not None:
        action.parent_action_name = parent
    return action


def condition(
    name: str, parent: str | None, simple: int = types_pb2.SimpleType.BOOLEAN
) -> actions_service_pb2.Action:
    action = task(name, parent)
    action.condition.CopyFrom(
        run_definition_pb2.ConditionAction(
            name="approve", type=types_pb2.LiteralType(simple=simple), prompt="ok?",
            timeout=duration_pb2.Duration(seconds=3600),
        )
    )  # fmt: skip
    return action


def run_spec() -> run_pb2.RunSpec:
    spec = run_pb2.RunSpec(
        labels=run_pb2.Labels(values={"team": "ml", "flyte.org/run": "must-not-win"}),
        annotations=run_pb2.Annotations(values={"owner": "sdk"}),
        envs=run_pb2.Envs(values=[]),
        interruptible=wrappers_pb2.BoolValue(value=True),
    )
    kv = spec.envs.values.add()
    kv.key, kv.value = "LOG_LEVEL", "20"
    return spec


def parent_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": "rdemo1-a0",
            "uid": "1111-2222",
            "labels": {
                "flyte.org/project": "flytesnacks",
                "flyte.org/domain": "development",
                "flyte.org/run": "rdemo1",
                "flyte.org/action": "a0",
                "flyte.org/action-type": "task",
                "flyte.org/is-root": "true",
                "team": "ml",
                "flyte.org/terminal-status-recorded": "true",
                "flyte.org/termination-status": "terminated",
                "flyte.org/completed-time": "2026-11-23.12-00",
            },
            "annotations": {
                "owner": "sdk",
                "flyte.org/run-source": "RUN_SOURCE_CLI",
                "kopf.zalando.org/last-handled-configuration": "{}",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {"envVars": {"LOG_LEVEL": "20"}, "interruptible": True},
    }
    body["spec"].update(overrides)
    return body
