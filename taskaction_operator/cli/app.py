"""The argument parser, the dispatch, and the one place errors become exit codes.

Exit codes: 0 success; 1 the command failed (not found, timed out, database or API server refused or
unreachable); 2 bad usage or bad input (unknown option, invalid name, invalid run file), in which
case nothing was changed. Every error is ONE line on stderr, ``taskaction-operator: error: …``,
never a traceback (``-v`` adds the traceback for debugging).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import sys
import traceback
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from taskaction_operator import __version__
from taskaction_operator.cli.errors import CommandFailed, UsageError

if TYPE_CHECKING:
    from taskaction_operator.cli.context import Context

PROG = "taskaction-operator"

EPILOG = """\
defaults: --project/--domain from TASKACTION_PROJECT/TASKACTION_DOMAIN or the config file
($TASKACTION_CONFIG, else ~/.config/taskaction/config.yaml: project, domain, namespace, database_url);
-n from TASKACTION_NAMESPACE or the config file, else "flyte"; the database from --database-url,
TASKACTION_DATABASE_URL, the config file, or .local/db/dsn in this repository's checkout; the
cluster from --kubeconfig or KUBECONFIG. Exit codes: 0 ok, 1 failed, 2 bad usage or input; runs watch
exits by the run's outcome: 0 SUCCEEDED, 3 FAILED, 4 ABORTED, 5 TIMED_OUT."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a UsageError (one line, exit 2) instead of usage text."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options every command takes, before or after the command name (kubectl style)."""
    d: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("-n", "--namespace", default=d, help="namespace of the TaskActions (default: flyte)")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default=d, help="output format")
    parser.add_argument("--project", default=d, help="project (default: TASKACTION_PROJECT or config)")
    parser.add_argument("--domain", default=d, help="domain (default: TASKACTION_DOMAIN or config)")
    parser.add_argument("--database-url", default=d, metavar="DSN", help="postgresql:// DSN")
    parser.add_argument("--kubeconfig", default=d, metavar="PATH", help="kubeconfig (default: KUBECONFIG)")
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
    _common(parser, suppress=False)
    common = _Parser(add_help=False)
    _common(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def leaf(group: Any, name: str, handler: str, help_: str) -> argparse.ArgumentParser:
        """A command; ``handler`` is ``module:function`` in this package, imported only when it runs
        (so ``--help`` and usage errors stay fast)."""
        p: argparse.ArgumentParser = group.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    p = leaf(
        sub,
        "run",
        "write_cmds:run",
        "run the operator until SIGINT/SIGTERM; it watches -n NS[,NS...], else TASKACTION_NAMESPACES, "
        "else every namespace",
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    leaf(sub, "migrate", "write_cmds:migrate", "bring the database schema up to date")
    p = leaf(
        sub,
        "serve",
        "serve_cmd:serve",
        "serve Flyte's API over Connect (HTTP/1.1 and h2c): RunService for Flyte's SDK, CLI and UI, and the "
        "events endpoint Flyte's executor reports to",
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
        "controller: TaskActions created and deleted in -n NAMESPACE through the Kubernetes API",
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
    p = leaf(runs, "list", "read_cmds:runs_list", "list runs, newest first")
    p.add_argument("--phase", help="only these phases, comma-separated (e.g. RUNNING,FAILED)")
    p.add_argument("--since", help="created at or after (RFC 3339, or relative: 30m, 2h, 1d)")
    p.add_argument("--until", help="created at or before (RFC 3339, or relative)")
    p.add_argument("--limit", type=int, default=50, help="at most this many runs (default 50)")
    leaf(runs, "get", "read_cmds:runs_get", "show one run").add_argument("run", metavar="RUN")
    leaf(runs, "tree", "read_cmds:runs_tree", "show a run's action tree").add_argument("run", metavar="RUN")
    p = leaf(runs, "watch", "read_cmds:runs_watch", "follow a run until it is terminal")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before giving up (default 3600)")

    actions = sub.add_parser("actions", help="show actions").add_subparsers(
        dest="actions_command", metavar="SUBCOMMAND", required=True, parser_class=_Parser
    )
    p = leaf(actions, "get", "read_cmds:actions_get", "show one action")
    p.add_argument("run", metavar="RUN")
    p.add_argument("action", metavar="ACTION")

    p = leaf(sub, "events", "read_cmds:events", "list an action's recorded phase events")
    p.add_argument("run", metavar="RUN")
    p.add_argument("action", metavar="ACTION")
    p.add_argument("--attempt", type=int, help="only this attempt")
    p.add_argument("--since", help="only events updated after this time (of --attempt, default the latest)")
    p.add_argument("--limit", type=int, default=500, help="at most this many events (default 500)")

    p = leaf(sub, "abort", "write_cmds:abort", "request the abort of a run or one of its actions")
    p.add_argument("run", metavar="RUN")
    p.add_argument("action", metavar="ACTION", nargs="?")
    p.add_argument("--reason", help="recorded with the abort (default: 'User requested abort')")
    p.add_argument("--force", action="store_true", help="abort even a run or action that already finished")
    p.add_argument(
        "--wait", action="store_true", help="follow until the TaskAction is gone and the row ABORTED"
    )
    p.add_argument("--timeout", type=float, default=120, help="seconds --wait waits (default 120)")

    p = leaf(
        sub,
        "release-guards",
        "write_cmds:release_guards",
        "take the operator's record-guard finalizer off TaskActions (uninstalling: see the README)",
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    p.add_argument("--dry-run", action="store_true", help="only list the TaskActions that hold it")

    p = leaf(sub, "enqueue", "write_cmds:enqueue", "create a run described in a YAML file")
    p.add_argument("-f", "--filename", required=True, metavar="FILE", help="the run file ('-': stdin)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the TaskActions (kubectl YAML), create nothing"
    )
    return parser


_DEFAULTS = {"output": "table", "color": "auto", "verbose": 0}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse (UsageError on bad usage) and fill in the defaults of the suppressed common options."""
    args = build_parser().parse_args(argv)
    for key, value in _DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def _configure_logging(verbose: int) -> None:
    level = logging.ERROR if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose <= 0:
        # The local cluster's kubeconfig skips TLS verification; urllib3 would warn on every request.
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")


def _one_line(message: str) -> str:
    return " ".join(str(message).split()) or "failed"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    verbose = 0
    try:
        args = parse_args(argv)
        verbose = int(args.verbose or 0)
        _configure_logging(verbose)
        from taskaction_operator.cli.context import Context

        ctx = Context(args)
        module, _, name = str(args.handler).partition(":")
        handler = getattr(importlib.import_module(f"taskaction_operator.cli.{module}"), name)
        if inspect.iscoroutinefunction(handler):
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
    from taskaction_operator.client.actions_client import ActionsClientError
    from taskaction_operator.client.run_file import RunFileError
    from taskaction_operator.client.validate import InvalidActionError
    from taskaction_operator.k8s.errors import KubeError
    from taskaction_operator.repo import NotFoundError, RepoError

    if isinstance(exc, UsageError | InvalidActionError | RunFileError):
        return str(exc), 2
    if isinstance(exc, CommandFailed | ActionsClientError | NotFoundError):
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
        traceback.print_exc()
    sys.stderr.write(f"{PROG}: error: {_one_line(message)}\n")
    return code
