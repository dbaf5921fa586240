"""Shell completion (bash, zsh, fish) through argcomplete's protocol.

The shell's completion function runs ``taskaction-operator`` itself with ``_ARGCOMPLETE=1`` and the
command line in ``COMP_LINE``/``COMP_POINT``; :func:`complete_and_exit` answers on file descriptor 8
and exits before any command runs. Subcommands and options come from the argument parser; RUN and
ACTION arguments from the database, found as every command finds it (``--database-url`` or
``TASKACTION_DATABASE_URL``, the config file, the checkout's ``.local/db/dsn``), in the project and
domain given on the line or by default. A database that does not answer within
:data:`LOOKUP_TIMEOUT` seconds completes nothing rather than hanging the shell.

``taskaction-operator completion bash|zsh|fish`` prints the script to install.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from taskaction_operator.cli.context import Context

PROG = "taskaction-operator"
SHELLS = ("bash", "zsh", "fish")
#: Seconds a completion may spend reading the database (connecting included).
LOOKUP_TIMEOUT = 3.0
#: Most names offered for one completion.
MAX_NAMES = 200

Completer = Callable[..., list[str]]


def requested(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether this process was started by a shell's completion function."""
    return "_ARGCOMPLETE" in env


def complete_and_exit(parser: argparse.ArgumentParser) -> NoReturn:
    """Answer the shell's completion request for ``parser`` and exit (argcomplete's protocol)."""
    import argcomplete

    attach_completers(parser)
    argcomplete.autocomplete(parser, always_complete_options=False)  # options once "-" is typed
    sys.exit(0)  # autocomplete exits itself when it answers; here only if the request was malformed


def attach_completers(parser: argparse.ArgumentParser) -> None:
    """Dynamic completers on every RUN and ACTION argument and on ``--project``, wherever declared."""
    positional: dict[str, Completer] = {"run": complete_runs, "action": complete_actions}
    for action in _all_actions(parser):
        completer = complete_projects if action.dest == "project" else positional.get(action.dest)
        if completer is not None and (action.dest == "project") == bool(action.option_strings):
            action.completer = completer  # type: ignore[attr-defined]  # argcomplete's attribute


def _all_actions(parser: argparse.ArgumentParser) -> Iterable[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_actions(sub)


# --- the completers (argcomplete calls them with the line parsed so far) ------------------------------
def complete_runs(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    return _lookup(parsed_args, lambda ctx: _run_names(ctx, prefix))


def complete_actions(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    run = getattr(parsed_args, "run", None)
    if not run:
        return []
    return _lookup(parsed_args, lambda ctx: _action_names(ctx, run, prefix))


def complete_projects(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    return _lookup(parsed_args, lambda ctx: _projects(ctx, prefix))


def _lookup(parsed_args: argparse.Namespace, read: Callable[[Context], Any]) -> list[str]:
    """``read(ctx)`` against the database, or [] when there is none, it fails or it is too slow (a
    completion never prints an error: the shell would show it in the middle of the line)."""
    from taskaction_operator.cli.context import Context

    ctx = Context(parsed_args)
    try:
        ctx.database_url  # noqa: B018  # raises UsageError when there is none
    except Exception:
        return []

    async def go() -> list[str]:
        try:
            return list(await asyncio.wait_for(read(ctx), LOOKUP_TIMEOUT))
        finally:
            await ctx.aclose()

    try:
        return asyncio.run(go())
    except Exception:
        return []


async def _newest_roots(ctx: Context, filters: list[Any]) -> list[Any]:
    """The newest runs' root actions that pass ``filters`` (at most ``MAX_NAMES``)."""
    from taskaction_operator.repo import ListActionsRequest, SortBy

    repo = await ctx.repo()
    page = await repo.list_actions(
        ListActionsRequest(
            roots_only=True,
            filters=filters,
            sort_by=(SortBy("created_at", descending=True),),
            limit=MAX_NAMES,
        )
    )
    return list(page.actions)


async def _run_names(ctx: Context, prefix: str) -> list[str]:
    from taskaction_operator.repo import Filter, FilterOp

    filters = [
        Filter.of(k, FilterOp.EQUAL, v) for k, v in (("project", ctx.project), ("domain", ctx.domain)) if v
    ]
    if prefix:
        filters.append(Filter.of("run_name", FilterOp.CONTAINS, prefix))
    names = dict.fromkeys(a.run_name for a in await _newest_roots(ctx, filters))  # newest first, once each
    return [n for n in names if n.startswith(prefix)]


async def _action_names(ctx: Context, run: str, prefix: str) -> list[str]:
    run_id = ctx.run_id(run)
    repo = await ctx.repo()
    return [a.name for a in await repo.list_run_actions(run_id) if a.name.startswith(prefix)]


async def _projects(ctx: Context, prefix: str) -> list[str]:
    from taskaction_operator.repo import Filter, FilterOp

    filters = [Filter.of("project", FilterOp.CONTAINS, prefix)] if prefix else []
    names = dict.fromkeys(a.project for a in await _newest_roots(ctx, filters))
    return [n for n in names if n.startswith(prefix)]


# --- ``taskaction-operator completion SHELL`` ---------------------------------------------------------
def script(shell: str) -> str:
    """The completion script for ``shell`` (argcomplete's, registered for this program's name)."""
    from argcomplete.shell_integration import shellcode

    return str(shellcode([PROG], shell=shell))


def completion(ctx: Context) -> int:
    sys.stdout.write(script(ctx.args.shell))
    return 0
