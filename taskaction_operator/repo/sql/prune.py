"""The statement that prunes finished runs, one bounded transaction at a time (retention).

A run is its root action (no parent) and every action and event with its run key; our state rows
(``taskaction_action_states``) go with their actions (ON DELETE CASCADE). One statement per
transaction, in pieces:

* ``scanned``: the next ``limit`` roots after the cursor, in primary-key order (an index range scan:
  every call advances, so a run that must stay is looked at once per pass, never again and again);
* ``candidates``: those that are finished, not waiting on an abort, and ended before ``cutoff``;
* ``ready``: the candidates whose every action is so too, in the statement's snapshot (a run with
  any action still running, even under a finished root, is never locked, so the recorder never
  waits on the pruner for it), with their number of actions;
* ``locked``: every action of those, locked ``FOR UPDATE SKIP LOCKED`` (a row the recorder is
  writing is skipped, never waited for) and judged again as it is at the lock;
* ``prunable``: the runs whose every action is locked here and still done; the others stay, and
  are looked at again on the next pass;
* then the events and the actions of ``prunable`` are deleted (or, for a dry run, counted).

The result is one row: the last root scanned (the next cursor) and the counts; no row once nothing
is left to scan. An action that finished without ``ended_at`` counts as ended at its ``updated_at``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    delete,
    func,
    select,
    tuple_,
)

from taskaction_operator.model.phases import TERMINAL_PHASES
from taskaction_operator.repo.schema import action_events, actions
from taskaction_operator.repo.sql.compile import lit, phases_array, to_sql
from taskaction_operator.repo.sql.keys import RUN_KEY, is_root

__all__ = ["prune_statement"]

_TZ = DateTime(timezone=True)


def _same_run(table: Any, other: Any) -> ColumnElement[bool]:
    return and_(*(table.c[name] == other.c[name] for name in RUN_KEY))


def _done_before(table: Any) -> ColumnElement[bool]:
    """Finished, no abort pending, ended before ``cutoff``."""
    return and_(
        table.c.phase == any_(phases_array(TERMINAL_PHASES)),
        table.c.abort_requested_at.is_(None),
        func.coalesce(table.c.ended_at, table.c.updated_at) < bindparam("cutoff", type_=_TZ),
    )


def _count(cte: Any) -> Any:
    return select(func.count()).select_from(cte).scalar_subquery()


@cache
def prune_statement(*, project: bool, domain: bool, after: bool, dry_run: bool) -> str:
    """The psycopg SQL of one pruning transaction. Parameters: ``cutoff``, ``limit``, and as the flags
    say ``project``, ``domain``, and the cursor ``after_project``/``after_domain``/``after_run_name``
    (those of them not fixed by ``project``/``domain``).
    Returns one row (cursor's project, domain, run_name; scanned, runs, actions, events) or none."""
    a = actions
    where = [is_root(a)]
    if project:
        where.append(a.c.project == bindparam("project", type_=Text))
    if domain:
        where.append(a.c.domain == bindparam("domain", type_=Text))
    if after:
        # The cursor compares only the columns after those fixed by equality at the front of the
        # key: with both on the first column, PostgreSQL starts the index scan at the equality and
        # reads every entry before the cursor again (each transaction slower than the last).
        fixed = 2 if project and domain else 1 if project else 0
        rest = RUN_KEY[fixed:]
        cursor = [bindparam(f"after_{name}", type_=Text) for name in rest]
        where.append(tuple_(*(a.c[name] for name in rest)) > tuple_(*cursor))
    keys = [a.c[name] for name in RUN_KEY]
    scanned = (
        select(*keys, _done_before(a).label("eligible"))
        .where(*where)
        .order_by(*keys)
        .limit(bindparam("limit", type_=Integer))
        .cte("scanned")
    )
    candidates = select(*(scanned.c[n] for n in RUN_KEY)).where(scanned.c.eligible).cte("candidates")
    ready = (  # every action done, as the statement's snapshot has them: nothing is locked yet
        select(*keys, func.count().label("n"))
        .join(candidates, _same_run(a, candidates))
        .group_by(*keys)
        .having(func.bool_and(_done_before(a)))
        .cte("ready")
    )
    member_rows = select(*keys, _done_before(a).label("done")).join(ready, _same_run(a, ready))
    if not dry_run:  # re-read at the lock: a row changed since the snapshot is seen as it is now
        member_rows = member_rows.with_for_update(of=a, skip_locked=True)
    locked = member_rows.cte("locked")
    prunable = (
        select(*(locked.c[n] for n in RUN_KEY), ready.c.n)
        .join(ready, _same_run(locked, ready))
        .group_by(*(locked.c[n] for n in RUN_KEY), ready.c.n)
        .having(and_(func.bool_and(locked.c.done), func.count() == ready.c.n))
        .cte("prunable")
    )
    if dry_run:
        actions_count = select(func.coalesce(func.sum(prunable.c.n), lit(0))).scalar_subquery()
        events_count = (
            select(func.count())
            .select_from(action_events.join(prunable, _same_run(action_events, prunable)))
            .scalar_subquery()
        )
    else:
        one = lit(1)
        events_gone = delete(action_events).where(_same_run(action_events, prunable)).returning(one)
        actions_gone = delete(a).where(_same_run(a, prunable)).returning(one)
        actions_count, events_count = (
            _count(actions_gone.cte("deleted_actions")),
            _count(events_gone.cte("deleted_events")),
        )
    scanned_keys = [scanned.c[n] for n in RUN_KEY]
    last_cte = (
        select(*scanned_keys).order_by(*(c.desc() for c in scanned_keys)).limit(lit(1)).subquery("last")
    )
    stmt = select(
        *(last_cte.c[n] for n in RUN_KEY),
        _count(scanned).label("scanned"),
        _count(prunable).label("runs"),
        actions_count.label("actions"),
        events_count.label("events"),
    )
    return to_sql(stmt)
