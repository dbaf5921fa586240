"""Run files: the whole file is validated before anything is made, with one readable line per problem;
a valid file becomes flyteidl2 actions, root first and every parent before its children."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from flyteidl2.core import types_pb2

from taskaction_operator.client.run_file import (
    RunFileError,
    load_run_file,
    parse_run_file,
    render_taskactions,
)
from taskaction_operator.client.runs import root_row
from taskaction_operator.model import RunId

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def run(*actions: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"project": "p", "domain": "d", "run": "r1", **top, "actions": list(actions)}


A0 = {"name": "a0", "taskType": "python"}


def names(data: dict[str, Any]) -> list[str]:
    return [a.action_id.name for a in parse_run_file(data).actions]


def error(data: Any, **kw: Any) -> str:
    with pytest.raises(RunFileError) as info:
        parse_run_file(data, source="f.yaml", **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_actions_come_root_first_then_parents_before_children() -> None:
    data = run(
        {"name": "a1-1", "parent": "a1", "taskType": "python"},
        {"name": "a2", "parent": "a0", "taskType": "python"},
        {"name": "a1", "parent": "a0", "taskType": "python"},
        A0,
    )
    assert names(data) == ["a0", "a2", "a1", "a1-1"]


def test_valid_file_becomes_actions_with_uris_template_and_condition() -> None:
    rf = parse_run_file(
        run(
            {**A0, "task": "wf.main", "version": "v7", "cacheKey": "ck", "group": "g"},
            {
                "name": "ok",
                "parent": "a0",
                "condition": {"type": "bool", "prompt": "Ship?", "timeout": "1h30m"},
            },
            runSpec={
                "labels": {"team": "ml"},
                "env": {"LOG": "1"},
                "interruptible": True,
                "runStartTime": "2026-08-21T16:50:00Z",
            },
        )
    )
    assert rf.run_id == RunId("p", "d", "r1")
    root, cond = rf.actions
    assert root.input_uri == "s3://flyte-data/p/d/r1/inputs"
    assert root.run_output_base == "s3://flyte-data/p/d/r1/"
    assert root.task.id.name == "wf.main" and root.task.id.version == "v7"
    assert root.task.spec.short_name == "main" and root.task.cache_key.value == "ck"
    assert "{{.runStartTime}}" in list(root.task.spec.task_template.container.args)
    assert cond.condition.type.simple == types_pb2.SimpleType.BOOLEAN
    assert cond.condition.timeout.seconds == 5400
    assert rf.run_spec.labels.values["team"] == "ml" and rf.run_spec.interruptible.value is True
    assert rf.run_spec.run_start_time.seconds > 0


def test_defaults_for_project_and_domain_come_from_the_caller() -> None:
    data = {"run": "r1", "actions": [A0]}
    assert parse_run_file(data, project="p", domain="d").run_id == RunId("p", "d", "r1")
    assert "no project" in error(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            run(A0, {"name": "a1", "parent": "a9", "taskType": "x"}),
            "actions[1] (a1): parent 'a9' is not an action",
        ),
        (
            run(
                A0,
                {"name": "a1", "parent": "a2", "taskType": "x"},
                {"name": "a2", "parent": "a1", "taskType": "x"},
            ),
            "parent cycle: a1 -> a2 -> a1",
        ),
        (run(A0, {"name": "a1", "parent": "a1", "taskType": "x"}), "cannot be its own parent"),
        (
            run(A0, {"name": "a0", "taskType": "x"}),
            "actions[1] (a0): duplicate action name (also actions[0])",
        ),
        (run({"name": "a1", "parent": "a0", "taskType": "x"}), "parent 'a0' is not an action"),
        (run({"name": "x0", "taskType": "x"}), "the root action must be named 'a0'"),
        (run(A0, {"name": "b0", "taskType": "x"}), "2 actions have no parent (a0, b0)"),
        (run(A0, {"name": "A_1", "parent": "a0", "taskType": "x"}), "action name 'A_1' cannot name a"),
        (run(A0, {"name": "a" * 31, "parent": "a0", "taskType": "x"}), "31 characters; at most 30"),
        (run(A0, run="Bad_Run"), "run name 'Bad_Run' is not a DNS-1035 label"),
        (run(A0, run="r" * 31), "at most 30"),
        (run(A0, project="p" * 64), "at most 63"),
        (run({"name": "a0", "taskType": "t" * 64}), "taskType is 64 characters; at most 63"),
        (run({**A0, "cacheKey": "k" * 257}), "cacheKey is 257 characters"),
        (run({**A0, "group": "g" * 257}), "group is 257 characters"),
        (run({"name": "a0"}), "taskType is required"),
        (run({"name": "a0", "condition": {"type": "boolean"}}), "the root must be a task"),
        (run(A0, {"name": "c", "parent": "a0", "condition": {"type": "struct"}}), "must be boolean, integer"),
        (
            run(A0, {"name": "c", "parent": "a0", "condition": {"type": "int", "timeout": "1y"}}),
            "not a duration",
        ),
        (run(A0, {"name": "c", "parent": "a0", "taskType": "x", "condition": {"type": "int"}}), "not both"),
        (run({**A0, "tasktype": "x"}), "unknown key 'tasktype'"),
        (run(A0, extra=1), "unknown key 'extra'"),
        (run(), "expected a non-empty list of actions"),
        (run(A0, runSpec={"labels": {"team": "bad value!"}}), "not a valid label value"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_invalid_files_are_refused_with_one_line(data: Any, expected: str) -> None:
    message = error(data)
    assert message.startswith("f.yaml: ")
    assert expected in message


def test_unreadable_and_malformed_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(RunFileError, match="cannot read"):
        load_run_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: r1\nactions: [\n")
    with pytest.raises(RunFileError, match=r"bad.yaml: line \d+"):
        load_run_file(bad)


def test_root_row_is_what_create_run_writes() -> None:
    rf = parse_run_file(run({**A0, "task": "wf.main", "cacheKey": "ck"}))
    row = root_row(rf.root, rf.run_spec)
    assert (row.name, row.parent_action_name, int(row.phase), int(row.action_type)) == ("a0", None, 1, 1)
    assert row.attempts == 1 and row.action_details == b"{}" and row.run_source == "RUN_SOURCE_CLI"
    assert (row.task_name, row.function_name, row.task_type, row.task_short_name) == (
        "wf.main",
        "wf.main",
        "python",
        "main",
    )
    spec = row.get_action_spec()
    assert spec is not None and spec.input_uri == "s3://flyte-data/p/d/r1/inputs/inputs.pb"
    assert not spec.task.HasField("cache_key")
    info = row.get_detailed_info()
    # upstream persistRunModel: RunInfo{InputsUri: inputPrefix + "/inputs.pb"}
    assert info is not None and info.inputs_uri == "s3://flyte-data/p/d/r1/inputs/inputs.pb"
    assert row.get_run_spec() is not None


@pytest.mark.parametrize("name", ["run-three-levels.enqueue.yaml", "failing-branch.enqueue.yaml"])
def test_example_run_files_are_valid(name: str) -> None:
    rf = load_run_file(EXAMPLES / name)
    assert rf.root.action_id.name == "a0"


def test_kubectl_example_is_the_enqueue_example_rendered() -> None:
    """examples/run-three-levels.yaml is ``enqueue --dry-run`` of the enqueue example (no owner refs)."""
    rendered = render_taskactions(load_run_file(EXAMPLES / "run-three-levels.enqueue.yaml"))
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "run-three-levels.yaml").read_text()) if d]
    assert docs == rendered
    assert all("ownerReferences" not in d["metadata"] for d in docs)
    children = [d for d in docs if d["spec"].get("parentActionName")]
    assert children and all(d["spec"]["envVars"] == docs[0]["spec"]["envVars"] for d in children)
    assert all(d["metadata"]["labels"]["team"] == "ml-platform" for d in docs)
