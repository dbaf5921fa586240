"""The argument parser, the dispatch, and the one place errors become exit codes.

Exit codes: 0 success; 1 the command failed (not found, timed out, database or API server refused or
unreachable); 2 bad usage or bad input (unknown option, invalid name, invalid run file), in which
case nothing was changed. Every error is ONE line on stderr, ``taskaction-operator: error: …``,
never a traceback (``-v`` adds the traceback for debugging).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from taskaction_operator import __version__
from taskaction_operator.cli import argtypes
from taskaction_operator.cli.errors import CommandFailed, UsageError
from taskaction_operator.model.text import MAX_ERROR as MAX_ERROR  # re-exported
from taskaction_operator.model.text import one_line

if TYPE_CHECKING:
    from taskaction_operator.cli.context import Context

PROG = "taskaction-operator"

EPILOG = """\
defaults: --project/--domain from TASKACTION_PROJECT/TASKACTION_DOMAIN or the config file
($TASKACTION_CONFIG, else ~/.config/taskaction/config.yaml: project, domain, namespace, database_url,
server);
-n from TASKACTION_NAMESPACE or the config file, else "flyte"; the database from --database-url,
TASKACTION_DATABASE_URL, the config file, or .local/db/dsn in this repository's checkout; the
cluster from --kubeconfig or KUBECONFIG. --server URL (or TASKACTION_SERVER, or server: in the config
file) reads, watches and aborts through Flyte's RunService (taskaction-operator serve) instead of the
database, with the kubeconfig's bearer token; commands that cannot refuse --server. Durations
everywhere: 90s, 5m, 1h30m, 2d, 1w (a bare number is seconds). Exit codes: 0 ok, 1 failed, 2 bad
usage or input; waiting commands (runs watch, runs wait, enqueue --wait) exit by the run's outcome:
0 SUCCEEDED, 3 FAILED, 4 ABORTED, 5 TIMED_OUT."""

OUTPUTS = ("table", "wide", "json", "yaml", "name")

#: The common options by what they select: a command takes those it uses and refuses the rest (an
#: option accepted and ignored would mislead: ``-n`` does not select runs in the database).
OPTION_GROUPS: dict[str, tuple[tuple[tuple[str, ...], dict[str, Any]], ...]] = {
    "scope": (
        (("--project",), {"help": "project (default: TASKACTION_PROJECT or config)"}),
        (("--domain",), {"help": "domain (default: TASKACTION_DOMAIN or config)"}),
    ),
    "db": ((("--database-url",), {"metavar": "DSN", "help": "postgresql:// DSN"}),),
    "kube": (
        (("-n", "--namespace"), {"help": "namespace of the TaskActions (default: flyte)"}),
        (("--kubeconfig",), {"metavar": "PATH", "help": "kubeconfig (default: KUBECONFIG)"}),
    ),
    "api": (
        (
            ("--server",),
            {
                "metavar": "URL",
                "help": "read, watch and abort through Flyte's RunService at URL instead of the "
                "database (default: TASKACTION_SERVER or config), with the kubeconfig's token",
            },
        ),
        (("--insecure",), {"action": "store_true", "help": "allow an http:// --server that is not loopback"}),
    ),
}
#: Taken with --server by commands that otherwise do not use the cluster: the kubeconfig whose user's
#: bearer token is sent.
TOKEN_OPTION = ("--kubeconfig",)
WHAT_GROUPS_SELECT = {
    "scope": "a project and domain",
    "db": "the database",
    "kube": "the cluster",
    "api": "Flyte's API (it works on the database or the cluster directly)",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a UsageError (one line, exit 2) instead of usage text."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Refused(argparse.Action):
    """An option this command does not use: refused at once, naming what the command does read."""

    def __init__(self, *args: Any, group: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        parser.error(unused_message(self.option_strings, parser.prog, self.group))


def unused_message(options: Sequence[str], prog: str, group: str) -> str:
    command = prog.removeprefix(PROG + " ")
    return f"{'/'.join(options)} has no effect on '{command}': it does not use {WHAT_GROUPS_SELECT[group]}"


def _common(parser: argparse.ArgumentParser, *, suppress: bool, uses: frozenset[str] | None) -> None:
    """Options every command takes, before or after the command name (kubectl style); ``uses`` None:
    all of them (the top level, checked against the command after parsing)."""
    d: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("-o", "--output", choices=OUTPUTS, default=d, help="output format (default: table)")
    parser.add_argument("--no-headers", action="store_true", default=d, help="tables without the header line")
    for group, options in OPTION_GROUPS.items():
        for flags, kwargs in options:
            if uses is None or group in uses or (flags == TOKEN_OPTION and "api" in uses):
                parser.add_argument(*flags, default=d, **kwargs)
            else:
                parser.add_argument(
                    *flags,
                    default=d,
                    action=_Refused,
                    group=group,
                    help=argparse.SUPPRESS,
                    nargs=0 if kwargs.get("action") == "store_true" else None,
                )
    parser.add_argument(
        "--color", choices=("auto", "always", "never"), default=d, help="colour (default: auto)"
    )
    parser.add_argument("-v", "--verbose", action="count", default=d, help="log more (repeat for debug)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Record Flyte v2 TaskActions in PostgreSQL, and inspect or "
        "drive the runs they belong to.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _common(parser, suppress=False, uses=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    commons: dict[frozenset[str], argparse.ArgumentParser] = {}

    def leaf(group: Any, name: str, handler: str, help_: str, uses: str) -> argparse.ArgumentParser:
        """A command; ``handler`` is ``module:function`` in this package, imported only when it runs
        (so ``--help`` and usage errors stay fast); ``uses`` the option groups it reads."""
        used = frozenset(uses.split())
        if used not in commons:
            commons[used] = _Parser(add_help=False)
            _common(commons[used], suppress=True, uses=used)
        p: argparse.ArgumentParser = group.add_parser(
            name, parents=[commons[used]], help=help_, description=help_
        )
        p.set_defaults(handler=handler, uses=used, command_prog=p.prog)
        return p

    p = leaf(
        sub,
        "run",
        "write_cmds:run",
        "run the operator until SIGINT/SIGTERM; it watches -n NS[,NS...], else TASKACTION_NAMESPACES, "
        "else every namespace",
        "db kube",
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    leaf(sub, "migrate", "write_cmds:migrate", "bring the database schema up to date", "db")
    p = leaf(
        sub,
        "serve",
        "serve_cmd:serve",
        "serve Flyte's API over Connect (HTTP/1.1 and h2c): RunService for Flyte's SDK, CLI and UI, and the "
        "events endpoint Flyte's executor reports to",
        # -n and --kubeconfig: the namespace access is checked against (--auth kubernetes) and where
        # ActionsService enqueues (--actions).
        "db kube",
    )
    p.add_argument("--listen", default="127.0.0.1:8090", metavar="HOST:PORT", help="(default 127.0.0.1:8090)")
    p.add_argument(
        "--auth",
        choices=("none", "kubernetes"),
        default="none",
        help="who may call: kubernetes (a bearer token checked with a TokenReview, each call with a "
        "SubjectAccessReview on the TaskActions of -n NAMESPACE, cached 10 s) or none (local use; "
        "logged loudly)",
    )
    p.add_argument(
        "--actions",
        action="store_true",
        help="also serve ActionsService (Enqueue, WatchForUpdates, Update, Abort) for Flyte's in-pod "
        "controller, and RunService's CreateRun: TaskActions created and deleted in -n NAMESPACE through "
        "the Kubernetes API",
    )
    p.add_argument(
        "--events-listen",
        metavar="HOST:PORT",
        help="also listen here, serving only the events endpoint (EventsProxyService, InternalRunService) "
        "and never reviewed: for Flyte's executor, which sends no token, behind a NetworkPolicy",
    )
    p.add_argument(
        "--storage-prefix",
        default="",
        metavar="URI",
        help="with --actions: where CreateRun puts a run's inputs and outputs (e.g. s3://bucket/data) "
        "unless its run spec names a run_base_dir",
    )
    p.add_argument(
        "--max-streams", type=int, default=1000, help="watch streams open at once at most (default 1000)"
    )
    p.add_argument(
        "--max-stream-seconds",
        type=float,
        default=3600.0,
        help="a watch stream ends cleanly after this long; Flyte's SDK re-subscribes (default 3600)",
    )

    runs = sub.add_parser("runs", help="list, show and follow runs").add_subparsers(
        dest="runs_command", metavar="SUBCOMMAND", required=True, parser_class=_Parser
    )
    p = leaf(runs, "list", "read_cmds:runs_list", "list runs, newest first", "scope db api")
    p.add_argument("--phase", help="only these phases, comma-separated (e.g. RUNNING,FAILED)")
    p.add_argument(
        "--since", type=argtypes.point_in_time, help="created at or after (RFC 3339, or ago: 30m, 2h, 1d)"
    )
    p.add_argument("--until", type=argtypes.point_in_time, help="created at or before (RFC 3339, or ago)")
    p.add_argument(
        "--limit", type=argtypes.positive_int, default=50, help="at most this many runs (default 50)"
    )
    leaf(runs, "get", "read_cmds:runs_get", "show one run", "scope db api").add_argument("run", metavar="RUN")
    leaf(runs, "tree", "read_cmds:runs_tree", "show a run's action tree", "scope db api").add_argument(
        "run", metavar="RUN"
    )
    p = leaf(runs, "watch", "read_cmds:runs_watch", "follow a run until it is terminal", "scope db api")
    p.add_argument("run", metavar="RUN")
    _timeout(p, "1h")

    p = leaf(
        runs,
        "wait",
        "wait_cmd:runs_wait",
        "wait quietly until a run is terminal, then report it (CI: --junit, --github)",
        "scope db api",
    )
    p.add_argument("run", metavar="RUN")
    _timeout(p, "1h")
    _reports(p)

    actions = sub.add_parser("actions", help="show actions").add_subparsers(
        dest="actions_command", metavar="SUBCOMMAND", required=True, parser_class=_Parser
    )
    p = leaf(actions, "get", "read_cmds:actions_get", "show one action", "scope db api")
    p.add_argument("run", metavar="RUN")
    p.add_argument("action", metavar="ACTION")

    p = leaf(sub, "events", "read_cmds:events", "list an action's recorded phase events", "scope db api")
    p.add_argument("run", metavar="RUN")
    p.add_argument("action", metavar="ACTION")
    p.add_argument("--attempt", type=argtypes.positive_int, help="only this attempt")
    p.add_argument(
        "--since",
        type=argtypes.point_in_time,
        help="only events updated after this time (of --attempt, default the latest)",
    )
    p.add_argument(
        "--limit", type=argtypes.positive_int, default=500, help="at most this many events (default 500)"
    )

    p = leaf(
        sub,
        "abort",
        "write_cmds:abort",
        "request the abort of a run or one of its actions (-n and --kubeconfig: for --wait; "
        "--kubeconfig also for --server's token)",
        "scope db kube api",
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("action", metavar="ACTION", nargs="?")
    p.add_argument("--reason", help="recorded with the abort (default: 'User requested abort')")
    p.add_argument("--force", action="store_true", help="abort even a run or action that already finished")
    p.add_argument(
        "--wait", action="store_true", help="follow until the TaskAction is gone and the row ABORTED"
    )
    _timeout(p, "2m", what="--wait waits")

    p = leaf(
        sub,
        "release-guards",
        "write_cmds:release_guards",
        "take the operator's record-guard finalizer off TaskActions (uninstalling: see the README)",
        "kube",
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    p.add_argument("--dry-run", action="store_true", help="only list the TaskActions that hold it")

    p = leaf(
        sub,
        "prune",
        "prune_cmd:prune",
        "delete finished runs (actions, events) that ended longer ago than --older-than; never an "
        "unfinished one",
        "scope db",
    )
    p.add_argument(
        "--older-than",
        required=True,
        type=argtypes.timeout,
        metavar="DURATION",
        help="only runs whose every action ended longer ago than this (e.g. 30d)",
    )
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.add_argument(
        "--runs-per-transaction",
        type=argtypes.positive_int,
        default=100,
        metavar="N",
        help="runs looked at per transaction (default 100)",
    )

    p = leaf(sub, "enqueue", "write_cmds:enqueue", "create a run described in a YAML file", "scope db kube")
    p.add_argument("-f", "--filename", required=True, metavar="FILE", help="the run file ('-': stdin)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the TaskActions (kubectl YAML), create nothing"
    )
    p.add_argument(
        "--wait", action="store_true", help="then wait until the run is terminal; exit by its outcome"
    )
    _timeout(p, "1h", what="--wait waits")
    _reports(p)

    leaf(
        sub,
        "version",
        "info_cmds:version",
        "print the version (-o json: with flyteidl2, kopf, the schema)",
        "",
    )
    p = leaf(sub, "completion", "completion:completion", "print the shell completion script", "")
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell it is for")
    return parser


def _timeout(p: argparse.ArgumentParser, default: str, what: str = "waits") -> None:
    p.add_argument(
        "--timeout",
        type=argtypes.timeout,
        default=argtypes.timeout(default),
        metavar="DURATION",
        help=f"how long it {what} before giving up (default {default})",
    )


def _reports(p: argparse.ArgumentParser) -> None:
    p.add_argument("--junit", metavar="FILE", help="write the run's tree as a JUnit XML report")
    p.add_argument(
        "--github", action="store_true", help="print GitHub Actions annotations for failed actions"
    )


_DEFAULTS = {"output": "table", "color": "auto", "verbose": 0, "no_headers": False, "insecure": False}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse (UsageError on bad usage, pointing at the command's own help) and fill in the defaults of
    the suppressed common options."""
    args, extra = build_parser().parse_known_args(argv)
    prog = getattr(args, "command_prog", PROG)
    if extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see '{prog} --help')")
    for group, options in OPTION_GROUPS.items():  # given before the command name: checked here
        for flags, _kwargs in options:
            dest = flags[-1].lstrip("-").replace("-", "_")
            allowed = group in args.uses or (flags == TOKEN_OPTION and "api" in args.uses)
            if getattr(args, dest, None) not in (None, False) and not allowed:
                raise UsageError(f"{unused_message(flags, prog, group)} (see '{prog} --help')")
    for key, value in _DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def _configure_logging(verbose: int) -> None:
    from taskaction_operator.cli.logs import configure

    configure(verbose)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    verbose = 0
    try:
        if argv is None and "_ARGCOMPLETE" in os.environ:  # a shell completing a command line
            from taskaction_operator.cli.completion import complete_and_exit

            complete_and_exit(build_parser())
        args = parse_args(argv)
        verbose = int(args.verbose or 0)
        from taskaction_operator.cli.context import Context

        ctx = Context(args)
        ctx.preflight()  # every name and setting checked before a heavy import or a connection
        _configure_logging(verbose)
        module, _, name = str(args.handler).partition(":")
        handler = getattr(importlib.import_module(f"taskaction_operator.cli.{module}"), name)
        import inspect

        if inspect.iscoroutinefunction(handler):
            import asyncio

            return int(asyncio.run(_run_async(handler, ctx)))
        return int(handler(ctx))
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except KeyboardInterrupt:
        return _fail("interrupted", 130, verbose)
    except Exception as exc:
        message, code = _classify(exc)
        return _fail(message, code, verbose)


def _classify(exc: Exception) -> tuple[str, int]:
    """The one-line message and exit code of an error (imports lazily, like the commands)."""
    if isinstance(exc, UsageError):
        return str(exc), 2
    if isinstance(exc, CommandFailed):
        return str(exc), 1
    from taskaction_operator.client.actions_client import ActionsClientError
    from taskaction_operator.client.names import InvalidActionError
    from taskaction_operator.client.run_file import RunFileError
    from taskaction_operator.k8s.errors import KubeError
    from taskaction_operator.repo import NotFoundError, RepoError

    if isinstance(exc, InvalidActionError | RunFileError):
        return str(exc), 2
    if isinstance(exc, ActionsClientError | NotFoundError):
        return str(exc), 1
    if isinstance(exc, RepoError):
        return f"database: {exc}", 1
    if isinstance(exc, KubeError):
        return f"kubernetes: {exc.status} {exc.reason}", 1
    return f"{type(exc).__name__}: {exc}", 1  # unreachable servers and the unforeseen: still one line


async def _run_async(handler: Callable[[Context], Awaitable[int]], ctx: Context) -> int:
    try:
        return await handler(ctx)
    finally:
        await ctx.aclose()


def _fail(message: str, code: int, verbose: int) -> int:
    if verbose > 0 and code != 2:
        import traceback

        traceback.print_exc()
    sys.stderr.write(f"{PROG}: error: {one_line(message)}\n")
    return code
