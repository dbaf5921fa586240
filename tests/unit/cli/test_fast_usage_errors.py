"""Usage and validation errors are decided before anything heavy is imported or contacted: each case
runs the real entry point in a fresh interpreter and reports its exit code and which heavy libraries
it loaded (none may be). How fast that is belongs to ``benchmarks/bench_cli_startup.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Libraries a usage error has no business loading (each costs 50 ms to over a second to import).
HEAVY = ("kubernetes", "sqlalchemy", "psycopg", "alembic", "flyteidl2", "google", "kopf", "urllib3")

RUNNER = """
import json, sys
from taskaction_operator.cli import main
code = main(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(sys.stdin.read())))
print(json.dumps({"code": code, "heavy": heavy}))
"""

SCOPE = ["--project", "p", "--domain", "d"]


def run_entry(argv: list[str], tmp_path: Path) -> tuple[int, list[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKACTION_")}
    env.update(
        TASKACTION_CONFIG=str(tmp_path / "absent.yaml"),
        TASKACTION_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        KUBECONFIG=str(tmp_path / "absent-kubeconfig"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *argv], input=json.dumps(HEAVY), capture_output=True, text=True,
        env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(report["code"]), list(report["heavy"]), proc.stderr


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["runs", "watch", "r1", "--timeout", "0", *SCOPE], "--timeout"),
        (["abort", "r1", "--wait", "--timeout", "0", *SCOPE], "--timeout"),
        (["runs", "get", "r1", *SCOPE, "--database-url", "mysql://x"], "postgresql://"),
        (["events", "r1", "a0", "--attempt", "0", *SCOPE], "--attempt"),
        (["runs", "list", "--limit", "-1"], "--limit"),
        (["events", "r1", "a0", "--limit", "0", *SCOPE], "--limit"),
        (["runs", "list", "--since", "last week"], "--since"),
        (["runs", "get", "Bad_Run", *SCOPE], "DNS-1035"),
        (["actions", "get", "r1", "A!", *SCOPE], "cannot name a TaskAction"),
        (["runs", "get", "r1", "--domain", "d"], "no project"),
        (["runs", "list", "--bogus"], "unrecognized arguments"),
        (["prune", "--older-than", "0"], "--older-than"),
        (["prune", "--older-than", "1d", "--project", "bad p"], "label value"),
        (["completion", "tcsh"], "invalid choice"),
        (["runs", "list", "--server", "ftp://x"], "expected http(s)://"),
        (["runs", "get", "r1", *SCOPE, "--server", "http://flyte.example.com"], "--insecure"),
        (["migrate", "--server", "https://x"], "--server has no effect on 'migrate'"),
        (["runs", "get", "Bad_Run", *SCOPE, "--server", "https://x"], "DNS-1035"),
    ],
)
def test_usage_errors_exit_2_without_loading_heavy_libraries(
    argv: list[str], fragment: str, tmp_path: Path
) -> None:
    code, heavy, stderr = run_entry(argv, tmp_path)
    assert code == 2, stderr
    assert heavy == [], f"a usage error loaded {heavy}"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taskaction-operator: error: "), stderr
    assert fragment in lines[0], lines[0]


def test_help_loads_no_heavy_library(tmp_path: Path) -> None:
    code, heavy, _ = run_entry(["runs", "watch", "--help"], tmp_path)
    assert (code, heavy) == (0, [])


def test_version_and_the_completion_script_load_no_heavy_library(tmp_path: Path) -> None:
    """Neither contacts anything: the plain version is the package's, the script argcomplete's text."""
    for argv in (["version"], ["completion", "bash"]):
        code, heavy, stderr = run_entry(argv, tmp_path)
        assert (code, heavy) == (0, []), (argv, stderr)
