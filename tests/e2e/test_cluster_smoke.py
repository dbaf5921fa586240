"""The cluster is real: the CRD validates on the server, and the garbage collector cascades."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskaction_operator.k8s import KubeOps
from tests.conftest import ROOT
from tests.e2e.conftest import Kubectl

pytestmark = pytest.mark.cluster


def _child(uid: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "flyte.org/v1",
            "kind": "TaskAction",
            "metadata": {
                "name": "rdemo1-a1",
                "ownerReferences": [
                    {
                        "apiVersion": "flyte.org/v1",
                        "kind": "TaskAction",
                        "name": "rdemo1-a0",
                        "uid": uid,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "runName": "rdemo1",
                "project": "flytesnacks",
                "domain": "development",
                "actionName": "a1",
                "parentActionName": "a0",
            },
        }
    )


def test_flyte_written_taskaction_is_accepted_and_deleting_root_collects_child(
    kubectl: Kubectl, namespace: str
) -> None:
    example = Path(ROOT / "examples" / "flyte-taskaction.yaml").read_text()
    kubectl.run("apply", "-n", namespace, "-f", "-", input=example)
    root = kubectl.json("get", "taskaction", "rdemo1-a0", "-n", namespace)
    assert root["spec"] == yaml.safe_load(example)["spec"], "the server pruned or changed Flyte's fields"

    kubectl.run("apply", "-n", namespace, "-f", "-", input=_child(root["metadata"]["uid"]))
    child = kubectl.json("get", "taskaction", "rdemo1-a1", "-n", namespace)
    assert child["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True

    kubectl.run("delete", "taskaction", "rdemo1-a0", "-n", namespace)
    deadline = time.monotonic() + 30
    while kubectl.try_run("get", "taskaction", "rdemo1-a1", "-n", namespace).returncode == 0:
        assert time.monotonic() < deadline, "the garbage collector did not delete the child within 30 s"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"runName": "r" * 31, "project": "p", "domain": "d", "actionName": "a0"},
            "spec.runName: Too long: may not be more than 30 bytes",
        ),
        ({"runName": "r1", "project": "p", "domain": "d"}, "spec.actionName: Required value"),
        (
            {"runName": "r1", "project": "p", "domain": "d", "actionName": "a1", "actionType": "trace"},
            'spec.actionType: Unsupported value: "trace"',
        ),
    ],
)
def test_crd_rejects_invalid_taskaction_with_server_message(
    kubectl: Kubectl, namespace: str, spec: dict[str, str], message: str
) -> None:
    body = yaml.safe_dump(
        {"apiVersion": "flyte.org/v1", "kind": "TaskAction", "metadata": {"name": "bad"}, "spec": spec}
    )
    proc = kubectl.try_run("apply", "-n", namespace, "-f", "-", input=body)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert kubectl.try_run("get", "taskaction", "bad", "-n", namespace).returncode != 0


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"project": "other"}, "spec.project is immutable"),
        ({"domain": "other"}, "spec.domain is immutable"),
        ({"runName": "r2"}, "spec.runName is immutable"),
        ({"actionName": "a9"}, "spec.actionName is immutable"),
        ({"parentActionName": "a2"}, "spec.parentActionName is immutable"),
        ({"parentActionName": None}, "spec.parentActionName is immutable"),
    ],
)
def test_crd_refuses_a_changed_identity(
    kubectl: Kubectl, namespace: str, patch: dict[str, Any], message: str
) -> None:
    body = {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {"name": "r1-a1"},
        "spec": {
            "runName": "r1",
            "project": "p",
            "domain": "d",
            "actionName": "a1",
            "parentActionName": "a0",
        },
    }
    kubectl.run("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(body))
    proc = kubectl.try_run(
        "patch", "taskaction", "r1-a1", "-n", namespace, "--type", "merge", "-p", json.dumps({"spec": patch})
    )
    assert proc.returncode != 0
    assert message in proc.stderr
    assert kubectl.json("get", "taskaction", "r1-a1", "-n", namespace)["spec"] == body["spec"]
    # Other spec fields stay editable.
    kubectl.run(
        "patch", "taskaction", "r1-a1", "-n", namespace, "--type", "merge", "-p", '{"spec":{"taskType":"x"}}'
    )


async def test_delete_by_uid_leaves_an_object_re_created_under_the_same_name(
    kube: KubeOps, namespace: str
) -> None:
    body = {
        "apiVersion": "flyte.org/v1",
        "kind": "TaskAction",
        "metadata": {"name": "r1-a0"},
        "spec": {"runName": "r1", "project": "p", "domain": "d", "actionName": "a0"},
    }
    old = await kube.create_taskaction(namespace, body)
    assert await kube.delete_taskaction(namespace, "r1-a0")
    deadline = time.monotonic() + 30
    while await kube.get_taskaction(namespace, "r1-a0") is not None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    new = await kube.create_taskaction(namespace, body)
    assert not await kube.delete_taskaction(namespace, "r1-a0", uid=old["metadata"]["uid"])
    assert (await kube.get_taskaction(namespace, "r1-a0") or {})["metadata"]["uid"] == new["metadata"]["uid"]
    assert await kube.delete_taskaction(namespace, "r1-a0", uid=new["metadata"]["uid"])
