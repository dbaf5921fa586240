"""Retention: finished runs deleted (or counted) in bounded transactions, with what went.

One pass over the runs in primary-key order, ``runs_per_transaction`` roots looked at per
transaction (see :mod:`.sql.prune` for what is deleted and what stays): each transaction is short,
locks only what it deletes, and skips what the recorder holds, so the recorder never waits on it for
long. Runs that stay (unfinished, recent, being written) are looked at once per pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from taskaction_operator.repo.database import Database
from taskaction_operator.repo.errors import InvalidArgumentError
from taskaction_operator.repo.sql.keys import RUN_KEY
from taskaction_operator.repo.sql.prune import prune_statement

__all__ = ["RUNS_PER_TRANSACTION", "PruneOptions", "PruneResult", "prune_runs"]

#: Roots looked at per transaction (each with its whole tree).
RUNS_PER_TRANSACTION = 100


@dataclass(slots=True)
class PruneResult:
    """What a pass deleted (or, dry run, would delete): runs, their actions, their events."""

    runs: int = 0
    actions: int = 0
    events: int = 0
    scanned: int = 0
    transactions: int = 0
    dry_run: bool = False

    def add(self, scanned: int, runs: int, actions: int, events: int) -> None:
        self.scanned += scanned
        self.runs += runs
        self.actions += actions
        self.events += events


class PruneOptions(TypedDict, total=False):
    """What a pass prunes and how: ``project``/``domain`` (empty: every one), ``dry_run`` (count
    only), ``runs_per_transaction`` (:data:`RUNS_PER_TRANSACTION`), ``on_transaction`` (sees the
    running totals after each transaction: progress)."""

    project: str
    domain: str
    dry_run: bool
    runs_per_transaction: int
    on_transaction: Callable[[PruneResult], None] | None


async def prune_runs(db: Database, ended_before: datetime, **options: Unpack[PruneOptions]) -> PruneResult:
    """One pass: delete every finished run (of the project and domain, if given) whose every action
    ended before ``ended_before``; see :class:`PruneOptions`."""
    project, domain = options.get("project", ""), options.get("domain", "")
    dry_run = options.get("dry_run", False)
    runs_per_transaction = options.get("runs_per_transaction", RUNS_PER_TRANSACTION)
    on_transaction = options.get("on_transaction")
    if ended_before.tzinfo is None:
        raise InvalidArgumentError(f"ended_before must be timezone-aware, got naive {ended_before!r}")
    if runs_per_transaction < 1:
        raise InvalidArgumentError(f"runs_per_transaction must be at least 1, not {runs_per_transaction}")
    result = PruneResult(dry_run=dry_run)
    params: dict[str, Any] = {"cutoff": ended_before, "limit": runs_per_transaction}
    if project:
        params["project"] = project
    if domain:
        params["domain"] = domain
    after = False
    while True:
        query = prune_statement(project=bool(project), domain=bool(domain), after=after, dry_run=dry_run)
        rows = await db.write_one(query, params)
        result.transactions += 1
        if not rows:
            return result
        *last, scanned, runs, actions, events = rows[0]
        result.add(int(scanned), int(runs), int(actions), int(events))
        if on_transaction is not None:
            on_transaction(result)
        if scanned < runs_per_transaction:
            return result
        params.update({f"after_{name}": value for name, value in zip(RUN_KEY, last, strict=True)})
        # (a statement whose filters fix the project, or project and domain, reads only the rest)
        after = True
