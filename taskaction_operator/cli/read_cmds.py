"""Read commands: ``runs list|get|tree|watch``, ``actions get``, ``events``.

They read what the operator recorded, not the cluster, so they also show runs whose TaskActions are
long gone: from the database, or with ``--server`` through Flyte's RunService (:mod:`.records`).
``runs watch`` subscribes first, then reads the snapshot, so no update between the two is missed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import yaml

from taskaction_operator.cli.columns import action_columns, event_columns, run_columns
from taskaction_operator.cli.context import CommandFailed, Context, UsageError
from taskaction_operator.cli.follow import follow_run, outcome_code, summary
from taskaction_operator.cli.live import LiveView
from taskaction_operator.cli.records import Records, RunQuery
from taskaction_operator.cli.render import (
    action_dict,
    dump,
    duration_cell,
    event_dict,
    phase_colour,
    phase_name,
    tree_dict,
    tree_order,
    tree_table,
    use_colour,
)
from taskaction_operator.cli.tables import Column, Style, columns_table, paint
from taskaction_operator.model import ActionPhase, RunId
from taskaction_operator.repo import Action, NotFoundError

T = TypeVar("T")


def parse_phases(value: str) -> list[ActionPhase]:
    phases = []
    for raw in value.split(","):
        try:
            phases.append(ActionPhase.from_protobuf(raw.strip().upper()))
        except ValueError:
            names = ", ".join(p.name for p in ActionPhase if p is not ActionPhase.UNSPECIFIED)
            raise UsageError(f"unknown phase {raw.strip()!r} (one of {names})") from None
    return phases


def _colour(ctx: Context) -> bool:
    return use_colour(getattr(ctx.args, "color", "auto"), env=ctx.env)


async def _get_run(records: Records, run_id: RunId) -> Action:
    try:
        return await records.get_run(run_id)
    except NotFoundError:
        raise CommandFailed(f"run {run_id} not found") from None


def _style(ctx: Context) -> Style:
    return Style(wide=ctx.args.output == "wide", headers=not ctx.args.no_headers, colour=_colour(ctx))


def show(
    ctx: Context,
    items: Sequence[T],
    columns: Sequence[Column[T]],
    name: Callable[[T], str],
    structured: Callable[[], Any],
) -> None:
    """``items`` in the chosen format: a table (``wide``: more columns), ``kind/name`` lines, or the
    ``structured`` value as JSON or YAML."""
    fmt = ctx.args.output
    if fmt in ("json", "yaml"):
        dump(structured(), fmt)
    elif fmt == "name":
        sys.stdout.write("".join(f"{name(item)}\n" for item in items))
    else:
        sys.stdout.write(columns_table(items, columns, _style(ctx)))


def run_name(a: Action) -> str:
    return f"run/{a.run_name}"


def action_name(a: Action) -> str:
    return f"action/{a.run_name}/{a.name}"


# --- runs list / get / tree ----------------------------------------------------------------------
async def runs_list(ctx: Context) -> int:
    a = ctx.args
    query = RunQuery(
        project=ctx.project,
        domain=ctx.domain,
        phases=parse_phases(a.phase) if a.phase else (),
        since=a.since,
        until=a.until,
        limit=a.limit,
    )
    runs = await (await ctx.records()).list_runs(query)
    if not runs and a.output in ("table", "wide"):
        print("No runs found.", file=sys.stderr)
        return 0
    show(ctx, runs, run_columns(), run_name, lambda: {"items": [action_dict(r) for r in runs]})
    return 0


async def runs_get(ctx: Context) -> int:
    run_id = ctx.run_id(ctx.args.run)
    run = await _get_run(await ctx.records(), run_id)
    show(ctx, [run], run_columns(), run_name, lambda: action_dict(run))
    if ctx.args.output in ("table", "wide") and run.abort_reason:
        print(f"abort reason: {run.abort_reason}")
    return 0


async def runs_tree(ctx: Context) -> int:
    run_id = ctx.run_id(ctx.args.run)
    try:
        actions = await (await ctx.records()).list_run_actions(run_id)
    except NotFoundError:
        raise CommandFailed(f"run {run_id} not found") from None
    if ctx.args.output in ("table", "wide"):
        sys.stdout.write(tree_table(actions, style=_style(ctx)))
    else:
        rows = [a for a, _prefix, _guide in tree_order(actions)]
        show(ctx, rows, [], action_name, lambda: {"run": str(run_id), "actions": tree_dict(actions)})
    return 0


# --- runs watch ----------------------------------------------------------------------------------
async def runs_watch(ctx: Context) -> int:
    """Follow the run until its root is terminal (exit by its outcome: :data:`OUTCOME_CODES`) or the
    deadline passes (exit 1): a live tree on a terminal, one line per change otherwise."""
    run_id = ctx.run_id(ctx.args.run)
    fmt = ctx.args.output
    colour = _colour(ctx)
    live = LiveView(sys.stdout) if fmt in ("table", "wide") and sys.stdout.isatty() else None
    style = _style(ctx)

    def on_change(state: dict[str, Action], changed: list[Action]) -> None:
        if live is not None:
            live.draw(tree_table(list(state.values()), style=style))
            return
        for a in changed:
            emit_change(a, fmt, colour)
        sys.stdout.flush()

    root, _state = await follow_run(ctx.records, run_id, float(ctx.args.timeout), on_change)
    if fmt in ("table", "wide"):
        print(summary(run_id, root, colour))
    return outcome_code(root)


def emit_change(a: Action, fmt: str, colour: bool) -> None:
    """One line per change; columns padded before they are painted, so colour never shifts them."""
    if fmt == "json":
        print(json.dumps(action_dict(a)))
    elif fmt == "yaml":
        sys.stdout.write("---\n" + yaml.safe_dump(action_dict(a), sort_keys=False))
    elif fmt == "name":
        print(action_name(a))
    else:
        when = datetime.now(UTC).strftime("%H:%M:%S")
        phase = phase_name(a.phase)
        print(
            f"{when}  {a.name:<12} {paint(f'{phase:<10}', phase_colour(phase), colour)}  attempt {a.attempts}"
            f"  {duration_cell(a)}"
        )


# --- actions get / events ------------------------------------------------------------------------
async def actions_get(ctx: Context) -> int:
    action_id = ctx.action_id(ctx.args.run, ctx.args.action)
    try:
        action = await (await ctx.records()).get_action(action_id)
    except NotFoundError:
        raise CommandFailed(f"action {action_id} not found") from None
    show(ctx, [action], action_columns(), action_name, lambda: action_dict(action))
    return 0


async def events(ctx: Context) -> int:
    a = ctx.args
    action_id = ctx.action_id(a.run, a.action)
    try:
        found = await (await ctx.records()).list_events(
            action_id, attempt=a.attempt, since=a.since, limit=a.limit
        )
    except NotFoundError:
        raise CommandFailed(f"action {action_id} not found") from None
    if not found and a.output in ("table", "wide"):
        print("No events found.", file=sys.stderr)
        return 0
    show(
        ctx,
        found,
        event_columns(),
        lambda e: f"event/{e.run_name}/{e.name}/{e.attempt}/{e.version}",
        lambda: {"items": [event_dict(e) for e in found]},
    )
    return 0
