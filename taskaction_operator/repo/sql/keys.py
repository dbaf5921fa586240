"""How a statement finds its rows: by primary key, or a run's root; and the parameters for each.

Each condition is written once here and used by the reads, the writes and the list query alike.
Bind parameters are named after the columns (``project``, ``domain``, ``run_name``, ``name``) and
take their types from them.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, bindparam

from taskaction_operator.model import ActionId, RunId
from taskaction_operator.repo.models import ActionEvent

__all__ = [
    "ACTION_PK",
    "RUN_KEY",
    "action_key",
    "by_pk",
    "by_run_root",
    "event_key",
    "is_root",
    "pk_matches",
    "pk_params",
    "run_params",
]

#: The columns that identify a run, and the primary key of ``actions`` (the first four of
#: ``action_events``'s).
RUN_KEY = ("project", "domain", "run_name")
ACTION_PK = (*RUN_KEY, "name")


def _bound(table: Any, columns: tuple[str, ...]) -> ColumnElement[bool]:
    return and_(*(table.c[name] == bindparam(name) for name in columns))


def by_pk(table: Any) -> ColumnElement[bool]:
    """The row(s) of one action in ``table`` (``actions`` or ``action_events``), from :func:`pk_params`."""
    return _bound(table, ACTION_PK)


def is_root(table: Any) -> ColumnElement[bool]:
    """A run's root action, as upstream finds it (GetRun, AbortRun, ListRootActions): no parent."""
    root: ColumnElement[bool] = table.c.parent_action_name.is_(None)
    return root


def by_run_root(table: Any) -> ColumnElement[bool]:
    """The root action of one run, from :func:`run_params`."""
    return and_(_bound(table, RUN_KEY), is_root(table))


def pk_matches(table: Any, source: Any) -> ColumnElement[bool]:
    """``table``'s row for each row of ``source`` (a join on the four key columns)."""
    return and_(*(table.c[name] == source.c[name] for name in ACTION_PK))


def pk_params(action: ActionId) -> dict[str, Any]:
    return {
        "project": action.project,
        "domain": action.domain,
        "run_name": action.run_name,
        "name": action.name,
    }


def run_params(run: RunId) -> dict[str, Any]:
    return {"project": run.project, "domain": run.domain, "run_name": run.name}


class _Keyed(Protocol):
    @property
    def project(self) -> str: ...
    @property
    def domain(self) -> str: ...
    @property
    def run_name(self) -> str: ...
    @property
    def name(self) -> str: ...


def action_key(a: _Keyed) -> tuple[str, str, str, str]:
    """The primary key of ``actions`` for an :class:`ActionId`, an :class:`Action` or an event."""
    return (a.project, a.domain, a.run_name, a.name)


def event_key(e: ActionEvent) -> tuple[str, str, str, str, int, int, int]:
    """The primary key of ``action_events``."""
    return (e.project, e.domain, e.run_name, e.name, e.attempt, int(e.phase), e.version)
