"""Following a run until its root is terminal, for every waiting command (``runs watch``, ``runs
wait``, ``enqueue --wait``), and the exit code its outcome gives.

It follows :meth:`Records.watch_run <taskaction_operator.cli.records.Records.watch_run>` (the
database's LISTEN/NOTIFY watch, or RunService's WatchActions with ``--server``), which subscribes
first, then reads the snapshot, so no update between the two is missed. The deadline covers
everything, connecting included: ``--timeout`` wins over the database's own connect timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from taskaction_operator.cli.errors import CommandFailed
from taskaction_operator.cli.records import Records
from taskaction_operator.cli.render import human_duration, phase_colour, phase_name
from taskaction_operator.cli.tables import paint
from taskaction_operator.model import ActionPhase, RunId
from taskaction_operator.repo import Action, NotFoundError

#: A waiting command's exit code by the run's outcome (1 and 2 stay "the command failed" and "bad
#: usage"): CI reads the outcome from it.
OUTCOME_CODES = {
    ActionPhase.SUCCEEDED: 0,
    ActionPhase.FAILED: 3,
    ActionPhase.ABORTED: 4,
    ActionPhase.TIMED_OUT: 5,
}

#: Called with every action of the run and the ones that changed (all of them the first time).
OnChange = Callable[[dict[str, Action], list[Action]], None]


def outcome_code(root: Action) -> int:
    return OUTCOME_CODES.get(ActionPhase(root.phase), 0)


def summary(run_id: RunId, root: Action, colour: bool) -> str:
    """``run NAME PHASE after DURATION``, in the phase's colour."""
    text = f"run {run_id.name} {phase_name(root.phase)} after {human_duration(root.duration_ms)}"
    return paint(text, phase_colour(phase_name(root.phase)), colour)


def _created(a: Action) -> tuple[datetime, str]:
    return (a.created_at or datetime.min.replace(tzinfo=UTC), a.name)


async def follow_run(
    records: Callable[[], Awaitable[Records]],
    run_id: RunId,
    timeout: float,
    on_change: OnChange,
    state: dict[str, Action] | None = None,
) -> tuple[Action, dict[str, Action]]:
    """The run's root once terminal, and every action of the run (in ``state``, which holds what was
    seen even when this fails); CommandFailed after ``timeout`` seconds (connecting to the database
    included) or when the run does not exist."""
    state = {} if state is None else state
    root: Action | None = None
    try:
        async with asyncio.timeout(timeout):
            source = await records()
            batches = source.watch_run(run_id)
            try:
                async with contextlib.aclosing(batches):  # type: ignore[type-var]
                    async for batch in batches:
                        changed = []
                        for update in batch:
                            old = state.get(update.name)
                            state[update.name] = update
                            if update.parent_action_name is None:
                                root = update
                            if old is None or (old.phase, old.attempts, old.ended_at) != (
                                update.phase,
                                update.attempts,
                                update.ended_at,
                            ):
                                changed.append(update)
                        if changed:
                            on_change(state, sorted(changed, key=_created))
                        if root is not None and ActionPhase(root.phase).is_terminal():
                            break
            except NotFoundError:
                raise CommandFailed(f"run {run_id} not found") from None
            if root is None or not ActionPhase(root.phase).is_terminal():
                raise CommandFailed(f"the watch of run {run_id} ended")
    except TimeoutError:
        phase = f"phase {phase_name(root.phase)}" if root is not None else "not reached yet"
        raise CommandFailed(
            f"timed out after {human_duration(timeout * 1000)} waiting for run {run_id} ({phase})"
        ) from None
    return root, state
