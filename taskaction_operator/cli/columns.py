"""The columns of every table the read commands print (``-o wide`` adds the absolute times)."""

from __future__ import annotations

from datetime import datetime

from taskaction_operator.cli.render import DIM, duration_cell, error_message, phase_colour, phase_name
from taskaction_operator.cli.tables import Column, age, timestamp
from taskaction_operator.model import ActionType
from taskaction_operator.repo import Action, ActionEvent

TreeRow = tuple[Action, str, str]  # render.tree_order's (action, prefix, guide)


def _task(a: Action) -> str:
    return a.task_short_name or a.function_name or a.task_type or "-"


def _phase(a: Action) -> str:
    return phase_name(a.phase)


def _when(value: datetime | None) -> str:
    return timestamp(value) or "-"


def run_columns(now: datetime | None = None) -> list[Column[Action]]:
    return [
        Column("RUN", lambda r: r.run_name),
        Column("PROJECT", lambda r: r.project),
        Column("DOMAIN", lambda r: r.domain),
        Column("PHASE", _phase, lambda r: phase_colour(_phase(r))),
        Column("TASK", _task),
        Column("ATTEMPTS", lambda r: str(r.attempts)),
        Column("DURATION", lambda r: duration_cell(r, now)),
        Column("AGE", lambda r: age(r.created_at, now)),
        Column("CREATED", lambda r: _when(r.created_at), wide=True),
        Column("ENDED", lambda r: _when(r.ended_at), wide=True),
    ]


def action_columns(now: datetime | None = None) -> list[Column[Action]]:
    return [
        Column("ACTION", lambda a: a.name),
        Column("PARENT", lambda a: a.parent_action_name or "-"),
        Column("PHASE", _phase, lambda a: phase_colour(_phase(a))),
        Column("ATTEMPTS", lambda a: str(a.attempts)),
        Column("DURATION", lambda a: duration_cell(a, now)),
        Column("AGE", lambda a: age(a.created_at, now)),
        Column("TASK", _task),
        Column("CREATED", lambda a: _when(a.created_at), wide=True),
        Column("ENDED", lambda a: _when(a.ended_at), wide=True),
    ]


def tree_columns(now: datetime | None = None) -> list[Column[TreeRow]]:
    return [
        Column("ACTION", lambda t: t[1] + t[0].name),
        Column("TYPE", lambda t: ActionType(int(t[0].action_type)).name.lower(), lambda _t: DIM),
        Column("PHASE", lambda t: _phase(t[0]), lambda t: phase_colour(_phase(t[0]))),
        Column("ATTEMPTS", lambda t: str(t[0].attempts)),
        Column("DURATION", lambda t: duration_cell(t[0], now)),
        Column("TASK", lambda t: _task(t[0]), lambda _t: DIM),
        Column("CREATED", lambda t: _when(t[0].created_at), wide=True),
        Column("ENDED", lambda t: _when(t[0].ended_at), wide=True),
    ]


def event_columns(now: datetime | None = None) -> list[Column[ActionEvent]]:
    return [
        Column("ATTEMPT", lambda e: str(e.attempt)),
        Column("PHASE", lambda e: phase_name(e.phase), lambda e: phase_colour(phase_name(e.phase))),
        Column("VERSION", lambda e: str(e.version)),
        Column("AGE", lambda e: age(e.updated_at or e.created_at, now)),
        Column("ERROR KIND", lambda e: e.error_kind or ""),
        Column("ERROR", lambda e: error_message(e) or ""),
        Column("UPDATED", lambda e: _when(e.updated_at), wide=True),
    ]
