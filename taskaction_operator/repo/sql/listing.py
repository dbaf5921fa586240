"""The SELECT of ``list_actions``, built from a :class:`~taskaction_operator.repo.ListActionsRequest`.

Pure query construction with many rules to get right (upstream runs/repository/impl/action.go:
ListActions, with impl/filters.go and impl/sorting.go): the filter operators, the two mutually
exclusive pagination modes (offset, or keyset on ``(created_at, name)``), the default order and
tiebreakers, the ``limit + 1`` probe for "has more", and the scope filters (including has-paused).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, literal, select, tuple_
from sqlalchemy.orm import aliased

from taskaction_operator.model import ActionPhase, ActionType
from taskaction_operator.repo.errors import InvalidArgumentError
from taskaction_operator.repo.listing import (
    KEYSET_SORT,
    Filter,
    FilterOp,
    ListActionsRequest,
    SortBy,
    check_column,
)
from taskaction_operator.repo.schema import ActionRecord, actions
from taskaction_operator.repo.sql.keys import is_root

__all__ = ["build_list_query"]

_INT_COLUMNS = frozenset({"phase", "action_type", "trigger_revision", "duration_ms"})
_TIME_COLUMNS = frozenset({"created_at", "updated_at", "ended_at"})
_LIKE_OPS = frozenset(
    {FilterOp.CONTAINS, FilterOp.ENDS_WITH, FilterOp.NOT_ENDS_WITH, FilterOp.CONTAINS_CASE_INSENSITIVE}
)
#: Upstream's order when none is given: non-terminal phases (smaller numbers) first.
_DEFAULT_SORT = (SortBy("phase"), SortBy("created_at", True), SortBy("run_name", True), SortBy("name", True))


def _column(name: str) -> ColumnElement[Any]:
    return actions.c[check_column(name)]


def _sortable(name: str) -> None:
    # ``name`` is not in upstream's allowlist, but the orders upstream builds itself (keyset,
    # default, tiebreakers) use it; :meth:`ListActionsRequest.from_proto` keeps clients to the list.
    if name != "name":
        _column(name)


def _coerce(name: str, value: Any) -> Any:
    try:
        if name in _INT_COLUMNS:
            if isinstance(value, str) and not value.lstrip("-").isdigit():
                enum_type = ActionPhase if name == "phase" else ActionType if name == "action_type" else None
                if enum_type is None:
                    raise ValueError(value)
                return int(enum_type.from_protobuf(value))
            return int(value)
        if name in _TIME_COLUMNS:
            if isinstance(value, datetime):
                return value
            return datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidArgumentError(f"{value!r} is not a valid value for {name}") from None
    return str(value)


def cast_bool(clause: Any) -> ColumnElement[bool]:
    """Comparisons on an untyped column are ``Any`` to mypy; they are boolean clauses."""
    return clause  # type: ignore[no-any-return]


def _filter_clause(f: Filter) -> ColumnElement[bool]:
    # DELIBERATE DIFFERENCE: filters upstream would send to PostgreSQL to fail there (LIKE on a number
    # or a time, several values for a scalar operator, a value of the wrong type) are refused here as
    # InvalidArgumentError, before any SQL runs.
    col = _column(f.field)
    if f.op in _LIKE_OPS and (f.field in _INT_COLUMNS or f.field in _TIME_COLUMNS):
        raise InvalidArgumentError(f"{f.op.name} applies to text columns, not {f.field}")
    if f.op is FilterOp.VALUE_IN:
        if not f.values:
            raise InvalidArgumentError(f"VALUE_IN on {f.field} needs at least one value")
        return col.in_([_coerce(f.field, v) for v in f.values])
    if len(f.values) != 1:
        raise InvalidArgumentError(f"{f.op.name} on {f.field} takes exactly one value, got {len(f.values)}")
    value = _coerce(f.field, f.values[0])
    # As upstream, LIKE patterns embed the value unescaped: % and _ in it act as wildcards.
    match f.op:
        case FilterOp.EQUAL:
            return cast_bool(col == value)
        case FilterOp.NOT_EQUAL:
            return cast_bool(col != value)
        case FilterOp.GREATER_THAN:
            return cast_bool(col > value)
        case FilterOp.GREATER_THAN_OR_EQUAL:
            return cast_bool(col >= value)
        case FilterOp.LESS_THAN:
            return cast_bool(col < value)
        case FilterOp.LESS_THAN_OR_EQUAL:
            return cast_bool(col <= value)
        case FilterOp.CONTAINS:
            return col.like(f"%{value}%")
        case FilterOp.ENDS_WITH:
            return col.like(f"%{value}")
        case FilterOp.NOT_ENDS_WITH:
            return col.not_like(f"%{value}")
        case FilterOp.CONTAINS_CASE_INSENSITIVE:
            return func.lower(col).like(func.lower(literal(f"%{value}%")))
    raise InvalidArgumentError(f"unsupported filter operator {f.op!r}")  # pragma: no cover


def _scope_clauses(req: ListActionsRequest) -> list[ColumnElement[bool]]:
    c = actions.c
    clauses: list[ColumnElement[bool]] = []
    if req.roots_only:
        clauses.append(is_root(actions))
    if req.project is not None:
        clauses += [c.project == req.project[0], c.domain == req.project[1]]
    if req.trigger is not None:
        t = req.trigger
        clauses += [c.project == t.project, c.domain == t.domain]
        clauses += [c.trigger_task_name == t.task_name, c.trigger_name == t.trigger_name]
    if req.task is not None:
        k = req.task
        clauses += [c.task_project == k.project, c.task_domain == k.domain, c.task_name == k.name]
        if k.version is not None:
            clauses.append(c.task_version == k.version)
    if req.run is not None:
        clauses += [c.project == req.run.project, c.domain == req.run.domain, c.run_name == req.run.name]
    if req.has_paused_action:
        a2 = aliased(ActionRecord, name="a2")
        clauses.append(
            exists().where(
                a2.project == c.project,
                a2.domain == c.domain,
                a2.run_name == c.run_name,
                a2.phase == int(ActionPhase.PAUSED),
            )
        )
    return clauses


def build_list_query(req: ListActionsRequest) -> tuple[Select[Any], int]:
    """The SELECT for ``req`` (with ``LIMIT limit + 1``) and the page size it was built for."""
    limit = req.effective_limit
    if req.offset < 0:
        raise InvalidArgumentError(f"offset must not be negative, got {req.offset}")
    where = _scope_clauses(req) + [_filter_clause(f) for f in req.filters]
    sort = tuple(req.sort_by)
    for s in sort:
        _sortable(s.field)
    if req.after is not None:
        created_at, name = req.after
        if not name or created_at is None:
            raise InvalidArgumentError("keyset pagination needs both created_at and name of the last row")
        if req.offset:
            raise InvalidArgumentError("keyset and offset pagination are mutually exclusive")
        if sort != KEYSET_SORT:
            raise InvalidArgumentError(
                "keyset pagination requires sorting by exactly created_at ASC, name ASC"
            )
        where.append(
            tuple_(actions.c.created_at, actions.c.name) > tuple_(literal(created_at), literal(name))
        )
    elif not sort:
        sort = _DEFAULT_SORT
    else:
        # Offset mode: make the order total so that pages neither repeat nor skip rows.
        present = {s.field for s in sort}
        sort += tuple(SortBy(f) for f in ("run_name", "name") if f not in present)
    order = [actions.c[s.field].desc() if s.descending else actions.c[s.field].asc() for s in sort]
    stmt = select(actions).where(*where).order_by(*order).limit(limit + 1)
    if req.offset > 0:
        stmt = stmt.offset(req.offset)
    return stmt, limit
