"""The command line without a cluster or database: parsing, defaults and their precedence, and exit
code 2 with one line for every kind of bad input (all caught before any connection is opened)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskaction_operator.cli import main
from taskaction_operator.cli.app import parse_args
from taskaction_operator.cli.context import Context, UsageError, load_config


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TASKACTION_* from the caller, no user config, no database or cluster reachable."""
    for var in list(__import__("os").environ):
        if var.startswith("TASKACTION_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("TASKACTION_CONFIG", str(tmp_path / "absent.yaml"))
    monkeypatch.setenv("TASKACTION_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent-kubeconfig"))


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("taskaction-operator: error: ")
    return lines[0]


def test_common_options_work_before_and_after_the_command() -> None:
    a = parse_args(["-o", "json", "runs", "get", "r1"])
    b = parse_args(["runs", "get", "r1", "-o", "json"])
    assert a.output == b.output == "json"
    c = parse_args(["runs", "get", "r1"])
    assert (c.output, c.color, c.verbose) == ("table", "auto", 0)
    assert parse_args(["-n", "ns1", "enqueue", "-f", "x"]).namespace == "ns1"
    assert parse_args(["enqueue", "-f", "x", "-n", "ns2"]).namespace == "ns2"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "required: COMMAND"),
        (["runs"], "required: SUBCOMMAND"),
        (["nope"], "invalid choice: 'nope'"),
        (["runs", "list", "-o", "xml"], "invalid choice: 'xml'"),
        (["runs", "list", "--limit", "ten"], "'ten' is not a whole number"),
        (["runs", "get"], "required: RUN"),
        (["runs", "get", "r1", "--bogus"], "unrecognized arguments: --bogus"),
        (["abort", "r1", "--timeout", "soon"], "'soon' is not a duration like 90s, 5m, 1h30m"),
        (["enqueue"], "-f/--filename"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert fragment in one_error_line(capsys)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["runs", "get", "Bad_Run", "--project", "p", "--domain", "d"], "DNS-1035"),
        (["runs", "get", "r" * 31, "--project", "p", "--domain", "d"], "at most 30"),
        (["runs", "get", "r1", "--project", "p" * 64, "--domain", "d"], "at most 63"),
        (["runs", "get", "r1", "--domain", "d"], "no project"),
        (["runs", "get", "r1", "--project", "p"], "no domain"),
        (["actions", "get", "r1", "A!", "--project", "p", "--domain", "d"], "cannot name a TaskAction"),
        (["events", "r1", "a" * 31, "--project", "p", "--domain", "d"], "at most 30"),
        (["abort", "Bad", "--project", "p", "--domain", "d"], "DNS-1035"),
        (["runs", "list", "--phase", "FINISHED"], "unknown phase 'FINISHED'"),
        (["runs", "list", "--since", "last week"], "not a time"),
        (["runs", "list", "--limit", "0"], "argument --limit: must be at least 1"),
        (["runs", "watch", "r1", "--timeout", "0", "--project", "p", "--domain", "d"], "positive"),
        (["abort", "r1", "--wait", "--timeout", "-1", "--project", "p", "--domain", "d"], "not a duration"),
        (["runs", "get", "r1", "-p", "x"], "unrecognized arguments"),
        (["serve", "--listen", "nowhere"], "expected HOST:PORT"),
        (["serve", "--max-streams", "0"], "--max-streams 0: must be at least 1"),
        (["serve", "--max-stream-seconds", "0"], "must be positive"),
        (
            ["runs", "get", "r1", "--project", "p", "--domain", "d", "--database-url", "mysql://x"],
            "postgresql://",
        ),
    ],
)
def test_bad_input_exits_2_before_connecting(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert fragment in one_error_line(capsys)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["runs", "list", "-n", "ns"], "-n/--namespace has no effect on 'runs list'"),
        (["-n", "ns", "runs", "list"], "-n/--namespace has no effect on 'runs list'"),
        (["events", "r1", "a0", "--kubeconfig", "k"], "--kubeconfig has no effect on 'events'"),
        (["--kubeconfig", "k", "runs", "tree", "r1"], "--kubeconfig has no effect on 'runs tree'"),
        (["migrate", "--project", "p"], "--project has no effect on 'migrate'"),
        (["release-guards", "--database-url", "postgresql://x"], "it does not use the database"),
        (["abort", "r1", "-n", "ns", "--project", "p", "--domain", "d"], "'abort' without --wait"),
    ],
)
def test_options_a_command_would_ignore_are_refused(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert fragment in line
    words = ("runs", "list", "events", "tree", "migrate", "release-guards", "abort")
    command = " ".join(a for a in argv if a in words)
    assert line.endswith(f"(see 'taskaction-operator {command} --help')"), line


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["runs", "get", "r1", "--bogus"], "runs get"),
        (["runs", "list", "--limit", "x"], "runs list"),
        (["events", "r1"], "events"),
        (["runs", "frobnicate"], "runs"),
    ],
)
def test_a_usage_error_points_at_the_commands_own_help(
    argv: list[str], prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert one_error_line(capsys).endswith(f"(see 'taskaction-operator {prog} --help')")


def test_invalid_run_files_exit_2_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(
        "project: p\ndomain: d\nrun: r1\nactions:\n"
        "  - {name: a0, taskType: python}\n"
        "  - {name: a1, parent: a2, taskType: python}\n"
        "  - {name: a2, parent: a1, taskType: python}\n"
    )
    assert main(["enqueue", "-f", str(cycle)]) == 2
    assert "cycle.yaml: actions[1] (a1): parent cycle: a1 -> a2 -> a1" in one_error_line(capsys)
    assert main(["enqueue", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in one_error_line(capsys)


def test_no_database_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TASKACTION_DATABASE_URL")
    monkeypatch.setattr("taskaction_operator.cli.context.checkout_dsn", lambda: "")
    assert main(["runs", "list"]) == 2
    assert "no database" in one_error_line(capsys)


def test_defaults_come_from_flags_then_environment_then_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("project: from-config\ndomain: dev-config\nnamespace: ns-config\n")
    monkeypatch.setenv("TASKACTION_CONFIG", str(config))
    ctx = Context(parse_args(["runs", "list"]))
    assert (ctx.project, ctx.domain, ctx.namespace) == ("from-config", "dev-config", "ns-config")
    monkeypatch.setenv("TASKACTION_PROJECT", "from-env")
    ctx = Context(parse_args(["runs", "list"]))
    assert ctx.project == "from-env"
    ctx = Context(parse_args(["enqueue", "-f", "x", "--project", "from-flag", "-n", "ns-flag"]))
    assert (ctx.project, ctx.namespace) == ("from-flag", "ns-flag")
    monkeypatch.setenv("TASKACTION_CONFIG", str(tmp_path / "none.yaml"))
    assert Context(parse_args(["runs", "list"])).namespace == "flyte"


def test_a_bad_config_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("projekt: typo\n")
    with pytest.raises(UsageError, match="unknown key 'projekt'"):
        load_config({"TASKACTION_CONFIG": str(config)})
    config.write_text("- a list\n")
    with pytest.raises(UsageError, match="expected a mapping"):
        load_config({"TASKACTION_CONFIG": str(config)})
    assert load_config({"TASKACTION_CONFIG": str(tmp_path / "absent.yaml")}) == {}
    assert load_config({"XDG_CONFIG_HOME": str(tmp_path)}) == {}


def test_run_with_an_invalid_setting_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TASKACTION_SWEEP_INTERVAL", "-1")
    assert main(["run"]) == 2
    assert "TASKACTION_SWEEP_INTERVAL" in one_error_line(capsys)


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "enqueue" in out and "TASKACTION_PROJECT" in out


def test_a_read_against_a_database_that_accepts_and_never_answers_fails_in_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README promises no command waits without a deadline: the connect timeout bounds it."""
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        started = time.monotonic()
        code = main(["runs", "get", "r1", "--project", "p", "--domain", "d",
                     "--database-url", f"postgresql://postgres@127.0.0.1:{port}/db"])  # fmt: skip
        took = time.monotonic() - started
    assert code == 1
    assert took < 30, f"took {took:.1f} s"
    assert "database" in one_error_line(capsys)


def test_error_lines_stay_one_short_line_without_library_links() -> None:
    from taskaction_operator.cli.app import MAX_ERROR, one_line

    raw = (
        '(psycopg.OperationalError) connection failed: connection to server at "127.0.0.1", port 1\n'
        "failed: Connection refused\n(Background on this error at: https://sqlalche.me/e/21/e3q8)"
    )
    assert (
        one_line(raw)
        == 'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'
    )
    long = one_line("x " * 1000)
    assert len(long) == MAX_ERROR and long.endswith("…")


def test_a_watchs_timeout_wins_over_the_database_connect_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    """The database's connect timeout is 10 s; a 1 s watch must give up after 1 s, saying so."""
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        started = time.monotonic()
        code = main(["runs", "watch", "r1", "--timeout", "1s", "--project", "p", "--domain", "d",
                     "--database-url", f"postgresql://postgres@127.0.0.1:{port}/db"])  # fmt: skip
        took = time.monotonic() - started
    assert code == 1
    assert "timed out after 1.0s waiting for run p/d/r1" in one_error_line(capsys)
    assert took < 8, f"took {took:.1f} s: the connect timeout won"


# --- --server --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["enqueue", "-f", "x.yaml", "--server", "https://x"], "--server has no effect on 'enqueue'"),
        (["--server", "https://x", "prune", "--older-than", "1d"], "--server has no effect on 'prune'"),
        (["release-guards", "--insecure"], "--insecure has no effect on 'release-guards'"),
        (["serve", "--server", "https://x"], "--server has no effect on 'serve'"),
        (["runs", "list", "--insecure"], "--insecure has no effect without --server"),
        (["runs", "list", "--kubeconfig", "k"], "--kubeconfig has no effect on 'runs list' without --server"),
        (
            ["runs", "list", "--server", "https://x", "-n", "ns"],
            "-n/--namespace has no effect on 'runs list'",
        ),
        (
            ["runs", "list", "--server", "https://x", "--database-url", "postgresql://x"],
            "--database-url has no effect with --server",
        ),
        (["runs", "list", "--server", "x:8090"], "expected http(s)://HOST[:PORT]"),
        (["abort", "r1", "--project", "p", "--domain", "d", "--server", "http://10.0.0.1"], "--insecure"),
    ],
)
def test_server_usage_errors_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert fragment in one_error_line(capsys)


@pytest.mark.parametrize(
    ("argv", "env", "config", "expected"),
    [
        (
            ["runs", "list", "--server", "https://a"],
            {"TASKACTION_SERVER": "https://b"},
            "server: https://c",
            "https://a",
        ),
        (["runs", "list"], {"TASKACTION_SERVER": "https://b"}, "server: https://c", "https://b"),
        (["runs", "list"], {}, "server: https://c", "https://c"),
        (["runs", "list"], {}, "", ""),
        (["prune", "--older-than", "1d"], {"TASKACTION_SERVER": "https://b"}, "server: https://c", ""),
        (["enqueue", "-f", "x"], {}, "server: https://c", ""),
    ],
)
def test_the_server_comes_from_the_flag_the_environment_or_the_config_file(
    argv: list[str], env: dict[str, str], config: str, expected: str, tmp_path: Path
) -> None:
    (tmp_path / "config.yaml").write_text(config)
    ctx = Context(parse_args(argv), env={"TASKACTION_CONFIG": str(tmp_path / "config.yaml"), **env})
    assert ctx.server == expected


def test_with_a_server_the_kubeconfig_names_the_token_and_loopback_http_needs_no_insecure() -> None:
    args = parse_args(["--kubeconfig", "k", "runs", "get", "r1", "--project", "p", "--domain", "d",
                       "--server", "http://127.0.0.1:8090"])  # fmt: skip
    ctx = Context(args, env={})
    ctx.preflight()
    assert (ctx.server, args.kubeconfig, args.insecure) == ("http://127.0.0.1:8090", "k", False)
    args = parse_args(["abort", "r1", "--project", "p", "--domain", "d", "--kubeconfig", "k",
                       "--server", "http://flyte:8090", "--insecure"])  # fmt: skip
    Context(args, env={}).preflight()
