"""The pure TaskAction builder: naming, labels, run-spec application, inheritance, owner reference
and the output URI — everything Enqueue decides before it talks to the API server (the limits it
checks first are in test_validate)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from flyteidl2.core import tasks_pb2
from flyteidl2.task import run_pb2
from flyteidl2.workflow import run_definition_pb2
from google.protobuf import timestamp_pb2

from taskaction_operator.client.taskaction_cr import (
    _fnv32a,
    build_action_spec,
    build_taskaction,
    output_uri,
    shard_prefix,
)
from taskaction_operator.client.validate import InvalidActionError
from taskaction_operator.crd.names import IDENTITY_LABELS, RECORD_GUARD_FINALIZER, TERMINAL_LABELS
from tests.unit.client.actions import condition, parent_body, run_spec, task


# --- naming and labels ---------------------------------------------------------------------------
def test_root_is_named_run_a0_with_the_six_labels_and_no_owner() -> None:
    body = build_taskaction(task(), run_spec(), namespace="flyte")
    meta = body["metadata"]
    assert meta["name"] == "rdemo1-a0"
    assert meta["namespace"] == "flyte"
    assert {k: meta["labels"][k] for k in IDENTITY_LABELS} == {
        "flyte.org/project": "flytesnacks",
        "flyte.org/domain": "development",
        "flyte.org/run": "rdemo1",
        "flyte.org/action": "a0",
        "flyte.org/action-type": "task",
        "flyte.org/is-root": "true",
    }
    assert "ownerReferences" not in meta
    assert "parentActionName" not in body["spec"]


def test_child_is_named_run_action_and_owned_by_its_parent_without_controller_flag() -> None:
    body = build_taskaction(task("a1", "a0"), None, namespace="flyte", parent=parent_body())
    assert body["metadata"]["name"] == "rdemo1-a1"
    assert body["metadata"]["labels"]["flyte.org/is-root"] == "false"
    assert body["spec"]["parentActionName"] == "a0"
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": "flyte.org/v1", "kind": "TaskAction", "name": "rdemo1-a0", "uid": "1111-2222",
         "blockOwnerDeletion": True}
    ]  # fmt: skip


def test_with_the_record_guard_it_is_created_holding_the_guard_and_nothing_is_left_to_patch() -> None:
    """What the operator would patch on first sight (the guard, the ownerReference) is there at
    creation: its plan for the object is empty."""
    from taskaction_operator.controller.recording.patch_plan import plan_patch
    from taskaction_operator.crd.observe import observe

    child = build_taskaction(
        task("a1", "a0"), None, namespace="flyte", parent=parent_body(), record_guard=True
    )
    assert child["metadata"]["finalizers"] == [RECORD_GUARD_FINALIZER]
    root = build_taskaction(task(), run_spec(), namespace="flyte", record_guard=True)
    assert root["metadata"]["finalizers"] == [RECORD_GUARD_FINALIZER]
    assert "finalizers" not in build_taskaction(task(), run_spec(), namespace="flyte")["metadata"]
    stored = {
        **child,
        "metadata": {**child["metadata"], "uid": "u-1", "creationTimestamp": "2026-11-23T10:00:00Z"},
    }
    assert not plan_patch(observe(stored), guard=True, committed=True, parent_uid="1111-2222")


def test_the_clients_guard_setting_is_the_operators_variable() -> None:
    from taskaction_operator.client.actions_client import record_guard_setting

    assert record_guard_setting({}) is True
    assert record_guard_setting({"TASKACTION_RECORD_GUARD": "false"}) is False
    assert record_guard_setting({"TASKACTION_RECORD_GUARD": "on"}) is True
    assert record_guard_setting({"TASKACTION_RECORD_GUARD": "maybe"}) is True


def test_child_without_its_parent_object_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="needs its parent"):
        build_taskaction(task("a1", "a0"), None, namespace="flyte")


# --- run spec and inheritance --------------------------------------------------------------------
def test_root_applies_run_spec_but_never_overrides_identity_labels() -> None:
    body = build_taskaction(task(), run_spec(), namespace="flyte")
    assert body["metadata"]["labels"]["flyte.org/run"] == "rdemo1"
    assert body["metadata"]["labels"]["team"] == "ml"
    assert body["metadata"]["annotations"] == {"owner": "sdk"}
    assert body["spec"]["envVars"] == {"LOG_LEVEL": "20"}
    assert body["spec"]["interruptible"] is True


def test_root_without_run_spec_has_no_env_or_interruptible() -> None:
    spec = build_taskaction(task(), None, namespace="flyte")["spec"]
    assert "envVars" not in spec and "interruptible" not in spec


def test_task_child_inherits_labels_annotations_env_and_interruptible() -> None:
    body = build_taskaction(task("a1", "a0"), run_spec(), namespace="flyte", parent=parent_body())
    labels, annotations = body["metadata"]["labels"], body["metadata"]["annotations"]
    assert labels["team"] == "ml"
    assert labels["flyte.org/action"] == "a1"  # own identity labels win over the parent's
    assert labels["flyte.org/is-root"] == "false"
    assert annotations == {"owner": "sdk"}
    assert body["spec"]["envVars"] == {"LOG_LEVEL": "20"}
    assert body["spec"]["interruptible"] is True


def test_child_never_inherits_terminal_labels_or_tool_annotations() -> None:
    body = build_taskaction(task("a1", "a0"), None, namespace="flyte", parent=parent_body())
    assert not TERMINAL_LABELS & set(body["metadata"]["labels"])
    annotations = body["metadata"]["annotations"]
    assert "flyte.org/run-source" not in annotations
    assert not [k for k in annotations if k.startswith(("kopf.zalando.org/", "kubectl.kubernetes.io/"))]


def test_child_of_parent_without_interruptible_has_none() -> None:
    parent = parent_body()
    del parent["spec"]["interruptible"]
    del parent["spec"]["envVars"]
    spec = build_taskaction(task("a1", "a0"), run_spec(), namespace="flyte", parent=parent)["spec"]
    assert "interruptible" not in spec and "envVars" not in spec


def test_condition_child_inherits_nothing_and_carries_its_spec() -> None:
    body = build_taskaction(condition("approve", "a0"), None, namespace="flyte", parent=parent_body())
    spec = body["spec"]
    assert body["metadata"]["labels"]["flyte.org/action-type"] == "condition"
    assert "team" not in body["metadata"]["labels"]
    assert spec["actionType"] == "condition"
    assert "taskTemplate" not in spec and "cacheKey" not in spec and "envVars" not in spec
    decoded = run_definition_pb2.ConditionAction.FromString(base64.b64decode(spec["conditionSpec"]))
    assert decoded.prompt == "ok?"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "1111-2222"


# --- spec bytes ----------------------------------------------------------------------------------
def test_task_spec_fields_in_upstream_order_and_template_is_base64_proto() -> None:
    body = build_taskaction(task(cache_key="k" * 10, group="g"), None, namespace="flyte")
    spec = body["spec"]
    assert list(spec) == [
        "runName", "project", "domain", "actionName", "inputUri", "runOutputBase", "cacheKey",
        "taskType", "shortName", "taskTemplate", "group",
    ]  # fmt: skip
    template = tasks_pb2.TaskTemplate.FromString(base64.b64decode(spec["taskTemplate"]))
    assert template.type == "python" == spec["taskType"]
    assert spec["shortName"] == "say_hello"


def test_run_start_time_is_substituted_on_a_copy() -> None:
    action = task(args=("--run-start-time", "{{.runStartTime}}"))
    rs = run_pb2.RunSpec(
        run_start_time=timestamp_pb2.Timestamp(
            seconds=int(dt.datetime(2026, 8, 21, 16, 50, tzinfo=dt.UTC).timestamp())
        )
    )
    spec = build_taskaction(action, rs, namespace="flyte")["spec"]
    template = tasks_pb2.TaskTemplate.FromString(base64.b64decode(spec["taskTemplate"]))
    assert list(template.container.args) == ["--run-start-time", "2026-08-21T16:50:00Z"]
    assert list(action.task.spec.task_template.container.args)[1] == "{{.runStartTime}}"


def test_action_spec_carries_identity_parent_uris_run_spec_and_task() -> None:
    spec = build_action_spec(task("a1", "a0", group="g"), run_spec())
    assert spec.action_id.name == "a1" and spec.parent_action_name == "a0"
    assert spec.input_uri.endswith("/inputs") and spec.group == "g"
    assert spec.run_spec.labels.values["team"] == "ml"
    assert spec.WhichOneof("spec") == "task"


# --- validation before building -------------------------------------------------------------
def test_invalid_run_labels_are_refused_before_building() -> None:
    bad = run_pb2.RunSpec(labels=run_pb2.Labels(values={"team": "not ok!"}))
    with pytest.raises(InvalidActionError, match="run label team='not ok!'"):
        build_taskaction(task(), bad, namespace="flyte")


# --- output URI ----------------------------------------------------------------------------------
def test_output_uri_inserts_the_shard_after_the_bucket_and_uses_attempt_1_by_default() -> None:
    body = {"metadata": {"namespace": "flyte", "name": "rdemo1-a1"},
            "spec": {"runOutputBase": "s3://bucket/p/d/rdemo1/", "actionName": "a1"}}  # fmt: skip
    shard = shard_prefix("flyte", "rdemo1-a1")
    assert len(shard) == 2
    assert output_uri(body) == f"s3://bucket/{shard}/p/d/rdemo1/a1/1"
    body["status"] = {"attempts": 3}
    assert output_uri(body).endswith("/a1/3")
    assert output_uri({"spec": {}}) == ""


def test_shard_prefix_is_fnv32a_mod_1296() -> None:
    # Published FNV-1a 32-bit test vectors.
    assert _fnv32a(b"a") == 0xE40C292C
    assert _fnv32a(b"foobar") == 0xBF9CF968
    index = _fnv32a(b"ns/x") % 1296
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    assert shard_prefix("ns", "x") == alphabet[index // 36] + alphabet[index % 36]
