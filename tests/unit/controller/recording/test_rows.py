"""The ``actions`` row of a TaskAction holds what upstream's RecordAction stores for the request its
actions informer builds (``actions/k8s/client.go: notifyRunService``,
``runs/service/internal_run_service.go: recordSingleAction``)."""

from __future__ import annotations

import base64

from flyteidl2.core import identifier_pb2, literals_pb2, tasks_pb2
from flyteidl2.workflow import run_definition_pb2, run_info_pb2

from taskaction_operator.controller.recording.rows import action_row, signalled_run_info
from taskaction_operator.crd.observe import observe
from tests.factories import taskaction_body


def _template(name: str, project: str = "tpl-project", domain: str = "tpl-domain") -> str:
    tpl = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(project=project, domain=domain, name=name, version="v1"), type="python"
    )
    return base64.b64encode(tpl.SerializeToString()).decode()


def test_a_task_row_is_upstreams() -> None:
    spec = {"taskType": "python", "taskTemplate": _template("pkg.module.train"), "inputUri": "s3://b/in"}
    row = action_row(observe(taskaction_body(spec=spec, uid="u1")))
    # The task's project and domain are the CR's (TaskIdentifier{Project: spec.project, …}).
    assert (row.task_project, row.task_domain) == ("p", "d")
    assert (row.task_name, row.task_version, row.function_name) == (
        "pkg.module.train",
        "v1",
        "pkg.module.train",
    )
    # No spec.shortName: the full task name (recordSingleAction: TaskShortName = taskID.Name).
    assert row.task_short_name == "pkg.module.train"
    assert row.get_detailed_info().inputs_uri == "s3://b/in"


def test_a_short_name_in_the_spec_wins() -> None:
    spec = {"taskType": "python", "taskTemplate": _template("pkg.train"), "shortName": "train"}
    assert action_row(observe(taskaction_body(spec=spec, uid="u1"))).task_short_name == "train"


def test_a_condition_row_carries_the_condition_in_its_run_info() -> None:
    cond = run_definition_pb2.ConditionAction(name="approve")
    spec = {
        "actionType": "condition",
        "conditionSpec": base64.b64encode(cond.SerializeToString()).decode(),
        "inputUri": "s3://b/in",
    }
    row = action_row(observe(taskaction_body(spec=spec, uid="u1")))
    info = row.get_detailed_info()
    assert (info.inputs_uri, info.condition.name) == ("s3://b/in", "approve")
    assert (row.task_name, row.function_name) == ("approve", "approve")


def _signalled(phase_reason: str, *, action_type: str = "condition") -> dict[str, object]:
    cond = run_definition_pb2.ConditionAction(name="approve")
    value = literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(integer=7)))
    spec = {
        "actionType": action_type,
        "conditionSpec": base64.b64encode(cond.SerializeToString()).decode(),
        "inputUri": "s3://b/in",
    }
    status = {
        "conditions": [
            {
                "type": "Succeeded",
                "status": "True",
                "reason": phase_reason,
                "lastTransitionTime": "2026-11-23T10:00:00Z",
            }
        ]
        if phase_reason
        else [],
        "signalValue": base64.b64encode(value.SerializeToString()).decode(),
        "signalledBy": "alice",
    }
    return taskaction_body(spec=spec, status=status, uid="u1")


def test_a_signalled_condition_that_succeeded_keeps_its_value_and_principal_in_its_run_info() -> None:
    blob = signalled_run_info(observe(_signalled("Signaled")))
    assert blob is not None
    info = run_info_pb2.RunInfo.FromString(blob)
    assert info.output.scalar.primitive.integer == 7
    assert info.principal.user.id.subject == "alice"
    assert (info.inputs_uri, info.condition.name) == ("s3://b/in", "approve")  # the row's RunInfo, kept


def test_no_run_info_change_before_the_end_or_for_a_task() -> None:
    assert signalled_run_info(observe(_signalled(""))) is None
    assert signalled_run_info(observe(_signalled("Completed", action_type="task"))) is None
    body = _signalled("Signaled")
    body["status"]["signalValue"] = base64.b64encode(b"\xff\xff").decode()  # type: ignore[index]
    assert signalled_run_info(observe(body)) is None  # no Literal: nothing invented
