"""The command line as a subprocess against the real cluster and database (no operator running):
every output format parses, bad input exits 2 with one line and changes nothing, unknown things exit 1
"not found", and enqueue/abort do what they say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from taskaction_operator.k8s import KubeOps
from taskaction_operator.model import ActionPhase, RunId
from taskaction_operator.repo import ActionRepo
from tests.e2e.client.conftest import DOMAIN, Cli, assert_one_line_error, condition, task
from tests.e2e.operator import Db

pytestmark = pytest.mark.cluster
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def run_file(cli: Cli, run: str, *actions: dict[str, Any], name: str = "run.yaml") -> str:
    return cli.write(name, {"run": run, "actions": list(actions)})


async def nothing_created(kube: KubeOps, db: Db, namespace: str) -> None:
    assert await kube.list_taskactions(namespace) == []
    assert db.query("SELECT name FROM actions WHERE project = %s", namespace) == []


async def test_enqueue_then_every_read_command_in_every_format(
    cli: Cli, kube: KubeOps, db: Db, namespace: str
) -> None:
    path = run_file(cli, "rcli", task("a0"), task("a1", "a0"), task("a1-1", "a1"), condition("ok", "a1"))
    enq = cli("enqueue", "-f", path, "-o", "json")
    assert enq.code == 0, enq.stderr
    created = enq.json()
    assert [t["name"] for t in created["taskActions"]] == ["rcli-a0", "rcli-a1", "rcli-a1-1", "rcli-ok"]
    assert created["run"]["phase"] == "QUEUED" and created["run"]["runSource"] == "RUN_SOURCE_CLI"
    objs = {o["metadata"]["name"]: o for o in await kube.list_taskactions(namespace)}
    assert objs["rcli-a1-1"]["metadata"]["ownerReferences"][0]["uid"] == objs["rcli-a1"]["metadata"]["uid"]
    assert db.phases(namespace, "rcli") == {"a0": 1}  # children are recorded by the operator, not here

    for args in (["runs", "list"], ["runs", "get", "rcli"], ["runs", "tree", "rcli"],
                 ["actions", "get", "rcli", "a0"], ["events", "rcli", "a0"]):  # fmt: skip
        as_json = cli(*args, "-o", "json")
        as_yaml = cli(*args, "-o", "yaml")
        as_table = cli(*args)
        for result in (as_json, as_yaml, as_table):
            assert result.code == 0 and result.stderr in ("", "No events found.\n"), (args, result)
        assert as_json.json() == as_yaml.yaml(), args
        assert as_table.stdout == "" or "\x1b[" not in as_table.stdout, "no colour when piped"
    assert cli("runs", "list", "-o", "json").json()["items"][0]["run"] == "rcli"
    assert cli("runs", "get", "rcli", "-o", "yaml").yaml()["name"] == "a0"
    tree = cli("runs", "tree", "rcli")
    assert tree.stdout.splitlines()[0].split() == ["ACTION", "TYPE", "PHASE", "ATTEMPTS", "DURATION", "TASK"]
    assert cli("runs", "tree", "rcli", "-o", "json").json()["actions"][0]["name"] == "a0"
    assert cli("runs", "list", "--phase", "queued", "--since", "1h", "-o", "json").json()["items"]
    assert cli("runs", "list", "--phase", "SUCCEEDED", "-o", "json").json() == {"items": []}
    coloured = cli("runs", "tree", "rcli", "--color", "always")
    assert "\x1b[33mQUEUED\x1b[0m" in coloured.stdout
    cli.env["NO_COLOR"] = "1"
    assert "\x1b[" not in cli("runs", "tree", "rcli").stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["runs", "get", "nosuchrun"], ["not found"]),
        (["runs", "tree", "nosuchrun"], ["not found"]),
        (["runs", "watch", "nosuchrun", "--timeout", "5"], ["not found"]),
        (["actions", "get", "nosuchrun", "a0"], ["not found"]),
        (["events", "nosuchrun", "a0"], ["not found"]),
        (["abort", "nosuchrun", "--reason", "x"], ["not found"]),
    ],
)
def test_unknown_things_exit_1_not_found(cli: Cli, args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(cli(*args), 1, *fragments)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["runs", "get", "Bad_Run"], ["DNS-1035"]),
        (["runs", "get", "r" * 31], ["at most 30"]),
        (["actions", "get", "rok", "Bad_Action"], ["cannot name a TaskAction"]),
        (["runs", "get", "rok", "--project", "bad project"], ["not a valid label value"]),
        (["runs", "list", "--phase", "DONE"], ["unknown phase 'DONE'"]),
        (["runs", "list", "--since", "yesterday"], ["not a time"]),
        (["runs", "list", "-o", "xml"], ["invalid choice"]),
        (["runs", "frobnicate"], ["invalid choice"]),
        (["abort"], ["required"]),
        (["enqueue"], ["-f/--filename"]),
    ],
)
def test_bad_usage_exits_2_with_one_line(cli: Cli, args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(cli(*args), 2, *fragments)


@pytest.mark.parametrize(
    ("actions", "fragments"),
    [
        ([task("a0"), task("a1", "a2"), task("a2", "a1")], ["parent cycle: a1 -> a2 -> a1"]),
        ([task("a0"), task("a1", "a9")], ["actions[1] (a1): parent 'a9' is not an action"]),
        ([task("a0"), task("a1", "a0"), task("a1", "a0")], ["duplicate action name"]),
        ([task("a0"), task("a" * 31, "a0")], ["at most 30"]),
        ([task("a0", taskType="t" * 64)], ["taskType is 64 characters"]),
    ],
)
async def test_invalid_run_files_exit_2_and_change_nothing(
    cli: Cli, kube: KubeOps, db: Db, namespace: str, actions: list[dict[str, Any]], fragments: list[str]
) -> None:
    result = cli("enqueue", "-f", run_file(cli, "rbad", *actions))
    assert_one_line_error(result, 2, "run.yaml", *fragments)
    await nothing_created(kube, db, namespace)


async def test_invalid_run_name_in_file_and_stdin_exit_2(
    cli: Cli, kube: KubeOps, db: Db, namespace: str
) -> None:
    assert_one_line_error(cli("enqueue", "-f", run_file(cli, "Bad_Run", task("a0"))), 2, "DNS-1035")
    text = yaml.safe_dump({"run": "rstdin", "actions": [task("a0"), task("a1", "nope")]})
    assert_one_line_error(cli("enqueue", "-f", "-", input=text), 2, "<stdin>", "'nope'")
    assert_one_line_error(cli("enqueue", "-f", cli.write("x.yaml", "run: [unclosed\n")), 2, "x.yaml")
    await nothing_created(kube, db, namespace)


async def test_dry_run_prints_kubectl_yaml_and_creates_nothing(
    cli: Cli, kube: KubeOps, db: Db, namespace: str
) -> None:
    result = cli(
        "enqueue", "-f", str(EXAMPLES / "run-three-levels.enqueue.yaml"), "--dry-run", "--project", namespace
    )
    assert result.code == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["metadata"]["name"] for d in docs][:3] == ["r3levels-a0", "r3levels-a1", "r3levels-a2"]
    as_json = cli("enqueue", "-f", str(EXAMPLES / "run-three-levels.enqueue.yaml"), "--dry-run", "-o", "json")
    assert len(as_json.json()["items"]) == 6
    await nothing_created(kube, db, namespace)


async def test_an_existing_run_is_refused(cli: Cli, kube: KubeOps, namespace: str) -> None:
    path = run_file(cli, "rtwice", task("a0"))
    assert cli("enqueue", "-f", path).code == 0
    assert_one_line_error(cli("enqueue", "-f", path), 1, "already exists")
    assert len(await kube.list_taskactions(namespace)) == 1


async def test_abort_records_the_request_and_wait_times_out_without_an_operator(
    cli: Cli, kube: KubeOps, db: Db, namespace: str
) -> None:
    assert cli("enqueue", "-f", run_file(cli, "rabort", task("a0"), task("a1", "a0"))).code == 0
    result = cli("abort", "rabort", "--reason", "testing")
    assert result.code == 0 and "abort of run" in result.stdout
    row = db.actions(namespace, "rabort")["a0"]
    # ABORTED with the reason at once; abort_requested_at is not asserted: any operator sharing this
    # database (other tests') sweeps every pending request, finds no such TaskAction in its own
    # namespace, and clears it.
    assert (row["phase"], row["abort_reason"]) == (7, "testing")
    waited = cli("abort", "rabort", "--wait", "--timeout", "2")
    assert_one_line_error(
        waited, 1, "timed out after 2.0s", "TaskAction rabort-a0 present", "is the operator running?"
    )
    assert "waiting (" in waited.stdout  # progress, one line per change when not a terminal
    assert len(await kube.list_taskactions(namespace)) == 2  # nothing deleted: that is the sweep's job
    # a1 has a TaskAction but no row yet: children are recorded by the operator, which is not running.
    assert_one_line_error(cli("abort", "rabort", "a1"), 1, "action", "rabort/a1 not found")


async def test_aborting_a_finished_run_is_refused_unless_forced(
    cli: Cli, db: Db, repo: ActionRepo, namespace: str
) -> None:
    assert cli("enqueue", "-f", run_file(cli, "rdone", task("a0"))).code == 0
    assert await repo.update_action_phase(RunId(namespace, DOMAIN, "rdone").root, ActionPhase.SUCCEEDED, 1, 0)
    assert_one_line_error(cli("abort", "rdone"), 1, "already finished (SUCCEEDED)", "--force")
    assert db.actions(namespace, "rdone")["a0"]["phase"] == 5
    forced = cli("abort", "rdone", "--force")
    assert forced.code == 0, forced.stderr
    assert db.actions(namespace, "rdone")["a0"]["phase"] == 7


async def test_release_guards_lists_on_a_dry_run_then_releases_only_the_guard(
    cli: Cli, kube: KubeOps, namespace: str
) -> None:
    """Uninstalling: with the operator gone, its guard would hold TaskActions (and the CRD, and the
    namespace) forever; release-guards takes it off, and nothing else."""
    from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER
    from tests.e2e.taskactions import taskaction

    body = taskaction(namespace, "rguard", "a0")
    body["metadata"]["finalizers"] = ["example.com/keep", RECORD_GUARD_FINALIZER]
    await kube.create_taskaction(namespace, body)
    dry = cli("release-guards", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert f"would release {namespace}/rguard-a0 (its end is not recorded)" in dry.stdout
    assert (await kube.get_taskaction(namespace, "rguard-a0") or {})["metadata"]["finalizers"] == [
        "example.com/keep",
        RECORD_GUARD_FINALIZER,
    ]
    done = cli("release-guards")
    assert done.code == 0 and f"released {namespace}/rguard-a0" in done.stdout, done.stderr
    assert "1 TaskAction(s) in namespace" in done.stdout
    obj = await kube.get_taskaction(namespace, "rguard-a0") or {}
    assert obj["metadata"]["finalizers"] == ["example.com/keep"]
    await kube.merge_patch_taskaction(namespace, "rguard-a0", {"metadata": {"finalizers": None}})


def test_help_version_and_module_entry_point(cli: Cli) -> None:
    assert cli("--help").code == 0 and "TASKACTION_PROJECT" in cli("--help").stdout
    assert cli("runs", "--help").code == 0
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "taskaction_operator", "--version"], capture_output=True,
                          text=True, env=cli.env, check=False)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("taskaction-operator ")
