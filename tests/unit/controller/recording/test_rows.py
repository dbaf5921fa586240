"""The ``actions`` row of a TaskAction holds what upstream's RecordAction stores for the request its
actions informer builds (``actions/k8s/client.go: notifyRunService``,
``runs/service/internal_run_service.go: recordSingleAction``)."""

from __future__ import annotations

import base64

from flyteidl2.core import identifier_pb2, tasks_pb2
from flyteidl2.workflow import run_definition_pb2

from taskaction_operator.controller.recording.rows import action_row
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
