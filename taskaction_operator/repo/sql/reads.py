"""The SELECTs of the read methods of :class:`~taskaction_operator.repo.ActionRepo` (run through
SQLAlchemy, whose compiled-statement cache keeps the constant ones prepared).

Each is upstream's query (runs/repository/impl/action.go: the function named beside it), on the same
columns and in the same order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, select, tuple_

from taskaction_operator.repo.schema import action_events, action_states, actions
from taskaction_operator.repo.sql.keys import by_pk, by_run_root, is_root, pk_matches

__all__ = [
    "GET_ACTION",
    "GET_RUN",
    "GET_STATE",
    "LATEST_EVENT",
    "LIST_EVENTS",
    "LIST_EVENTS_SINCE",
    "PENDING_ABORTS",
    "ROOT_ACTIONS_DEFAULT_LIMIT",
    "RUNS_PAGE",
    "root_actions",
    "runs_updated_since",
]

_EVENTS = action_events.c

#: ListRootActions' limit when given one ≤ 0.
ROOT_ACTIONS_DEFAULT_LIMIT = 1000
#: Rows per page of :func:`runs_updated_since`.
RUNS_PAGE = 1000

#: An action's row with its state string last (ours: ``taskaction_action_states``; NULL if never set).
_WITH_STATE = actions.outerjoin(action_states, pk_matches(action_states, actions))
#: GetAction: the row by primary key (and its state).
GET_ACTION = select(*actions.c, action_states.c.state).select_from(_WITH_STATE).where(by_pk(actions))
#: GetRun: the run's root action (and its state).
GET_RUN = (
    select(*actions.c, action_states.c.state).select_from(_WITH_STATE).where(by_run_root(actions)).limit(1)
)
#: GetActionState: one row if the action exists, its state NULL if never set.
GET_STATE = select(action_states.c.state).select_from(_WITH_STATE).where(by_pk(actions))
#: ListPendingAborts, oldest request first (upstream: unordered).
PENDING_ABORTS = (
    select(actions).where(actions.c.abort_requested_at.is_not(None)).order_by(actions.c.abort_requested_at)
)
#: ListEvents: ordered by attempt, phase, version.
LIST_EVENTS = (
    select(action_events)
    .where(by_pk(action_events))
    .order_by(_EVENTS.attempt, _EVENTS.phase, _EVENTS.version)
    .limit(bindparam("limit"))
)
#: ListEventsSince: updated strictly after ``since``.
LIST_EVENTS_SINCE = (
    select(action_events)
    .where(
        by_pk(action_events),
        _EVENTS.attempt == bindparam("attempt"),
        _EVENTS.updated_at > bindparam("since"),
    )
    .order_by(_EVENTS.updated_at, _EVENTS.attempt, _EVENTS.phase, _EVENTS.version)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
#: GetLatestEventByAttempt: the highest phase, then version.
LATEST_EVENT = (
    select(action_events)
    .where(by_pk(action_events), _EVENTS.attempt == bindparam("attempt"))
    .order_by(_EVENTS.phase.desc(), _EVENTS.version.desc())
    .limit(1)
)


def root_actions(
    project: str, domain: str, start: datetime | None, end: datetime | None, limit: int
) -> Select[Any]:
    """ListRootActions: runs newest first; empty project/domain match all, both bounds inclusive,
    ``limit`` ≤ 0 means :data:`ROOT_ACTIONS_DEFAULT_LIMIT`."""
    c = actions.c
    stmt = select(actions).where(is_root(actions))
    if project:
        stmt = stmt.where(c.project == project)
    if domain:
        stmt = stmt.where(c.domain == domain)
    if start is not None:
        stmt = stmt.where(c.created_at >= start)
    if end is not None:
        stmt = stmt.where(c.created_at <= end)
    return stmt.order_by(c.created_at.desc()).limit(limit if limit > 0 else ROOT_ACTIONS_DEFAULT_LIMIT)


def runs_updated_since(since: datetime, after: tuple[Any, ...] | None, limit: int) -> Select[Any]:
    """Ours (the all-runs watch's full re-read): one page of the roots updated at or after ``since``,
    keyset-paged on ``(updated_at, project, domain, run_name)`` after the row ``after``."""
    c = actions.c
    page_key = (c.updated_at, c.project, c.domain, c.run_name)
    stmt = select(actions).where(is_root(actions), c.updated_at >= since)
    if after is not None:
        stmt = stmt.where(tuple_(*page_key) > tuple_(*after))
    return stmt.order_by(*page_key).limit(limit)
