"""``list_actions``'s request and page: upstream's ListResourceInput as a typed request.

The request carries what upstream's ListActions takes (runs/repository/impl/action.go: ListActions;
the input type in runs/repository/interfaces/common.go): filters, sort, limit, offset or keyset
cursor, and the scope filters the service ANDs in front of user filters.
:meth:`ListActionsRequest.from_proto` applies the request-level rules of upstream's
``NewListResourceInputFromProto`` (runs/repository/impl/requests.go: limit 0 → 50, at most 200,
decimal token, sort fields from the allowlist). The SELECT it becomes is built in :mod:`.sql.listing`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from taskaction_operator.model import RunId
from taskaction_operator.repo.errors import InvalidArgumentError
from taskaction_operator.repo.models import Action

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
    "check_column",
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


def check_column(name: str) -> str:
    """``name``, if a filter or sort may name it (:data:`ACTION_COLUMNS`)."""
    if name not in ACTION_COLUMNS:
        raise InvalidArgumentError(f"{name!r} is not a column actions can be filtered or sorted by")
    return name


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
            check_column(s.field)
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
