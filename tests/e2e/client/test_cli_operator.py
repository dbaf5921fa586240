"""The command line with the operator running (started as ``taskaction-operator run``): a run enqueued
from a file is watched to completion while a stand-in executor drives it, and ``abort --wait``
follows the operator's sweep until the TaskActions are gone and the row reads ABORTED."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

import pytest

from taskaction_operator.devtools.executor import SUCCESS_PATH, StandInExecutor
from taskaction_operator.k8s import KubeOps
from tests.cli_result import CLI
from tests.conftest import LOCAL, ROOT
from tests.e2e.client.conftest import Cli, condition, task
from tests.e2e.operator import ON_KIND, Db, OperatorProcess, until

pytestmark = pytest.mark.cluster
QUEUED, RUNNING, SUCCEEDED, ABORTED = 1, 4, 5, 7


@pytest.fixture
def cli_operator(
    request: pytest.FixtureRequest, kubeconfig: str, migrated: str, namespace: str
) -> Iterator[Any]:
    """``taskaction-operator run -n NAMESPACE`` as a process (the console script, not a Python -c); on
    kind a Pod of the image, whose entrypoint is that console script, with ``-n NAMESPACE``."""
    if ON_KIND:
        from tests.e2e.pod_operator import PodOperator

        pod = PodOperator(
            kubeconfig=kubeconfig,
            dsn=migrated,
            namespace=namespace,
            log_dir=LOCAL / "e2e-logs",
            args=("-n", namespace),
        )
        del pod.env["TASKACTION_NAMESPACES"]
        request.node.operator_logs = [*getattr(request.node, "operator_logs", []), str(pod.log_path)]
        yield pod.start()
        pod.stop()
        return
    op = OperatorProcess(kubeconfig=kubeconfig, dsn=migrated, namespace=namespace, log_dir=LOCAL / "e2e-logs")
    request.node.operator_logs = [*getattr(request.node, "operator_logs", []), str(op.log_path)]
    env = {k: v for k, v in op.env.items() if k != "TASKACTION_NAMESPACES"}
    op.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(op.log_path, "ab") as log:
        op.proc = subprocess.Popen(
            [str(CLI), "run", "-n", namespace], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        assert op.proc.poll() is None, f"operator exited with {op.proc.returncode}:\n{op.log_tail()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, f"operator not live within 60 s:\n{op.log_tail()}"
        time.sleep(0.2)
    yield op
    op.stop()


def enqueue(cli: Cli, run: str, *actions: dict[str, Any]) -> None:
    result = cli("enqueue", "-f", cli.write(f"{run}.yaml", {"run": run, "actions": list(actions)}))
    assert result.code == 0, result.stderr


async def test_a_run_is_watched_to_completion(
    cli: Cli, cli_operator: OperatorProcess, kube: KubeOps, db: Db, namespace: str
) -> None:
    enqueue(cli, "rwatch", task("a0"), task("a1", "a0"), task("a2", "a0"), task("a1-1", "a1"))
    watch = cli.popen("runs", "watch", "rwatch", "--timeout", "120")
    try:
        await until(lambda: len(db.phases(namespace, "rwatch")) == 4, timeout=60, what="all four recorded")
        ex = StandInExecutor(kube)
        for name in ("a1-1", "a1", "a2", "a0"):
            await ex.run_through(namespace, f"rwatch-{name}", SUCCESS_PATH)
        out, err = watch.communicate(timeout=90)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, (out, err)
    lines = out.splitlines()
    assert lines[-1].startswith("run rwatch SUCCEEDED after ")
    for name in ("a0", "a1", "a2", "a1-1"):
        assert any(line.split()[1:3] == [name, "SUCCEEDED"] for line in lines), (name, out)
    tree = cli("runs", "tree", "rwatch", "-o", "json").json()["actions"]
    assert tree[0]["name"] == "a0" and tree[0]["phase"] == "SUCCEEDED"
    assert sorted(c["name"] for c in tree[0]["children"]) == ["a1", "a2"]
    events = cli("events", "rwatch", "a1", "-o", "json").json()["items"]
    assert [e["phase"] for e in events][-1] == "SUCCEEDED"


async def test_runs_watch_times_out_with_one_line(
    cli: Cli, cli_operator: OperatorProcess, db: Db, namespace: str
) -> None:
    enqueue(cli, "rslow", task("a0"))
    result = cli("runs", "watch", "rslow", "--timeout", "2")
    assert result.code == 1
    assert result.stderr.strip().splitlines() == [
        f"taskaction-operator: error: timed out after 2.0s waiting for run {namespace}/development/rslow "
        "(phase QUEUED)"
    ]  # fmt: skip


async def test_abort_wait_follows_the_sweep_until_the_tree_is_gone(
    cli: Cli, cli_operator: OperatorProcess, kube: KubeOps, db: Db, namespace: str
) -> None:
    enqueue(cli, "rab", task("a0"), task("a1", "a0"), condition("c1", "a1"), task("a2", "a0"))
    await until(lambda: len(db.phases(namespace, "rab")) == 4, timeout=60, what="all four recorded")
    await StandInExecutor(kube).run_through(namespace, "rab-a1", ["Queued", "Initializing", "Executing"])
    result = cli("abort", "rab", "--reason", "e2e says stop", "--wait", "--timeout", "90")
    assert result.code == 0, (result.stdout, result.stderr)
    assert "run " in result.stdout and "aborted in" in result.stdout
    row = db.actions(namespace, "rab")["a0"]
    assert (row["phase"], row["abort_reason"]) == (ABORTED, "e2e says stop")

    async def tree_gone() -> bool:
        return await kube.list_taskactions(namespace) == []

    await until(tree_gone, timeout=60, what="the subtree collected")
    await until(lambda: db.phases(namespace, "rab")["a1"] == ABORTED, timeout=30, what="a1 recorded ABORTED")
    shown = cli("runs", "get", "rab", "-o", "yaml").yaml()
    assert shown["phase"] == "ABORTED" and shown["abortReason"] == "e2e says stop"


@pytest.mark.parametrize(("ending", "code"), [("PermanentFailure", 3), ("TimedOut", 5)])
async def test_runs_watch_exits_by_the_runs_outcome(
    cli: Cli, cli_operator: OperatorProcess, kube: KubeOps, db: Db, namespace: str, ending: str, code: int
) -> None:
    """CI reads the outcome from the exit code: 0 SUCCEEDED, 3 FAILED, 4 ABORTED, 5 TIMED_OUT (a run
    that FAILED exited 0)."""
    run = f"rout{code}"
    enqueue(cli, run, task("a0"))
    watch = cli.popen("runs", "watch", run, "--timeout", "120")
    try:
        await until(lambda: len(db.phases(namespace, run)) == 1, timeout=60, what="recorded")
        await StandInExecutor(kube).run_through(namespace, f"{run}-a0", ["Queued", "Executing", ending])
        out, err = watch.communicate(timeout=90)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == code, (out, err)


@pytest.mark.parametrize(
    ("ending", "code", "phase"),
    [
        ("Completed", 0, "SUCCEEDED"),
        ("PermanentFailure", 3, "FAILED"),
        ("abort", 4, "ABORTED"),
        ("TimedOut", 5, "TIMED_OUT"),
    ],
)
async def test_enqueue_wait_creates_the_run_and_exits_by_its_outcome(
    cli: Cli,
    cli_operator: OperatorProcess,
    kube: KubeOps,
    db: Db,
    namespace: str,
    ending: str,
    code: int,
    phase: str,
) -> None:
    """``enqueue -f FILE --wait``: the run is created, followed through the real operator while the
    stand-in executor drives it (or an abort is requested: the sweep deletes the tree), and the exit
    code is the run's outcome; the JUnit report is written for each outcome."""
    run = f"renq{code}"
    report = cli.tmp / "report.xml"
    path = cli.write(f"{run}.yaml", {"run": run, "actions": [task("a0"), task("a1", "a0")]})
    waiting = cli.popen("enqueue", "-f", path, "--wait", "--timeout", "120", "--junit", str(report))
    try:
        await until(lambda: len(db.phases(namespace, run)) == 2, timeout=60, what="both recorded")
        ex = StandInExecutor(kube)
        if ending == "abort":
            await ex.run_through(namespace, f"{run}-a0", ["Queued", "Executing"])
            assert cli("abort", run, "--reason", "enqueue --wait e2e").code == 0
        else:
            await ex.run_through(namespace, f"{run}-a1", SUCCESS_PATH)
            await ex.run_through(namespace, f"{run}-a0", ["Queued", "Executing", ending])
        out, err = waiting.communicate(timeout=90)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == code, (out, err)
    lines = out.splitlines()
    assert f"run {namespace}/development/{run} enqueued in namespace {namespace}: 2 TaskActions" in lines
    assert lines[-1].startswith(f"run {run} {phase} after "), out
    assert db.phases(namespace, run)["a0"] == {0: SUCCEEDED, 3: 6, 4: ABORTED, 5: 8}[code]
    suite = ElementTree.parse(report).getroot()
    assert suite.get("name") == f"run {namespace}/development/{run}"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert sorted(cases) == ["a0 (a0)", "a1 (a1)"]
    root_outcome = [child.tag for child in cases["a0 (a0)"]]
    assert root_outcome == {0: [], 3: ["failure"], 4: ["skipped"], 5: ["failure"]}[code], (
        ElementTree.tostring(suite)
    )


async def test_enqueue_wait_times_out_with_one_line_and_the_run_left_in_place(
    cli: Cli, cli_operator: OperatorProcess, db: Db, namespace: str
) -> None:
    path = cli.write("rslowenq.yaml", {"run": "rslowenq", "actions": [task("a0")]})
    result = cli("enqueue", "-f", path, "--wait", "--timeout", "2")
    assert result.code == 1, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [
        f"taskaction-operator: error: timed out after 2.0s waiting for run {namespace}/development/rslowenq "
        "(phase QUEUED)"
    ]  # fmt: skip
    assert "rslowenq enqueued" in result.stdout
    await until(lambda: db.phases(namespace, "rslowenq") == {"a0": QUEUED}, timeout=30, what="still recorded")
