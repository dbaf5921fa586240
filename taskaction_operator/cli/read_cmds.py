"""Read commands: ``runs list|get|tree|watch``, ``actions get``, ``events`` — all from the database.

They read what the operator recorded (PostgreSQL), not the cluster, so they also show runs whose
TaskActions are long gone. ``runs watch`` follows the repository's LISTEN/NOTIFY watch: it subscribes
first, then reads the snapshot, so no update between the two is missed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime

import yaml

from taskaction_operator.cli.context import CommandFailed, Context, UsageError
from taskaction_operator.cli.render import (
    action_dict,
    dump,
    duration_cell,
    event_dict,
    human_duration,
    paint,
    phase_colour,
    phase_name,
    table,
    tree_dict,
    tree_table,
    use_colour,
)
from taskaction_operator.model import ActionPhase, RunId
from taskaction_operator.repo import (
    Action,
    ActionRepo,
    Filter,
    FilterOp,
    ListActionsRequest,
    NotFoundError,
    SortBy,
)


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


async def _get_run(repo: ActionRepo, run_id: RunId) -> Action:
    try:
        return await repo.get_run(run_id)
    except NotFoundError:
        raise CommandFailed(f"run {run_id} not found") from None


RUN_HEADERS = ("RUN", "PROJECT", "DOMAIN", "PHASE", "TASK", "ATTEMPTS", "CREATED", "DURATION")


def _run_rows(runs: list[Action]) -> tuple[list[list[str]], list[list[str | None]]]:
    rows, colours = [], []
    for r in runs:
        phase = phase_name(r.phase)
        created = r.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if r.created_at else "-"
        rows.append(
            [
                r.run_name,
                r.project,
                r.domain,
                phase,
                r.task_short_name or r.function_name or "-",
                str(r.attempts),
                created,
                duration_cell(r),
            ]
        )
        colours.append([None, None, None, phase_colour(phase), None, None, None, None])
    return rows, colours


# --- runs list / get / tree ----------------------------------------------------------------------
async def runs_list(ctx: Context) -> int:
    a = ctx.args
    filters = []
    if ctx.project:
        filters.append(Filter.of("project", FilterOp.EQUAL, ctx.project))
    if ctx.domain:
        filters.append(Filter.of("domain", FilterOp.EQUAL, ctx.domain))
    if a.phase:
        filters.append(Filter.of("phase", FilterOp.VALUE_IN, *(int(p) for p in parse_phases(a.phase))))
    if a.since:
        filters.append(Filter.of("created_at", FilterOp.GREATER_THAN_OR_EQUAL, a.since))
    if a.until:
        filters.append(Filter.of("created_at", FilterOp.LESS_THAN_OR_EQUAL, a.until))
    repo = await ctx.repo()
    runs: list[Action] = []
    offset = 0
    while len(runs) < a.limit:
        page = await repo.list_actions(
            ListActionsRequest(
                roots_only=True,
                filters=filters,
                sort_by=(SortBy("created_at", descending=True),),
                limit=min(200, a.limit - len(runs)),
                offset=offset,
            )
        )
        runs += page.actions
        if not page.has_more:
            break
        offset += len(page.actions)
    if a.output == "table":
        if not runs:
            print("No runs found.", file=sys.stderr)
            return 0
        rows, colours = _run_rows(runs)
        sys.stdout.write(table(RUN_HEADERS, rows, colour=_colour(ctx), colours=colours))
    else:
        dump({"items": [action_dict(r) for r in runs]}, a.output)
    return 0


async def runs_get(ctx: Context) -> int:
    run_id = ctx.run_id(ctx.args.run)
    run = await _get_run(await ctx.repo(), run_id)
    if ctx.args.output == "table":
        rows, colours = _run_rows([run])
        sys.stdout.write(table(RUN_HEADERS, rows, colour=_colour(ctx), colours=colours))
        if run.abort_reason:
            print(f"abort reason: {run.abort_reason}")
    else:
        dump(action_dict(run), ctx.args.output)
    return 0


async def runs_tree(ctx: Context) -> int:
    run_id = ctx.run_id(ctx.args.run)
    repo = await ctx.repo()
    await _get_run(repo, run_id)
    actions = await repo.list_run_actions(run_id)
    if ctx.args.output == "table":
        sys.stdout.write(tree_table(actions, colour=_colour(ctx)))
    else:
        dump({"run": str(run_id), "actions": tree_dict(actions)}, ctx.args.output)
    return 0


# --- runs watch ----------------------------------------------------------------------------------
#: A waiting command's exit code by the run's outcome (1 and 2 stay "the command failed" and "bad
#: usage"): CI reads the outcome from it.
OUTCOME_CODES = {
    ActionPhase.SUCCEEDED: 0,
    ActionPhase.FAILED: 3,
    ActionPhase.ABORTED: 4,
    ActionPhase.TIMED_OUT: 5,
}


async def runs_watch(ctx: Context) -> int:
    """Follow the run until its root is terminal (exit by its outcome: :data:`OUTCOME_CODES`) or the
    deadline passes (exit 1)."""
    run_id = ctx.run_id(ctx.args.run)
    timeout = float(ctx.args.timeout)
    repo = await ctx.repo()
    fmt = ctx.args.output
    colour = _colour(ctx)
    redraw = fmt == "table" and sys.stdout.isatty()
    state: dict[str, Action] = {}
    drawn = 0

    def show(changed: list[Action]) -> None:
        nonlocal drawn
        if redraw:
            if drawn:
                sys.stdout.write(f"\x1b[{drawn}F\x1b[J")
            text = tree_table(list(state.values()), colour=colour)
            sys.stdout.write(text)
            drawn = text.count("\n")
        else:
            for a in changed:
                emit_change(a, fmt, colour)
        sys.stdout.flush()

    async with repo.watch_all_action_updates(run_id) as sub:  # subscribe first, then the snapshot
        root = await _get_run(repo, run_id)
        for a in await repo.list_run_actions(run_id):
            state[a.name] = a
        show(sorted(state.values(), key=lambda a: (a.created_at or datetime.min.replace(tzinfo=UTC), a.name)))
        root = state.get(root.name, root)
        try:
            async with asyncio.timeout(timeout):
                while not ActionPhase(root.phase).is_terminal():
                    try:
                        update = await anext(sub)
                    except StopAsyncIteration:
                        raise CommandFailed(f"the database watch of run {run_id} ended") from None
                    old = state.get(update.name)
                    state[update.name] = update
                    if update.parent_action_name is None:
                        root = update
                    if old is None or (old.phase, old.attempts, old.ended_at) != (
                        update.phase,
                        update.attempts,
                        update.ended_at,
                    ):
                        show([update])
        except TimeoutError:
            raise CommandFailed(
                f"timed out after {human_duration(timeout * 1000)} waiting for run {run_id} "
                f"(phase {phase_name(root.phase)})"
            ) from None
    if fmt == "table":
        summary = f"run {run_id.name} {phase_name(root.phase)} after {human_duration(root.duration_ms)}"
        print(paint(summary, phase_colour(phase_name(root.phase)), colour))
    return OUTCOME_CODES.get(ActionPhase(root.phase), 0)


def emit_change(a: Action, fmt: str, colour: bool) -> None:
    if fmt == "json":
        print(json.dumps(action_dict(a)))
    elif fmt == "yaml":
        sys.stdout.write("---\n" + yaml.safe_dump(action_dict(a), sort_keys=False))
    else:
        when = datetime.now(UTC).strftime("%H:%M:%S")
        phase = phase_name(a.phase)
        print(
            f"{when}  {a.name:<12} {paint(phase, phase_colour(phase), colour):<10}  attempt {a.attempts}"
            f"  {duration_cell(a)}"
        )


# --- actions get / events ------------------------------------------------------------------------
async def actions_get(ctx: Context) -> int:
    action_id = ctx.action_id(ctx.args.run, ctx.args.action)
    try:
        action = await (await ctx.repo()).get_action(action_id)
    except NotFoundError:
        raise CommandFailed(f"action {action_id} not found") from None
    if ctx.args.output == "table":
        phase = phase_name(action.phase)
        row = [
            action.name,
            action.parent_action_name or "-",
            phase,
            str(action.attempts),
            duration_cell(action),
            action.task_short_name or action.function_name or "-",
        ]
        sys.stdout.write(
            table(
                ("ACTION", "PARENT", "PHASE", "ATTEMPTS", "DURATION", "TASK"),
                [row],
                colour=_colour(ctx),
                colours=[[None, None, phase_colour(phase), None, None, None]],
            )
        )
    else:
        dump(action_dict(action), ctx.args.output)
    return 0


async def events(ctx: Context) -> int:
    a = ctx.args
    action_id = ctx.action_id(a.run, a.action)
    repo = await ctx.repo()
    try:
        await repo.get_action(action_id)
    except NotFoundError:
        raise CommandFailed(f"action {action_id} not found") from None
    if a.since:
        attempt = a.attempt or (await repo.get_action(action_id)).attempts or 1
        found = await repo.list_events_since(action_id, attempt, a.since, limit=a.limit)
    else:
        found = await repo.list_events(action_id, limit=a.limit)
        if a.attempt is not None:
            found = [e for e in found if e.attempt == a.attempt]
    items = [event_dict(e) for e in found]
    if a.output != "table":
        dump({"items": items}, a.output)
        return 0
    if not items:
        print("No events found.", file=sys.stderr)
        return 0
    rows = [
        [
            str(e["attempt"]),
            e["phase"],
            str(e["version"]),
            e["updatedAt"] or "-",
            e["errorKind"] or "",
            e["errorMessage"] or "",
        ]
        for e in items
    ]
    colours = [[None, phase_colour(e["phase"]), None, None, None, None] for e in items]
    sys.stdout.write(
        table(
            ("ATTEMPT", "PHASE", "VERSION", "UPDATED", "ERROR KIND", "ERROR"),
            rows,
            colour=_colour(ctx),
            colours=colours,
        )
    )
    return 0
