"""Commands that change things: ``enqueue``, ``abort``, ``migrate``, and ``run`` (the operator itself).

``enqueue`` validates the whole run file before touching anything; ``abort`` only *records* the
request (``abort_run``/``abort_action`` in the database, or RunService's AbortRun/AbortAction with
``--server``), exactly like upstream's AbortRun: the operator's abort sweep deletes the TaskAction
and Kubernetes' garbage collector its subtree. ``--wait`` then follows that until the TaskAction is
gone and the row reads ABORTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import Any

import urllib3
import yaml

from taskaction_operator.cli.context import CommandFailed, Context, UsageError, env_with
from taskaction_operator.cli.records import Records, Unreachable
from taskaction_operator.cli.render import action_dict, dump, human_duration, phase_name
from taskaction_operator.cli.tables import table
from taskaction_operator.client.actions_client import ActionsClient
from taskaction_operator.client.names import InvalidActionError
from taskaction_operator.client.run_file import RunFileError, load_run_file, render_taskactions
from taskaction_operator.client.runs import CreateRunError, RunExistsError, create_run
from taskaction_operator.client.validate import action_id_of, action_kind, parent_name
from taskaction_operator.config import ConfigurationError, Settings
from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, is_recorded
from taskaction_operator.k8s.errors import KubeError
from taskaction_operator.model import ActionId, ActionPhase, RunSource, cr_name
from taskaction_operator.repo import (
    AlreadyFinishedError,
    NotFoundError,
    RepoError,
    TemporaryRepoError,
    head_revision,
    upgrade,
)

DEFAULT_ABORT_REASON = "User requested abort"  # upstream AbortRun's default


# --- enqueue -------------------------------------------------------------------------------------
async def enqueue(ctx: Context) -> int:
    a = ctx.args
    source = "<stdin>" if a.filename == "-" else a.filename
    text = sys.stdin.read() if a.filename == "-" else None
    try:
        rf = load_run_file(source, text=text, project=ctx.project, domain=ctx.domain)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None
    if a.dry_run:
        docs = render_taskactions(rf, namespace=getattr(a, "namespace", None) or "")
        if a.output == "json":
            dump({"apiVersion": "v1", "kind": "List", "items": docs}, "json")
        else:
            sys.stdout.write(
                yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=1 << 20)
            )
        return 0
    client = ctx.actions_client()
    repo = await ctx.repo()
    try:
        # Reach the cluster before writing anything: an unreachable API server changes nothing.
        row = await create_run(
            repo, client, rf.root, rf.run_spec, source=RunSource.CLI, ensure_namespace_first=True
        )
    except (RunExistsError, CreateRunError) as exc:
        raise CommandFailed(str(exc)) from None
    except InvalidActionError as exc:
        raise UsageError(str(exc)) from None
    created = [rf.root]
    for child in rf.children:
        try:
            # The RunSpec only bakes the run start time into the child's args here (children inherit
            # the rest from their parent); upstream's SDK enqueues children without one.
            await client.enqueue(child, rf.run_spec)
        except Exception as exc:
            done = ", ".join(c.action_id.name for c in created)
            raise CommandFailed(
                f"run {rf.run_id}: enqueued {done}; {child.action_id.name} failed: {exc}; the rest were not "
                f"enqueued (abort the run with: taskaction-operator abort {rf.run_id.name})"
            ) from None
        created.append(child)
    names = [
        (c.action_id.name, parent_name(c) or "-", action_kind(c), cr_name(action_id_of(c))) for c in created
    ]
    if a.output == "table":
        sys.stdout.write(table(("ACTION", "PARENT", "TYPE", "TASKACTION"), names))
        print(f"run {rf.run_id} enqueued in namespace {ctx.namespace}: {len(created)} TaskActions")
    else:
        dump(
            {
                "run": action_dict(row),
                "namespace": ctx.namespace,
                "taskActions": [
                    {"action": n, "parent": p if p != "-" else None, "type": t, "name": cr}
                    for n, p, t, cr in names
                ],
            },
            a.output,
        )
    if a.wait:
        from taskaction_operator.cli.wait_cmd import wait_and_report

        return await wait_and_report(ctx, rf.run_id)
    return 0


# --- abort ---------------------------------------------------------------------------------------
async def abort(ctx: Context) -> int:
    a = ctx.args
    target = ctx.action_id(a.run, a.action) if a.action else ctx.run_id(a.run).root
    what = f"action {target}" if a.action else f"run {target.run}"
    reason = a.reason or DEFAULT_ABORT_REASON
    client = ctx.actions_client() if a.wait else None  # load the kubeconfig before changing anything
    records = await ctx.records()
    try:
        await records.abort(target, reason, whole_run=not a.action, force=a.force)
    except NotFoundError:
        raise CommandFailed(f"{what} not found") from None
    except AlreadyFinishedError as exc:
        raise CommandFailed(f"{what} already finished ({exc.phase_name}); --force aborts it anyway") from None
    if client is None:
        print(f"abort of {what} requested ({reason}); the operator's sweep deletes its TaskAction")
        return 0
    await wait_aborted(records, client, target, what, a.timeout)
    return 0


async def wait_aborted(
    records: Records, client: ActionsClient, target: ActionId, what: str, limit: float
) -> None:
    """Poll until the TaskAction is gone and the row is ABORTED, showing progress; CommandFailed after
    ``limit`` seconds."""
    name = cr_name(target)
    progress = _Progress(sys.stdout)
    start = time.monotonic()
    status = "not read yet"
    while True:
        elapsed = time.monotonic() - start
        try:
            obj = await client.kube.get_taskaction(client.namespace, name)
            row = await records.get_action(target)
        except (TemporaryRepoError, Unreachable, KubeError, OSError, urllib3.exceptions.HTTPError) as exc:
            # A database restart or an API server hiccup is not the end of the wait: retry to the deadline.
            progress.show(f"{status} (retrying: {type(exc).__name__})", elapsed)
            obj = row = None
        if row is not None:
            deleting = obj is not None and bool((obj.get("metadata") or {}).get("deletionTimestamp"))
            cr_state = "gone" if obj is None else "deleting" if deleting else "present"
            status = f"TaskAction {name} {cr_state}; row {phase_name(row.phase)}"
            if records.knows_abort_requests:
                pending = f"pending, {row.abort_attempt_count} attempts"
                status += f"; abort request {pending if row.abort_requested_at else 'done'}"
            progress.show(status, elapsed)
            if obj is None and ActionPhase(row.phase) is ActionPhase.ABORTED:
                progress.finish()
                print(f"{what} aborted in {human_duration(elapsed * 1000)}: {status}")
                return
        if elapsed >= limit:
            progress.finish()
            hint = " (is the operator running?)" if obj is not None else ""
            raise CommandFailed(
                f"timed out after {human_duration(limit * 1000)} waiting for the abort of "
                f"{what}: {status}{hint}"
            )
        await asyncio.sleep(min(0.5, max(0.05, limit - elapsed)))


class _Progress:
    """One status line: rewritten in place on a terminal, printed when it changes otherwise."""

    _SPIN = "|/-\\"

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = ""
        self.ticks = 0

    def show(self, status: str, elapsed: float) -> None:
        if self.tty:
            self.ticks += 1
            spin = self._SPIN[self.ticks % len(self._SPIN)]
            self.stream.write(f"\r\x1b[K{spin} {human_duration(elapsed * 1000)}  {status}")
            self.stream.flush()
        elif status != self.last:
            self.stream.write(f"waiting ({human_duration(elapsed * 1000)}): {status}\n")
            self.stream.flush()
        self.last = status

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


# --- migrate, run --------------------------------------------------------------------------------
async def migrate(ctx: Context) -> int:
    dsn = ctx.database_url
    try:
        done = await asyncio.to_thread(upgrade, dsn)
    except RepoError as exc:
        raise CommandFailed(f"migration failed: {exc}") from None
    if done.ahead:
        print(f"database schema at {done.after}, newer than this version's {head_revision()}: left as it is")
    elif done.applied:
        print(f"applied {', '.join(done.applied)} (was {done.before or 'empty'}, now at {done.after})")
    else:
        print(f"already at {done.after}")
    return 0


def run(ctx: Context) -> int:
    """Start the operator in this process (blocks until SIGINT/SIGTERM)."""
    a = ctx.args
    overrides: dict[str, Any] = {}
    with contextlib.suppress(UsageError):  # if none: Settings names the missing variable itself
        overrides["TASKACTION_DATABASE_URL"] = ctx.database_url
    if a.all_namespaces:
        overrides["TASKACTION_NAMESPACES"] = "*"
    elif getattr(a, "namespace", None):
        overrides["TASKACTION_NAMESPACES"] = a.namespace
    try:
        settings = Settings.from_env(env_with(overrides, ctx.env))
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    if getattr(a, "kubeconfig", None):
        os.environ["KUBECONFIG"] = a.kubeconfig  # kopf's login reads it
    from taskaction_operator.controller.main import (
        run_operator,  # lazily: kopf and the handlers load only here
    )

    run_operator(settings, verbose=int(a.verbose or 0))
    return 0


# --- release-guards -------------------------------------------------------------------------------
async def release_guards(ctx: Context) -> int:
    """Take the operator's record-guard finalizer off TaskActions (in -n NS, or -A every namespace).

    For uninstalling: with the operator gone nothing releases its guard, and deleting the CRD or a
    namespace waits on it forever. Objects whose end is not recorded are named: their record stays
    incomplete. ``--dry-run`` only lists.
    """
    a = ctx.args
    kube = ctx.kube()
    namespace = None if a.all_namespaces else ctx.namespace
    held: list[tuple[str, str, bool]] = []
    async for obj in kube.holding(RECORD_GUARD_FINALIZER, namespace):
        held.append((obj["metadata"]["namespace"], obj["metadata"]["name"], is_recorded(obj)))
    verb = "would release" if a.dry_run else "released"
    for ns, name, recorded in held:
        if not a.dry_run and not await kube.remove_finalizer(ns, name, RECORD_GUARD_FINALIZER):
            continue  # gone, or released meanwhile
        print(f"{verb} {ns}/{name}" + ("" if recorded else " (its end is not recorded)"))
    where = "every namespace" if namespace is None else f"namespace {namespace}"
    print(f"{len(held)} TaskAction(s) in {where} held the record guard" + (" (dry run)" if a.dry_run else ""))
    return 0
