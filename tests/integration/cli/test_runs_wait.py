"""``taskaction-operator runs wait --junit --github`` as a process against the real PostgreSQL: it
waits for the run's end (made here through the repository, as the operator would record it), exits
by the outcome, and writes a JUnit report that junitparser reads back."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flyteidl2.workflow import run_definition_pb2
from junitparser import Failure, JUnitXml

from taskaction_operator.model import ActionId, ActionPhase
from taskaction_operator.repo import ActionEvent, ActionRepo
from tests.conftest import ROOT
from tests.integration.repo.helpers import action, run

pytestmark = pytest.mark.db
CLI = ROOT / ".venv" / "bin" / "taskaction-operator"


async def test_runs_wait_exits_by_the_outcome_and_writes_a_junit_report(
    repo: ActionRepo, repo_dsn: str, project: str, tmp_path: Path
) -> None:
    rid = run(project, "rjunit")
    for name in ("a0", "a1", "a2"):
        await repo.create_action(action(ActionId(rid, name), phase=ActionPhase.RUNNING, task_short_name=name))
    report = tmp_path / "report.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKACTION_")}
    env.update(TASKACTION_DATABASE_URL=repo_dsn, TASKACTION_CONFIG=str(tmp_path / "none.yaml"))
    proc = subprocess.Popen(  # noqa: ASYNC220  (spawning returns at once)
        [str(CLI), "runs", "wait", "rjunit", "--project", project, "--domain", rid.domain,
         "--junit", str(report), "--github", "--timeout", "1m"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        await asyncio.sleep(2)  # it is waiting: the run is RUNNING
        assert proc.poll() is None, proc.communicate()
        end = datetime.now(UTC)
        error = run_definition_pb2.ActionEvent(
            error_info=run_definition_pb2.ErrorInfo(message="ValueError: bad shard", kind=1)
        )
        await repo.insert_events([
            ActionEvent(project, rid.domain, rid.name, "a2", 1, ActionPhase.FAILED, 0,
                        info=error.SerializeToString(), error_kind="USER"),
        ])  # fmt: skip
        await repo.update_action_phase(ActionId(rid, "a1"), ActionPhase.SUCCEEDED, 1, 0, end_time=end)
        await repo.update_action_phase(ActionId(rid, "a2"), ActionPhase.FAILED, 1, 0, end_time=end)
        await repo.update_action_phase(rid.root, ActionPhase.FAILED, 1, 0, end_time=end)
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, (out, err)
    assert out.splitlines()[-1].startswith("run rjunit FAILED after ")
    assert "::error title=run rjunit action a2 FAILED::USER: ValueError: bad shard" in out.splitlines()
    (suite,) = list(JUnitXml.fromfile(str(report)))
    assert (suite.tests, suite.failures) == (3, 2)
    cases = {case.name: case for case in suite}
    (failure,) = cases["a2 (a2)"].result
    assert isinstance(failure, Failure) and (failure.type, failure.message) == (
        "USER",
        "ValueError: bad shard",
    )
    assert cases["a1 (a1)"].is_passed
