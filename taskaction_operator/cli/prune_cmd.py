"""``prune``: retention. Deletes the finished runs whose every action ended longer ago than
``--older-than`` (actions, events and state rows together), in transactions of
``--runs-per-transaction`` runs that never wait on the recorder; ``--dry-run`` counts what would go.
The rules (what stays) are the repository's: :meth:`ActionRepo.prune_runs`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from taskaction_operator.cli.context import Context
from taskaction_operator.cli.render import dump
from taskaction_operator.cli.tables import timestamp


async def prune(ctx: Context) -> int:
    a = ctx.args
    cutoff = datetime.now(UTC) - timedelta(seconds=a.older_than)
    repo = await ctx.repo()
    result = await repo.prune_runs(
        cutoff,
        project=ctx.project,
        domain=ctx.domain,
        dry_run=a.dry_run,
        runs_per_transaction=a.runs_per_transaction,
    )
    scope = "/".join(part or "*" for part in (ctx.project, ctx.domain))
    if a.output in ("json", "yaml"):
        report = {
            "project": ctx.project or None,
            "domain": ctx.domain or None,
            "endedBefore": timestamp(cutoff),
            "dryRun": result.dry_run,
            "runs": result.runs,
            "actions": result.actions,
            "events": result.events,
            "runsExamined": result.scanned,
            "transactions": result.transactions,
        }
        dump(report, a.output)
        return 0
    verb = "would prune" if result.dry_run else "pruned"
    print(
        f"{verb} {result.runs} run(s) of {scope} ended before {timestamp(cutoff)}: {result.actions} "
        f"action(s), {result.events} event(s) ({result.scanned} run(s) examined, "
        f"{result.transactions} transaction(s))"
    )
    return 0
