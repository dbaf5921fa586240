"""``taskaction-operator prune`` as a process against the real PostgreSQL: ``--dry-run`` reports and
keeps everything, the real pass deletes the old finished run alone and says so; json output."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from taskaction_operator.model import ActionPhase
from taskaction_operator.repo import ActionRepo
from tests.conftest import ROOT
from tests.integration.repo.helpers import DONE, count_rows, make_run, run

pytestmark = pytest.mark.db
CLI = ROOT / ".venv" / "bin" / "taskaction-operator"


def prune(dsn: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKACTION_")}
    env.update(TASKACTION_DATABASE_URL=dsn, TASKACTION_CONFIG=str(tmp_path / "none.yaml"))
    return subprocess.run(
        [str(CLI), "prune", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


async def test_prune_dry_run_then_for_real(
    repo: ActionRepo, repo_dsn: str, project: str, tmp_path: Path
) -> None:
    old, busy = run(project, "rold"), run(project, "rbusy")
    await make_run(repo, old)
    await make_run(repo, busy, (DONE, ActionPhase.RUNNING, DONE))
    scope = ("--project", project, "--older-than", "30d")

    dry = prune(repo_dsn, tmp_path, *scope, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"would prune 1 run(s) of {project}/* ended before "), dry.stdout
    assert "3 action(s), 6 event(s) (2 run(s) examined" in dry.stdout
    assert count_rows(repo_dsn, old) == (3, 6, 3)

    real = prune(repo_dsn, tmp_path, *scope, "-o", "json", "--runs-per-transaction", "1")
    assert real.returncode == 0, real.stderr
    report = json.loads(real.stdout)
    assert {k: report[k] for k in ("project", "dryRun", "runs", "actions", "events", "runsExamined")} == {
        "project": project, "dryRun": False, "runs": 1, "actions": 3, "events": 6, "runsExamined": 2,
    }  # fmt: skip
    assert report["transactions"] == 3  # one root each, then the one that finds none left
    assert report["endedBefore"].endswith("Z")
    assert count_rows(repo_dsn, old) == (0, 0, 0)
    assert count_rows(repo_dsn, busy) == (3, 6, 3)


def test_prune_refuses_bad_usage_with_exit_2(repo_dsn: str, tmp_path: Path) -> None:
    for args, fragment in (
        ((), "--older-than"),
        (("--older-than", "0"), "must be positive"),
        (("--older-than", "soon"), "is not a duration"),
        (("--older-than", "1d", "--project", "bad p"), "not a valid label value"),
        (("--older-than", "1d", "-n", "flyte"), "has no effect on 'prune'"),
    ):
        result = prune(repo_dsn, tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert fragment in result.stderr and len(result.stderr.splitlines()) == 1, (args, result.stderr)
