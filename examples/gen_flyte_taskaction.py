"""Print ``examples/flyte-taskaction.yaml``: a TaskAction as Flyte v2's own tooling writes it.

It mirrors what upstream's ``RunService.CreateRun`` → ``ActionsService.Enqueue`` → ``ActionsClient``
(``actions/k8s/client.go``, ``newTaskActionCR`` / ``applyRunSpecToTaskAction`` / ``embedTaskTemplate``)
creates for the root action ``a0`` of run ``rdemo1``:

* name ``<run>-a0`` and the six ``flyte.org/*`` labels, no namespace (the caller applies it into its own);
* ``spec`` in the field order of upstream's ``TaskActionSpec`` (Go's JSON encoder emits struct order,
  map keys sorted); ``actionType`` is left out, as upstream only sets it for conditions;
* ``inputUri`` / ``runOutputBase`` built like ``buildInputPrefix`` / ``buildRunOutputBase``;
* ``taskTemplate`` = base64 of a real serialized ``flyteidl2.core.TaskTemplate`` (a flyte-sdk style
  ``python`` task, with ``{{.runStartTime}}`` already substituted as ``embedTaskTemplate`` does);
* ``cacheKey`` computed like upstream's ``generateCacheKeyForTask`` (base64 SHA-256 of
  inputs hash + task name + interface hash + discovery version);
* ``envVars`` / ``interruptible`` projected from the RunSpec.

One liberty: upstream's CreateRun sets no ``group`` on a root action; the example carries one so that
every spec field is exercised.

Usage: ``.venv/bin/python examples/gen_flyte_taskaction.py > examples/flyte-taskaction.yaml``
"""

from __future__ import annotations

import base64
import hashlib
import sys
from typing import Any

import yaml
from flyteidl2.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2
from flyteidl2.task import common_pb2

PROJECT = "flytesnacks"
DOMAIN = "development"
RUN = "rdemo1"
ACTION = "a0"  # RootActionName in runs/service/run_service.go
STORAGE_PREFIX = "s3://flyte-data"
RUN_START_TIME = "2026-08-21T16:50:00Z"  # RunSpec.run_start_time, RFC3339 UTC
TASK_NAME = "hello.say_hello"
TASK_VERSION = "v1-7f3c2a9e"
SDK_VERSION = "2.3.6"


def _str_var(description: str) -> interface_pb2.Variable:
    return interface_pb2.Variable(
        type=types_pb2.LiteralType(simple=types_pb2.SimpleType.STRING), description=description
    )


def container_args() -> list[str]:
    """flyte-sdk v2 style entrypoint args (``a0`` is the SDK's runtime entrypoint)."""
    options = [
        ("--inputs", "{{.input}}"),
        ("--outputs-path", "{{.outputPrefix}}"),
        ("--version", TASK_VERSION),
        ("--raw-data-path", "{{.rawOutputDataPrefix}}"),
        ("--checkpoint-path", "{{.checkpointOutputPrefix}}"),
        ("--prev-checkpoint", "{{.prevCheckpointPrefix}}"),
        ("--run-name", "{{.runName}}"),
        ("--name", "{{.actionName}}"),
        ("--run-start-time", RUN_START_TIME),  # was {{.runStartTime}}, substituted at Enqueue
        ("--resolver", "flyte._internal.resolvers.default.DefaultTaskResolver"),
    ]
    return ["a0", *(part for option in options for part in option), "mod", "hello", "instance", "say_hello"]


def task_template() -> tasks_pb2.TaskTemplate:
    """A flyte-sdk v2 style ``python`` task: ``say_hello(name: str) -> str`` run by the ``a0`` entrypoint."""
    res = tasks_pb2.Resources
    return tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(
            resource_type=identifier_pb2.ResourceType.TASK,
            project=PROJECT,
            domain=DOMAIN,
            name=TASK_NAME,
            version=TASK_VERSION,
        ),
        type="python",
        metadata=tasks_pb2.TaskMetadata(
            discoverable=True,
            discovery_version="1",
            runtime=tasks_pb2.RuntimeMetadata(
                type=tasks_pb2.RuntimeMetadata.RuntimeType.FLYTE_SDK, version=SDK_VERSION, flavor="python"
            ),
            retries=literals_pb2.RetryStrategy(retries=2),
        ),
        interface=interface_pb2.TypedInterface(
            inputs=interface_pb2.VariableMap(
                variables=[interface_pb2.VariableEntry(key="name", value=_str_var("who to greet"))]
            ),
            outputs=interface_pb2.VariableMap(
                variables=[interface_pb2.VariableEntry(key="o0", value=_str_var("the greeting"))]
            ),
        ),
        container=tasks_pb2.Container(
            image="ghcr.io/flyteorg/flyte:py3.12-v" + SDK_VERSION,
            args=container_args(),
            resources=res(
                requests=[
                    res.ResourceEntry(name=res.ResourceName.CPU, value="500m"),
                    res.ResourceEntry(name=res.ResourceName.MEMORY, value="512Mi"),
                ],
                limits=[
                    res.ResourceEntry(name=res.ResourceName.CPU, value="1"),
                    res.ResourceEntry(name=res.ResourceName.MEMORY, value="1Gi"),
                ],
            ),
        ),
    )


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def cache_key(template: tasks_pb2.TaskTemplate) -> str:
    """Upstream's ``generateCacheKeyForTask`` (runs/service/utils.go) for the inputs ``name="world"``."""
    inputs = common_pb2.Inputs(
        literals=[
            common_pb2.NamedLiteral(
                name="name",
                value=literals_pb2.Literal(
                    scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(string_value="world"))
                ),
            )
        ]
    )
    inputs_hash = _b64_sha256(inputs.SerializeToString(deterministic=True))
    interface_hash = _b64_sha256(template.interface.SerializeToString(deterministic=True))
    data = inputs_hash + template.id.name + interface_hash + template.metadata.discovery_version
    return _b64_sha256(data.encode())


def task_action() -> dict[str, Any]:
    template = task_template()
    return {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {
            "name": f"{RUN}-{ACTION}",  # buildTaskActionName
            "labels": {  # newTaskActionCR; Go's JSON encoder sorts map keys
                "flyte.org/action": ACTION,
                "flyte.org/action-type": "task",
                "flyte.org/domain": DOMAIN,
                "flyte.org/is-root": "true",
                "flyte.org/project": PROJECT,
                "flyte.org/run": RUN,
            },
        },
        "spec": {
            "runName": RUN,
            "project": PROJECT,
            "domain": DOMAIN,
            "actionName": ACTION,
            "inputUri": f"{STORAGE_PREFIX}/{PROJECT}/{DOMAIN}/{RUN}/inputs",
            "runOutputBase": f"{STORAGE_PREFIX}/{PROJECT}/{DOMAIN}/{RUN}/",
            "cacheKey": cache_key(template),
            "taskType": template.type,
            "shortName": "say_hello",
            "taskTemplate": base64.b64encode(template.SerializeToString(deterministic=True)).decode(),
            "envVars": {"LOG_LEVEL": "20", "REGION": "eu-west-1"},
            "interruptible": True,
            "group": "greetings",
        },
    }


HEADER = """\
# A TaskAction exactly as Flyte v2's actions service (Enqueue) writes it for the root action a0 of run
# rdemo1. Generated by examples/gen_flyte_taskaction.py; regenerate, do not edit by hand.
"""


def render() -> str:
    return HEADER + yaml.safe_dump(task_action(), sort_keys=False, default_flow_style=False, width=1 << 20)


if __name__ == "__main__":
    sys.stdout.write(render())
