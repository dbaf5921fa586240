"""``list_actions``: upstream's ListResourceInput as a typed request, turned into one SELECT.

Kept apart from the repository because it is pure query construction with many rules to get right
(research §3 ListActions): the column allowlist, the filter operators, the two mutually exclusive
pagination modes (offset, or keyset on ``(created_at, name)``), the default order and tiebreakers,
the ``limit + 1`` probe for "has more", and the scope filters the service ANDs in front of user
filters (including has-paused). :meth:`ListActionsRequest.from_proto` applies the request-level
rules of upstream's ``NewListResourceInputFromProto`` (limit 0 → 50, at most 200, decimal token).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, literal, select, tuple_
from sqlalchemy.orm import aliased

from taskaction_operator.model import ActionPhase, ActionType, RunId
from taskaction_operator.repo.errors import InvalidArgumentError
from taskaction_operator.repo.models import Action
from taskaction_operator.repo.schema import ActionRecord, actions

__all__ = [
    "ACTION_COLUMNS",
    "KEYSET_SORT",
    "ActionPage",
    "Filter",
    "FilterOp",
    "ListActionsRequest",
    "SortBy",
    "TaskScope",
    "TriggerScope",
    "build_list_query",
]

DEFAULT_LIMIT = 50
MAX_REQUEST_LIMIT = 200

#: Upstream's ``ActionColumnsSet``: the columns a filter or sort may name. ``trigger_type`` is in
#: upstream's allowlist but no migration creates it; DELIBERATE DIFFERENCE: we refuse it as an invalid
#: argument instead of letting PostgreSQL fail on the unknown column.
ACTION_COLUMNS = frozenset(
    {
        "project",
        "domain",
        "run_name",
        "phase",
        "action_type",
        "run_source",
        "created_by_subject",
        "trigger_task_name",
        "trigger_name",
        "trigger_revision",
        "task_project",
        "task_domain",
        "task_name",
        "task_version",
        "function_name",
        "created_at",
        "updated_at",
        "ended_at",
        "duration_ms",
    }
)
_INT_COLUMNS = frozenset({"phase", "action_type", "trigger_revision", "duration_ms"})
_TIME_COLUMNS = frozenset({"created_at", "updated_at", "ended_at"})


class FilterOp(enum.IntEnum):
    """The supported ``flyteidl2.common.Filter.Function`` values (same integers)."""

    EQUAL = 0
    NOT_EQUAL = 1
    GREATER_THAN = 2
    GREATER_THAN_OR_EQUAL = 3
    LESS_THAN = 4
    LESS_THAN_OR_EQUAL = 5
    CONTAINS = 6
    VALUE_IN = 7
    ENDS_WITH = 12
    NOT_ENDS_WITH = 13
    CONTAINS_CASE_INSENSITIVE = 14


_LIKE_OPS = frozenset(
    {FilterOp.CONTAINS, FilterOp.ENDS_WITH, FilterOp.NOT_ENDS_WITH, FilterOp.CONTAINS_CASE_INSENSITIVE}
)


@dataclass(frozen=True, slots=True)
class Filter:
    """``<field> <op> <values>``; every operator but VALUE_IN takes exactly one value."""

    field: str
    op: FilterOp
    values: tuple[Any, ...]

    @classmethod
    def of(cls, field: str, op: FilterOp, *values: Any) -> Filter:
        return cls(field, op, tuple(values))


@dataclass(frozen=True, slots=True)
class SortBy:
    field: str
    descending: bool = False


#: The only order keyset pagination accepts (upstream: exactly ``created_at ASC, name ASC``).
KEYSET_SORT: tuple[SortBy, ...] = (SortBy("created_at"), SortBy("name"))
_DEFAULT_SORT = (SortBy("phase"), SortBy("created_at", True), SortBy("run_name", True), SortBy("name", True))


@dataclass(frozen=True, slots=True)
class TriggerScope:
    project: str
    domain: str
    task_name: str
    trigger_name: str


@dataclass(frozen=True, slots=True)
class TaskScope:
    """``RunTaskName`` (no version) or ``RunTaskId`` (with version)."""

    project: str
    domain: str
    name: str
    version: str | None = None


@dataclass(frozen=True, kw_only=True)
class ListActionsRequest:
    """What to list. ``after`` switches to keyset mode: ``(created_at, name)`` of the last row seen.

    ``limit`` 0 means the default (50); negative or above ``max_limit`` is refused. ``max_limit`` is
    200 for requests from clients; internal pagers (the run snapshot) may raise it, as upstream's
    WatchActions pages 1000 at a time.
    """

    filters: Sequence[Filter] = ()
    sort_by: Sequence[SortBy] = ()
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    after: tuple[datetime, str] | None = None
    # Scope filters, ANDed in front of the user's filters.
    roots_only: bool = False
    project: tuple[str, str] | None = None
    trigger: TriggerScope | None = None
    task: TaskScope | None = None
    run: RunId | None = None
    has_paused_action: bool = False
    max_limit: int = field(default=MAX_REQUEST_LIMIT)

    @property
    def effective_limit(self) -> int:
        if self.limit < 0:
            raise InvalidArgumentError(f"limit must not be negative, got {self.limit}")
        limit = self.limit or DEFAULT_LIMIT
        if limit > self.max_limit:
            raise InvalidArgumentError(f"limit {limit} exceeds the maximum {self.max_limit}")
        return limit

    @classmethod
    def from_proto(cls, request: Any, **scopes: Any) -> ListActionsRequest:
        """From a ``flyteidl2.common.ListRequest`` plus scope keywords (``run=…``, ``roots_only=…``)."""
        token = request.token.strip()
        try:
            offset = int(token) if token else 0
        except ValueError:
            raise InvalidArgumentError(f"invalid page token {request.token!r}") from None
        if offset < 0:
            raise InvalidArgumentError(f"invalid page token {request.token!r}")
        sorts = list(request.sort_by_fields) or ([request.sort_by] if request.HasField("sort_by") else [])
        sort_by = tuple(SortBy(s.key, descending=s.direction != 1) for s in sorts)  # 1 = ASCENDING
        for s in sort_by:
            _column(s.field)
        filters = []
        for f in request.filters:
            try:
                op = FilterOp(f.function)
            except ValueError:
                raise InvalidArgumentError(f"unsupported filter function {f.function}") from None
            filters.append(Filter(f.field, op, tuple(f.values)))
        return cls(filters=tuple(filters), sort_by=sort_by, limit=request.limit, offset=offset, **scopes)


@dataclass(slots=True)
class ActionPage:
    """One page. ``next_token`` is the decimal offset of the next page ("" when none, as upstream);
    ``next_after`` is the keyset cursor of the next page (``None`` when none)."""

    actions: list[Action]
    has_more: bool
    next_token: str
    next_after: tuple[datetime, str] | None


def _column(name: str) -> ColumnElement[Any]:
    if name not in ACTION_COLUMNS:
        raise InvalidArgumentError(f"{name!r} is not a column actions can be filtered or sorted by")
    return actions.c[name]


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
        clauses.append(c.parent_action_name.is_(None))
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
