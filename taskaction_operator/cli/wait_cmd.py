"""``runs wait RUN`` (and ``enqueue --wait``): wait quietly until the run is terminal, then report it
for CI: a summary, ``--junit FILE`` (JUnit XML, one testcase per action), ``--github`` (workflow
annotations), and the exit code of its outcome (0 SUCCEEDED, 3 FAILED, 4 ABORTED, 5 TIMED_OUT).

When the deadline passes first, the report is still written (unfinished actions skipped) and the
command exits 1.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from taskaction_operator.cli.context import CommandFailed, Context
from taskaction_operator.cli.follow import follow_run, outcome_code, summary
from taskaction_operator.cli.junit import github_annotations, junit_xml
from taskaction_operator.cli.render import action_dict, dump, tree_dict, use_colour
from taskaction_operator.model import RunId
from taskaction_operator.repo import Action


async def runs_wait(ctx: Context) -> int:
    return await wait_and_report(ctx, ctx.run_id(ctx.args.run))


async def wait_and_report(ctx: Context, run_id: RunId) -> int:
    a = ctx.args
    state: dict[str, Action] = {}
    try:
        root, _ = await follow_run(ctx.records, run_id, float(a.timeout), lambda _s, _c: None, state)
    except CommandFailed:
        if state:  # what was seen so far is still worth a report
            await report(ctx, run_id, list(state.values()))
        raise
    await report(ctx, run_id, list(state.values()))
    if a.output in ("json", "yaml"):
        dump({"run": action_dict(root), "actions": tree_dict(list(state.values()))}, a.output)
    elif a.output == "name":
        print(f"run/{run_id.name}")
    else:
        print(summary(run_id, root, use_colour(a.color, env=ctx.env)))
    return outcome_code(root)


async def report(ctx: Context, run_id: RunId, actions: list[Action]) -> None:
    a = ctx.args
    if not (a.junit or a.github):
        return
    errors = await (await ctx.records()).last_errors(run_id, actions)
    if a.junit:
        try:
            await asyncio.to_thread(Path(a.junit).write_bytes, junit_xml(run_id, actions, errors))
        except OSError as exc:
            raise CommandFailed(f"--junit {a.junit}: cannot write: {exc.strerror or exc}") from None
    if a.github:
        for line in github_annotations(run_id, actions, errors):
            print(line)
        sys.stdout.flush()
