"""``taskaction-operator --server URL`` against a real ``serve`` process (``--auth none``) on the real
PostgreSQL: every read, watch and abort goes through RunService and prints what the same command
prints reading the database, with the same exit codes and one-line errors."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import ActionRepo
from tests.cli_result import CliProcess, Result
from tests.integration.repo.helpers import at
from tests.integration.server.records import seed_run
from tests.serve_process import ServeProcess

pytestmark = pytest.mark.db

DOMAIN = "development"
#: Fields of ``-o json`` that RunService's messages do not carry (null or 0 through --server).
NOT_CARRIED = ("updatedAt", "abortRequestedAt", "abortAttemptCount", "inputUri", "runOutputBase")


class Cli(CliProcess):
    """The command line as a subprocess, reading the database, or a server with :meth:`via`."""

    def __init__(self, dsn: str, project: str, tmp: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKACTION_", "KUBECONFIG"))}
        self.env.update(
            TASKACTION_DATABASE_URL=dsn,
            TASKACTION_PROJECT=project,
            TASKACTION_DOMAIN=DOMAIN,
            TASKACTION_CONFIG=str(tmp / "config.yaml"),
            HOME=str(tmp),  # no ~/.kube/config: no token to send to a server with --auth none
        )
        self.tmp = tmp

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
        return self.run(*args, env=env, timeout=timeout)


@pytest.fixture
def cli(repo_dsn: str, project: str, tmp_path: Path) -> Cli:
    return Cli(repo_dsn, project, tmp_path)


@pytest.fixture
def server(repo_dsn: str, tmp_path: Path) -> Iterator[str]:
    process = ServeProcess(repo_dsn, tmp_path / "serve.log").start()
    try:
        yield process.url
    finally:
        process.stop()


@pytest.fixture
async def seeded(repo: ActionRepo, project: str) -> RunId:
    run_id = RunId(project, DOMAIN, "r0")
    await seed_run(repo, run_id)
    return run_id


def one_line_error(result: Result, code: int, *fragments: str) -> str:
    assert result.code == code, (result.code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("taskaction-operator: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def carried(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in NOT_CARRIED}


def tree_carried(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tree's nodes without what RunService does not carry, nor the short name: WatchActions
    derives one from the task name where the row has none (upstream's convertNodeUpdateToEnrichedProto)."""
    return [{**carried(n), "shortName": None, "children": tree_carried(n["children"])} for n in nodes]


async def test_reads_through_the_server_print_what_the_database_reads_print(
    cli: Cli, server: str, seeded: RunId, repo: ActionRepo
) -> None:
    # Ended, so that no duration depends on when each command ran.
    await repo.update_action_phase(seeded.root, ActionPhase.FAILED, 1, 0, end_time=at(20))
    run = seeded.name
    for args in (["runs", "list"], ["runs", "get", run], ["runs", "tree", run], ["actions", "get", run, "a2"],
                 ["runs", "list", "-o", "wide"], ["runs", "tree", run, "-o", "wide"],
                 ["runs", "list", "-o", "name"],
                 ["runs", "list", "--phase", "RUNNING,FAILED", "--since", "3650d"]):  # fmt: skip
        direct, through = cli(*args), cli(*args, "--server", server)
        assert direct.code == through.code == 0, (args, direct.stderr, through.stderr)
        assert through.stdout == direct.stdout, args
    direct, through = cli("runs", "list", "-o", "json"), cli("runs", "list", "-o", "json", "--server", server)
    assert [carried(i) for i in through.json()["items"]] == [carried(i) for i in direct.json()["items"]]
    assert through.json()["items"][0]["abortAttemptCount"] == 0
    for args in (["runs", "get", run], ["actions", "get", run, "a1-1"]):
        direct, through = cli(*args, "-o", "yaml"), cli(*args, "-o", "json", "--server", server)
        assert carried(through.json()) == carried(json.loads(json.dumps(_yaml(direct.stdout), default=str)))
    direct, through = (
        cli("runs", "tree", run, "-o", "json"),
        cli("runs", "tree", run, "-o", "json", "--server", server),
    )
    assert tree_carried(through.json()["actions"]) == tree_carried(direct.json()["actions"])
    assert cli("runs", "list", "--phase", "SUCCEEDED", "--server", server).stderr == "No runs found.\n"


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


async def test_events_through_the_server_are_each_attempts_phases_with_its_error(
    cli: Cli, server: str, seeded: RunId
) -> None:
    def keyed(result: Result) -> list[tuple[int, str, str | None, str | None]]:
        assert result.code == 0, result.stderr
        return [(e["attempt"], e["phase"], e["errorKind"], e["errorMessage"]) for e in result.json()["items"]]

    run = seeded.name
    assert (
        keyed(cli("events", run, "a2", "-o", "json", "--server", server))
        == keyed(cli("events", run, "a2", "-o", "json"))
        == [
            (1, "QUEUED", None, None),
            (1, "RUNNING", None, None),
            (1, "FAILED", "KIND_USER", "oom"),
            (2, "RUNNING", None, None),
            (2, "FAILED", "KIND_SYSTEM", "node lost"),
        ]
    )
    only = cli("events", run, "a2", "--attempt", "2", "-o", "json", "--server", server)
    assert [e["phase"] for e in only.json()["items"]] == ["RUNNING", "FAILED"]
    since = cli("events", run, "a2", "--since", "2026-01-01T00:00:13.500Z", "-o", "json", "--server", server)
    direct = cli("events", run, "a2", "--since", "2026-01-01T00:00:13.500Z", "-o", "json")
    assert keyed(since) == keyed(direct)
    assert cli("events", run, "a1", "--server", server).stderr == "No events found.\n"


async def test_wait_and_watch_exit_by_the_outcome_and_write_the_same_junit(
    cli: Cli, server: str, seeded: RunId, repo: ActionRepo, tmp_path: Path
) -> None:
    watch = cli.popen("runs", "watch", seeded.name, "--server", server, "--timeout", "60")
    wait = cli.popen("runs", "wait", seeded.name, "--server", server, "--timeout", "60")
    await asyncio.sleep(2)  # both subscribed (a change before then is in their snapshot: same outcome)
    assert watch.poll() is None and wait.poll() is None
    await repo.update_action_phase(seeded.root, ActionPhase.FAILED, 1, 0, end_time=datetime.now(UTC))
    out, err = await asyncio.to_thread(watch.communicate, timeout=60)
    assert watch.returncode == 3, err
    assert f"run {seeded.name} FAILED after" in out
    out, err = await asyncio.to_thread(wait.communicate, timeout=60)
    assert wait.returncode == 3, err
    direct = cli("runs", "wait", seeded.name, "--junit", str(tmp_path / "direct.xml"), "--github")
    through = cli(
        "runs", "wait", seeded.name, "--junit", str(tmp_path / "through.xml"), "--github", "--server", server
    )
    assert direct.code == through.code == 3
    assert through.stdout == direct.stdout and "node lost" in through.stdout
    assert (tmp_path / "through.xml").read_text() == (tmp_path / "direct.xml").read_text()
    timed_out = cli("runs", "watch", "nosuchrun", "--server", server, "--timeout", "5")
    one_line_error(timed_out, 1, f"run {seeded.project}/{DOMAIN}/nosuchrun not found")


async def test_abort_through_the_server_marks_the_record_and_refuses_a_finished_action(
    cli: Cli, server: str, seeded: RunId, repo: ActionRepo
) -> None:
    one_line_error(
        cli("abort", seeded.name, "a1", "--server", server), 1, "already finished (SUCCEEDED); --force"
    )
    assert (await repo.get_action(ActionId(seeded, "a1"))).phase is ActionPhase.SUCCEEDED
    done = cli("abort", seeded.name, "--reason", "through the API", "--server", server)
    assert done.code == 0, done.stderr
    assert f"abort of run {seeded} requested (through the API)" in done.stdout
    root = await repo.get_run(seeded)
    assert root.phase is ActionPhase.ABORTED and root.abort_requested_at is not None
    assert root.abort_reason == "through the API"
    shown = cli("runs", "get", seeded.name, "--server", server)
    assert "abort reason: through the API" in shown.stdout
    forced = cli("abort", seeded.name, "a1", "--force", "--server", server)
    assert forced.code == 0, forced.stderr
    assert (await repo.get_action(ActionId(seeded, "a1"))).phase is ActionPhase.ABORTED
    one_line_error(cli("abort", "nosuchrun", "--server", server), 1, "not found")


async def test_the_server_comes_from_the_environment_or_the_config_file(
    cli: Cli, server: str, seeded: RunId, tmp_path: Path
) -> None:
    bad_dsn = {"TASKACTION_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}  # not used with a server
    # -o name: a table's DURATION and AGE of a running run may tick over between the two calls.
    by_env = cli("runs", "get", seeded.name, "-o", "name", env={**bad_dsn, "TASKACTION_SERVER": server})
    assert by_env.code == 0 and by_env.stdout.strip(), by_env.stderr
    (tmp_path / "config.yaml").write_text(f"server: {server}\n")
    by_config = cli("runs", "get", seeded.name, "-o", "name", env=bad_dsn)
    assert by_config.code == 0 and by_config.stdout == by_env.stdout, by_config.stderr
    # The database's own commands ignore the server of the environment and the config file ...
    ignored = cli("prune", "--older-than", "3650d", "--dry-run", env={"TASKACTION_SERVER": server})
    assert ignored.code == 0, ignored.stderr
    # ... and refuse it on the command line.
    one_line_error(
        cli("prune", "--older-than", "1d", "--server", server), 2, "--server has no effect on 'prune'"
    )


async def test_a_server_that_does_not_answer_is_one_line(cli: Cli, seeded: RunId) -> None:
    one_line_error(cli("runs", "get", seeded.name, "--server", "http://127.0.0.1:1"), 1, "is unavailable")
    one_line_error(
        cli("runs", "watch", seeded.name, "--server", "http://127.0.0.1:1", "--timeout", "5"),
        1,
        "is unavailable",
    )
