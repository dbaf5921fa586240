"""The statements that write ``action_events``: upstream's idempotent insert, ours for derived and
for reported events, and the COPY of the writer's fast path (compiled once, at import)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, any_, delete, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert

from taskaction_operator.model.phases import TERMINAL_PHASES
from taskaction_operator.repo.models import ActionEvent, require_aware
from taskaction_operator.repo.schema import action_events
from taskaction_operator.repo.sql.compile import phases_array, to_sql, unnest
from taskaction_operator.repo.sql.keys import pk_matches

__all__ = [
    "COPY_EVENTS",
    "DROP_SHADOWED_EVENTS",
    "INSERT_DERIVED_EVENTS",
    "INSERT_EVENTS",
    "UPSERT_EVENTS",
    "event_key_params",
    "event_params",
]

_EVENT_INPUT = [(c.name, c.type) for c in action_events.c if c.name != "updated_at"]


#: The key of an ``action_events`` row (its primary key, in order).
_EVENT_KEY = [c.name for c in action_events.primary_key.columns]


def _insert_from_unnest(where: Callable[[Any], ColumnElement[bool]] | None = None) -> Any:
    """``INSERT INTO action_events … SELECT … FROM unnest(…) AS u`` (``created_at`` defaulting to
    now), optionally only the rows of ``u`` that ``where(u)`` keeps."""
    u = unnest(_EVENT_INPUT)
    names = [name for name, _ in _EVENT_INPUT]
    source = select(
        *(func.coalesce(u.c.created_at, func.now()) if n == "created_at" else u.c[n] for n in names),
        func.now(),
    )
    if where is not None:
        source = source.where(where(u))
    return insert(action_events).from_select([*names, "updated_at"], source)


#: Insert events, ON CONFLICT DO NOTHING (first write wins per key).
INSERT_EVENTS = to_sql(_insert_from_unnest().on_conflict_do_nothing())


def _same_transition(e: Any, u: Any) -> ColumnElement[bool]:
    """Row ``e`` is the same action's same attempt and phase as ``u`` (any version)."""
    return and_(pk_matches(e, u), e.c.attempt == u.c.attempt, e.c.phase == u.c.phase)


def _no_row_of_the_transition(u: Any) -> ColumnElement[bool]:
    e = action_events.alias("e")
    return ~exists().where(_same_transition(e, u))


#: Ours: events the operator derived from a TaskAction's status, stored only for an (attempt, phase)
#: with no row yet, of any version. Flyte's executor reports each event before the status write
#: that shows it, with its own version (RUNNING may come as version 1 only): the derived event of
#: the same transition is then a duplicate, never a second row.
INSERT_DERIVED_EVENTS = to_sql(_insert_from_unnest(_no_row_of_the_transition).on_conflict_do_nothing())


def _drop_shadowed_events() -> str:
    u = unnest([(c, t) for c, t in _EVENT_INPUT if c in _EVENT_KEY])
    o = action_events.alias("o")
    stmt = delete(action_events).where(
        *(action_events.c[name] == u.c[name] for name in _EVENT_KEY),
        exists().where(_same_transition(o, u), o.c.version != u.c.version),
    )
    return to_sql(stmt)


#: After a COPY of derived events (which cannot check first): drop each copied row whose transition
#: already had a row of another version.
DROP_SHADOWED_EVENTS = _drop_shadowed_events()


def _not_a_second_end(u: Any) -> ColumnElement[bool]:
    """``u`` is no terminal event for an attempt that already ended in another terminal phase."""
    e = action_events.alias("e")
    ended = phases_array(TERMINAL_PHASES)
    return or_(
        ~(u.c.phase == any_(ended)),
        ~exists().where(
            pk_matches(e, u), e.c.attempt == u.c.attempt, e.c.phase == any_(ended), e.c.phase != u.c.phase
        ),
    )


def _upsert_events() -> str:
    stmt = _insert_from_unnest(_not_a_second_end)
    excluded = stmt.excluded
    return to_sql(
        stmt.on_conflict_do_update(
            index_elements=list(action_events.primary_key.columns),
            set_={"info": excluded.info, "error_kind": excluded.error_kind, "updated_at": func.now()},
        )
    )


#: Insert events an executor reported; a row with the same key (one the operator derived from the
#: TaskAction first, or the executor's own earlier send) takes the report's info and error kind.
#: DELIBERATE DIFFERENCE: a terminal event for an attempt that already ended in another terminal
#: phase is not stored. Flyte's executor finalizes every deleted TaskAction the same way, finished or
#: not (``handleAbortAndFinalize`` records an ABORTED event), so a run's garbage collection would
#: give each SUCCEEDED attempt an ABORTED event too; upstream stores it (its ``mergeEvents`` then
#: keeps the first terminal event as the attempt's end). Here an attempt has one end.
UPSERT_EVENTS = _upsert_events()
#: COPY of new events (the optimistic fast path of :mod:`taskaction_operator.repo.writer`); timestamps
#: take their defaults.
COPY_EVENTS = "COPY action_events ({}) FROM STDIN".format(
    ", ".join(name for name, _ in _EVENT_INPUT if name != "created_at")
)


def event_key_params(rows: Sequence[ActionEvent]) -> dict[str, list[Any]]:
    """The keys of ``rows``, for :data:`DROP_SHADOWED_EVENTS`."""
    return {name: [getattr(r, name) for r in rows] for name in _EVENT_KEY}


def event_params(rows: Sequence[ActionEvent]) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {name: [] for name, _ in _EVENT_INPUT}
    for row in rows:
        require_aware(row.created_at, "created_at")
        for name, values in params.items():
            values.append(getattr(row, name))
    return params
