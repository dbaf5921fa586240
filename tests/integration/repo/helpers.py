"""Helpers of the repository suite: deadlines instead of sleeps, and row builders."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import Action, ActionEvent, ActionRepo

T = TypeVar("T")

#: Generous: the machine is shared, and a deadline only costs time when a test fails.
DEADLINE = 15.0
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


async def eventually(
    check: Callable[[], T | Awaitable[T]], *, timeout: float = DEADLINE, what: str = ""
) -> T:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    async def probe() -> T:
        result = check()
        return await result if inspect.isawaitable(result) else result

    last = await probe()
    while not last:
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {what or check}; last={last!r}")
        await asyncio.sleep(0.05)
        last = await probe()
    return last


async def next_item(sub: AsyncIterator[T], timeout: float = DEADLINE) -> T:
    """The subscription's next item, or a failure after ``timeout`` seconds."""
    return await asyncio.wait_for(anext(sub), timeout)


async def next_matching(sub: AsyncIterator[T], pred: Callable[[T], bool], timeout: float = DEADLINE) -> T:
    """Skip items (duplicates are allowed) until one matches ``pred``, within ``timeout`` overall."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        item = await asyncio.wait_for(anext(sub), max(0.01, deadline - loop.time()))
        if pred(item):
            return item


def run(project: str, name: str = "r1", domain: str = "development") -> RunId:
    return RunId(project, domain, name)


def action(aid: ActionId, **fields: Any) -> Action:
    """A row for ``aid``; non-root actions get ``a0`` as parent unless told otherwise."""
    if aid.name != "a0":
        fields.setdefault("parent_action_name", "a0")
    return Action.new(aid, **fields)


def event(aid: ActionId, attempt: int, phase: ActionPhase, version: int = 0, **fields: Any) -> ActionEvent:
    return ActionEvent(aid.project, aid.domain, aid.run_name, aid.name, attempt, phase, version, **fields)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- whole runs, for retention ----------------------------------------------------------------------
DONE = ActionPhase.SUCCEEDED


async def make_run(
    repo: ActionRepo,
    rid: RunId,
    phases: Sequence[ActionPhase] = (DONE, DONE, ActionPhase.FAILED),
    *,
    ended: datetime | None = None,
    late: str = "",
) -> None:
    """A run a0 → a1 → a1-1 (phases in that order), each with two events and a state row; the
    finished ones ended at ``ended`` (default: in January), ``late`` now."""
    for (name, parent), phase in zip((("a0", None), ("a1", "a0"), ("a1-1", "a1")), phases, strict=True):
        aid = ActionId(rid, name)
        end = datetime.now(UTC) if name == late else ended or at(60)
        finished = phase.is_terminal()
        await repo.create_action(
            action(
                aid,
                parent_action_name=parent,
                phase=phase,
                created_at=at(0),
                ended_at=end if finished else None,
            )
        )
        await repo.insert_events([event(aid, 1, ActionPhase.QUEUED), event(aid, 2, phase)])
        await repo.update_action_state(aid, '{"phase": "x"}')


def count_rows(dsn: str, rid: RunId) -> tuple[int, int, int]:
    """(actions, events, state rows) stored for the run."""
    key = (rid.project, rid.domain, rid.name)
    where = " WHERE project = %s AND domain = %s AND run_name = %s"
    with psycopg.connect(dsn) as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT count(*) FROM {table}" + where, key).fetchone()[0]  # type: ignore[index]
            for table in ("actions", "action_events", "taskaction_action_states")
        )
