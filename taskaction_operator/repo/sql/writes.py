"""Every SQL statement the repository writes with, built once from SQLAlchemy Core.

Each statement is compiled here, at import, to psycopg SQL (:func:`.compile.to_sql`) for the
pipelined write path of :mod:`taskaction_operator.repo.writer`. The single-object methods and
:meth:`ActionRepo.record_batch` use the *same* compiled statements with different parameters: the
phase guard and the ``ended_at``/``created_at``/``duration_ms`` rules exist exactly once, in this
module. Who is notified after a write is decided in :mod:`taskaction_operator.repo.notify.channels`.

Multi-row statements take one array per column and read them back with ``unnest``: the SQL text is
constant whatever the number of rows (so the server prepares it once per connection), and a statement
carries one bind parameter per column, far below PostgreSQL's 65,535 limit however many rows it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    LargeBinary,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    extract,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.types import TypeEngine

from taskaction_operator.model import ActionId, ActionPhase
from taskaction_operator.model.phases import RETRYABLE_PHASES, TERMINAL_PHASES
from taskaction_operator.repo.models import Action, PhaseUpdate, require_aware
from taskaction_operator.repo.schema import actions
from taskaction_operator.repo.sql.compile import lit, phases_array, to_sql, unnest
from taskaction_operator.repo.sql.keys import ACTION_PK, by_pk, by_run_root, pk_matches

__all__ = [
    "ABORT_ACTION",
    "ABORT_RUN",
    "ABORT_UNFINISHED_ACTION",
    "ABORT_UNFINISHED_RUN",
    "CLEAR_ABORT",
    "INSERT_ACTIONS",
    "INSERT_ACTIONS_RETURNING_ROW",
    "MARK_ABORT_ATTEMPT",
    "NOTIFY",
    "UPDATE_DETAILED_INFO",
    "UPDATE_PHASES",
    "UPDATE_STATE",
    "action_params",
    "notify_params",
    "phase_guard",
    "phase_update_rounds",
    "update_params",
]

_TZ = DateTime(timezone=True)
_ACTION_KEY = [actions.c[name] for name in ACTION_PK]


def phase_guard(current: ColumnElement[Any], new: ColumnElement[Any]) -> ColumnElement[bool]:
    """Upstream's numeric phase guard, the only copy of it (upstream runs/repository/impl/action.go:
    UpdateActionPhase, its WHERE clause):

    ``phase <= new OR phase = ANY({6,8}) OR (phase = 9 AND new = ANY({5,6,7,8,10}))``.

    Monotonic on the enum integers (same-phase updates pass), anything goes from FAILED or TIMED_OUT
    (the retry path), and PAUSED only settles into a terminal phase. Terminal phases are *not* sticky.
    """
    return or_(
        current <= new,
        current == any_(phases_array(RETRYABLE_PHASES)),
        and_(current == lit(ActionPhase.PAUSED), new == any_(phases_array(TERMINAL_PHASES))),
    )


def _duration_ms(end: ColumnElement[Any], start: ColumnElement[Any]) -> ColumnElement[Any]:
    return extract("epoch", end - start) * lit(1000)


# -- INSERT actions ------------------------------------------------------------------------------
_ACTION_INPUT = [(c.name, c.type) for c in actions.c if c.name not in ("updated_at", "duration_ms")]


def _insert_actions(returning_row: bool) -> str:
    u = unnest(_ACTION_INPUT)
    ended_at, created_at = u.c.ended_at, u.c.created_at
    # duration_ms from the supplied ended_at, never negative (upstream runs/repository/impl/action.go:
    # CreateAction).
    duration = case(
        (ended_at.is_not(None), _duration_ms(func.greatest(ended_at, created_at), created_at)), else_=null()
    )
    names = [name for name, _ in _ACTION_INPUT]
    source = select(*(u.c[name] for name in names), func.now(), duration)
    stmt = (
        insert(actions)
        .from_select([*names, "updated_at", "duration_ms"], source)
        .on_conflict_do_nothing()
        .returning(*(actions.c if returning_row else _ACTION_KEY))
    )
    return to_sql(stmt)


#: Insert actions, ON CONFLICT DO NOTHING; returns the keys of the rows actually inserted.
INSERT_ACTIONS = _insert_actions(returning_row=False)
#: The same, returning the whole inserted row (CreateAction answers with the stored row).
INSERT_ACTIONS_RETURNING_ROW = _insert_actions(returning_row=True)


def action_params(rows: Sequence[Action], now: datetime | None = None) -> dict[str, list[Any]]:
    """Column arrays for :data:`INSERT_ACTIONS`; ``created_at=None`` becomes ``now`` (upstream: time.Now)."""
    now = now or datetime.now(UTC)
    params: dict[str, list[Any]] = {name: [] for name, _ in _ACTION_INPUT}
    for row in rows:
        for name, values in params.items():
            value = getattr(row, name)
            if name in _ACTION_TIMES:
                value = require_aware(value, name) or (now if name == "created_at" else None)
            values.append(value)
    return params


_ACTION_TIMES = frozenset({"created_at", "ended_at", "abort_requested_at"})


# -- guarded phase UPDATE --------------------------------------------------------------------------
_UPDATE_INPUT: list[tuple[str, TypeEngine[Any]]] = [
    ("project", Text()),
    ("domain", Text()),
    ("run_name", Text()),
    ("name", Text()),
    ("phase", Integer()),
    ("attempts", Integer()),
    ("cache_status", Integer()),
    ("start_time", _TZ),
    ("end_time", _TZ),
    ("promotion", Boolean()),
    ("detailed_info", LargeBinary()),
]


def _update_phases() -> str:
    # The rows are first locked in key order (a materialized CTE: ORDER BY below FOR UPDATE), then
    # updated from it. The UPDATE's own join visits rows in whatever order its plan and the rows'
    # physical places give, so two batches over the same actions could otherwise each hold a row the
    # other waits for: a deadlock (two writers: an operator and a PutStatus client, or two replicas).
    src = unnest(_UPDATE_INPUT)
    u = (
        select(*(src.c[name] for name, _ in _UPDATE_INPUT))
        .join_from(src, actions, pk_matches(actions, src))
        .order_by(*_ACTION_KEY)
        .with_for_update(of=actions)
        .cte("u")
        .prefix_with("MATERIALIZED")
    )
    # S: the start after this update. LEAST ignores NULL, so no start_time leaves created_at alone
    # and a start_time can only move it earlier.
    start = func.least(actions.c.created_at, u.c.start_time)
    # The end this update proposes, never before the start; the old ended_at wins (write-once).
    end = func.coalesce(actions.c.ended_at, func.greatest(u.c.end_time, start))
    with_end = u.c.end_time.is_not(None)
    stmt = (
        update(actions)
        .values(
            phase=u.c.phase,
            attempts=func.coalesce(u.c.attempts, actions.c.attempts),
            cache_status=func.coalesce(u.c.cache_status, actions.c.cache_status),
            detailed_info=func.coalesce(u.c.detailed_info, actions.c.detailed_info),
            updated_at=func.now(),
            created_at=start,
            ended_at=case((with_end, end), else_=actions.c.ended_at),
            duration_ms=case(
                (with_end, cast(_duration_ms(end, start), BigInteger)), else_=actions.c.duration_ms
            ),
        )
        .where(
            pk_matches(actions, u),
            phase_guard(actions.c.phase, u.c.phase),
            or_(u.c.promotion.is_not(True), actions.c.phase < lit(ActionPhase.RUNNING)),
        )
        .returning(*_ACTION_KEY)
    )
    return to_sql(stmt)


#: Apply phase updates (at most one per action per execution) under the guard, in ONE statement:
#: ``phase, attempts, cache_status, updated_at`` always; ``created_at = LEAST(created_at, start)``;
#: with an end time, ``ended_at`` set once and ``duration_ms`` recomputed against the (moved) start.
#: Returns the keys of the rows the guard let through; a blocked update is simply absent.
UPDATE_PHASES = _update_phases()


def phase_update_rounds(updates: Sequence[PhaseUpdate]) -> list[list[int]]:
    """Split ``updates`` (indexes into it) into rounds holding each action at most once.

    Round *k* holds the *k*-th update of every action, so running the rounds in order applies each
    action's updates in the order given (the guard makes that order matter), while actions that are
    updated once, the usual case, all go in one statement. (Lock order is the statement's business:
    :data:`UPDATE_PHASES` locks its rows in key order whatever the order of its input.)
    """
    rounds: list[list[int]] = []
    seen: dict[ActionId, int] = {}
    for index, upd in enumerate(updates):
        k = seen.get(upd.action_id, 0)
        seen[upd.action_id] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(index)
    return rounds


def update_params(updates: Sequence[PhaseUpdate], indexes: Sequence[int]) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {name: [] for name, _ in _UPDATE_INPUT}
    for i in indexes:
        u = updates[i]
        a = u.action_id
        params["project"].append(a.project)
        params["domain"].append(a.domain)
        params["run_name"].append(a.run_name)
        params["name"].append(a.name)
        params["phase"].append(int(u.phase))
        params["attempts"].append(None if u.attempts is None else int(u.attempts))
        params["cache_status"].append(None if u.cache_status is None else int(u.cache_status))
        params["start_time"].append(u.start_time)
        params["end_time"].append(u.end_time)
        params["promotion"].append(u.promotion)
        params["detailed_info"].append(u.detailed_info)
    return params


# -- NOTIFY ---------------------------------------------------------------------------------------
def _notify() -> str:
    n = unnest([("channel", Text()), ("payload", Text())], alias="n")
    return to_sql(select(func.count(func.pg_notify(n.c.channel, n.c.payload))).select_from(n))


#: Every notification of a transaction in one statement. Delivered at COMMIT, never on rollback.
NOTIFY = _notify()


def notify_params(messages: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Parameters for :data:`NOTIFY` from ``(channel, payload)`` pairs."""
    return {"channel": [c for c, _ in messages], "payload": [p for _, p in messages]}


# -- single-row writes ----------------------------------------------------------------------------
def _abort(where: ColumnElement[bool]) -> str:
    # Unconditional (no phase guard): upstream's SET (runs/repository/impl/action.go: AbortRun,
    # AbortAction).
    end = func.coalesce(actions.c.ended_at, func.greatest(func.now(), actions.c.created_at))
    stmt = (
        update(actions)
        .values(
            phase=lit(ActionPhase.ABORTED),
            updated_at=func.now(),
            abort_requested_at=func.now(),
            abort_attempt_count=lit(0),
            abort_reason=bindparam("reason", type_=Text()),
            ended_at=end,
            duration_ms=cast(_duration_ms(end, actions.c.created_at), BigInteger),
        )
        .where(where)
        .returning(actions.c.name)
    )
    return to_sql(stmt)


#: Mark a run's root ABORTED and request the abort (children are left to the informer).
ABORT_RUN = _abort(by_run_root(actions))
#: Mark one action ABORTED and request the abort.
ABORT_ACTION = _abort(by_pk(actions))
#: Ours: the phases an abort without ``force`` leaves alone (ABORTED itself is no rewrite).
_ENDED = phases_array(TERMINAL_PHASES - {ActionPhase.ABORTED})
#: As ABORT_RUN and ABORT_ACTION, but only for a row that has not ended.
ABORT_UNFINISHED_RUN = _abort(and_(by_run_root(actions), ~(actions.c.phase == any_(_ENDED))))
ABORT_UNFINISHED_ACTION = _abort(and_(by_pk(actions), ~(actions.c.phase == any_(_ENDED))))

#: ``abort_attempt_count + 1``, atomically, returning the new count.
MARK_ABORT_ATTEMPT = to_sql(
    update(actions)
    .values(abort_attempt_count=actions.c.abort_attempt_count + lit(1), updated_at=func.now())
    .where(by_pk(actions))
    .returning(actions.c.abort_attempt_count)
)
#: Clear the pending-abort flag; ``abort_reason`` and ``phase`` are kept.
CLEAR_ABORT = to_sql(
    update(actions)
    .values(abort_requested_at=null(), abort_attempt_count=lit(0), updated_at=func.now())
    .where(by_pk(actions))
    .returning(actions.c.name)
)
UPDATE_DETAILED_INFO = to_sql(
    update(actions)
    .values(
        detailed_info=bindparam("detailed_info", type_=actions.c.detailed_info.type), updated_at=func.now()
    )
    .where(by_pk(actions))
    .returning(actions.c.name)
)
#: Ours: the state string goes to ``taskaction_action_states``, never into the integer ``phase``
#: (upstream's bug); the action's ``updated_at`` moves as upstream's UpdateActionState moves it. No
#: row when the action does not exist.
UPDATE_STATE = """
WITH touched AS (
    UPDATE actions SET updated_at = now()
    WHERE project = %(project)s AND domain = %(domain)s AND run_name = %(run_name)s AND name = %(name)s
    RETURNING project, domain, run_name, name
)
INSERT INTO taskaction_action_states (project, domain, run_name, name, state, updated_at)
SELECT project, domain, run_name, name, %(state)s, now() FROM touched
ON CONFLICT (project, domain, run_name, name) DO UPDATE SET state = EXCLUDED.state, updated_at = now()
RETURNING name
"""
