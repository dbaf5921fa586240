"""The phase guard (upstream runs/repository/impl/action.go: UpdateActionPhase), and the time columns
it maintains."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from taskaction_operator.model import ActionId, ActionPhase
from taskaction_operator.repo import ActionRepo, PhaseUpdate
from tests.integration.repo.helpers import action, at, next_item, run

pytestmark = pytest.mark.db

P = ActionPhase
# Written out by hand from upstream's rules (runs/repository/impl/action.go: UpdateActionPhase, and
# its tests TestUpdateActionPhase_* in runs/repository/impl), not from the guard's formula: for each
# current phase, the new phases an update may NOT move it to. Numeric monotonic, anything from FAILED and
# TIMED_OUT (the retry path), PAUSED only settles into terminal phases (or stays), terminal phases
# are not sticky (SUCCEEDED -> FAILED passes).
BLOCKED: dict[ActionPhase, set[ActionPhase]] = {
    P.UNSPECIFIED: set(),
    P.QUEUED: {P.UNSPECIFIED},
    P.WAITING_FOR_RESOURCES: {P.UNSPECIFIED, P.QUEUED},
    P.INITIALIZING: {P.UNSPECIFIED, P.QUEUED, P.WAITING_FOR_RESOURCES},
    P.RUNNING: {P.UNSPECIFIED, P.QUEUED, P.WAITING_FOR_RESOURCES, P.INITIALIZING},
    P.SUCCEEDED: {P.UNSPECIFIED, P.QUEUED, P.WAITING_FOR_RESOURCES, P.INITIALIZING, P.RUNNING},
    P.FAILED: set(),
    P.ABORTED: {
        P.UNSPECIFIED,
        P.QUEUED,
        P.WAITING_FOR_RESOURCES,
        P.INITIALIZING,
        P.RUNNING,
        P.SUCCEEDED,
        P.FAILED,
    },
    P.TIMED_OUT: set(),
    P.PAUSED: {P.UNSPECIFIED, P.QUEUED, P.WAITING_FOR_RESOURCES, P.INITIALIZING, P.RUNNING},
    P.RECOVERED: set(P) - {P.RECOVERED},
}
PAIRS = list(itertools.product(P, P))


def test_the_expectation_covers_upstreams_test_cases() -> None:
    # TestUpdateActionPhase_BlocksBackward*, _AllowsRetryTransition, _PausedSettlesIntoTerminal,
    # _PausedDoesNotResume; and SUCCEEDED is not sticky.
    assert P.QUEUED in BLOCKED[P.RUNNING] and P.QUEUED in BLOCKED[P.SUCCEEDED]
    assert P.QUEUED not in BLOCKED[P.FAILED]  # retry
    assert P.RUNNING in BLOCKED[P.PAUSED] and not {P.SUCCEEDED, P.TIMED_OUT, P.ABORTED} & BLOCKED[P.PAUSED]
    assert not {P.FAILED, P.ABORTED, P.TIMED_OUT, P.PAUSED, P.RECOVERED} & BLOCKED[P.SUCCEEDED]
    assert len(PAIRS) == 121


def _aid(project: str, old: ActionPhase, new: ActionPhase) -> ActionId:
    return ActionId(run(project), f"{old.name.lower()}-to-{new.name.lower()}")


@pytest.mark.parametrize("mode", ["single", "batch"])
async def test_guard_matrix(repo: ActionRepo, project: str, mode: str) -> None:
    await repo.record_batch(
        actions=[
            action(_aid(project, old, new), phase=old, attempts=1, created_at=at(0)) for old, new in PAIRS
        ]
    )
    updates = [PhaseUpdate(_aid(project, old, new), new, 2, 3) for old, new in PAIRS]
    applied: dict[tuple[ActionPhase, ActionPhase], bool] = {}
    if mode == "single":
        for (old, new), u in zip(PAIRS, updates, strict=True):
            applied[old, new] = await repo.update_action_phase(
                u.action_id, u.phase, u.attempts, u.cache_status
            )
    else:
        await repo.record_batch(updates=updates)
    for old, new in PAIRS:
        row = await repo.get_action(_aid(project, old, new))
        allowed = new not in BLOCKED[old]
        if mode == "single":
            assert applied[old, new] is allowed, (old, new)
        if allowed:
            assert (row.phase, row.attempts, row.cache_status) == (new, 2, 3), (old, new)
        else:
            assert (row.phase, row.attempts, row.cache_status) == (old, 1, 0), (old, new)


async def test_blocked_update_changes_nothing(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    before = await repo.create_action(action(aid, phase=P.RUNNING, created_at=at(10)))
    assert not await repo.update_action_phase(aid, P.QUEUED, 5, 2, end_time=at(20), start_time=at(0))
    assert await repo.get_action(aid) == before


async def test_same_phase_refreshes_attempts_cache_and_updated_at(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    before = await repo.create_action(action(aid, phase=P.RUNNING))
    assert await repo.update_action_phase(aid, P.RUNNING, 2, 1)
    after = await repo.get_action(aid)
    assert (after.attempts, after.cache_status) == (2, 1)
    assert after.updated_at > before.updated_at  # type: ignore[operator]


async def test_retry_path_failed_to_queued(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.create_action(action(aid, created_at=at(0)))
    assert await repo.update_action_phase(aid, P.FAILED, 1, 0, end_time=at(5))
    assert await repo.update_action_phase(aid, P.QUEUED, 2, 0)
    assert await repo.update_action_phase(aid, P.SUCCEEDED, 2, 0, end_time=at(9))
    row = await repo.get_action(aid)
    # upstream never clears ended_at: the retry keeps the first failure's end
    assert (row.phase, row.attempts, row.ended_at, row.duration_ms) == (P.SUCCEEDED, 2, at(5), 5000)


async def test_ended_at_is_write_once(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.create_action(action(aid, created_at=at(0)))
    assert await repo.update_action_phase(aid, P.SUCCEEDED, 1, 0, end_time=at(4))
    assert await repo.update_action_phase(aid, P.FAILED, 1, 0, end_time=at(30))
    row = await repo.get_action(aid)
    assert (row.phase, row.ended_at, row.duration_ms) == (P.FAILED, at(4), 4000)


async def test_no_end_time_leaves_end_and_duration(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.create_action(action(aid, created_at=at(0)))
    assert await repo.update_action_phase(aid, P.RUNNING, 1, 0)
    row = await repo.get_action(aid)
    assert (row.ended_at, row.duration_ms) == (None, None)


async def test_created_at_only_moves_earlier(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.create_action(action(aid, created_at=at(10)))
    assert await repo.update_action_phase(aid, P.RUNNING, 1, 0, start_time=at(15))
    assert (await repo.get_action(aid)).created_at == at(10)
    assert await repo.update_action_phase(aid, P.RUNNING, 1, 0, start_time=at(7))
    assert (await repo.get_action(aid)).created_at == at(7)


async def test_duration_uses_the_moved_start(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.create_action(action(aid, created_at=at(10)))
    assert await repo.update_action_phase(aid, P.SUCCEEDED, 1, 0, end_time=at(12), start_time=at(4))
    row = await repo.get_action(aid)
    assert (row.created_at, row.ended_at, row.duration_ms) == (at(4), at(12), 8000)
    # a later, earlier start recomputes the duration against the kept ended_at
    assert await repo.update_action_phase(aid, P.SUCCEEDED, 1, 0, end_time=at(99), start_time=at(2))
    row = await repo.get_action(aid)
    assert (row.created_at, row.ended_at, row.duration_ms) == (at(2), at(12), 10000)


async def test_end_before_start_is_clamped_to_the_start(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.create_action(action(aid, created_at=at(10)))
    assert await repo.update_action_phase(aid, P.FAILED, 1, 0, end_time=at(3))
    row = await repo.get_action(aid)
    assert (row.ended_at, row.duration_ms) == (at(10), 0)


async def test_sub_millisecond_durations_round(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.create_action(action(aid, created_at=at(0)))
    assert await repo.update_action_phase(
        aid, P.SUCCEEDED, 1, 0, end_time=at(0) + timedelta(microseconds=1600)
    )
    assert (await repo.get_action(aid)).duration_ms == 2


async def test_root_update_notifies_the_run_even_when_blocked(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    await repo.create_action(action(rid.root, phase=P.SUCCEEDED))
    async with repo.watch_run_updates(rid) as runs, repo.watch_action_updates(rid.root) as roots:
        assert not await repo.update_action_phase(rid.root, P.RUNNING, 1, 0)
        assert (await next_item(runs)).phase is P.SUCCEEDED
        # the action channel stays silent for the blocked update: the first thing it sees is the next write
        await repo.update_action_detailed_info(rid.root, b"sentinel")
        assert (await next_item(roots)).detailed_info == b"sentinel"
        # and a child's update does not notify the run
        child = ActionId(rid, "c1")
        await repo.create_action(action(child))
        await repo.update_action_phase(child, P.RUNNING, 1, 0)
        assert await repo.update_action_phase(rid.root, P.FAILED, 1, 0)
        assert (await next_item(runs)).phase is P.FAILED


async def test_a_parent_promotion_moves_only_a_parent_still_below_running(
    repo: ActionRepo, project: str
) -> None:
    """A child's first sight promotes its parent to RUNNING. Upstream sends it through the ordinary
    guard, which lets anything overwrite FAILED and TIMED_OUT: after a restart every unrecorded child
    would promote its finished parent back to RUNNING, for good (the parent is labelled and never
    looked at again). DELIBERATE DIFFERENCE: a promotion moves only a parent below RUNNING."""
    rows = {phase: ActionId(run(project), f"from-{phase.name.lower()}") for phase in P}
    await repo.record_batch(actions=[action(aid, phase=phase, attempts=1) for phase, aid in rows.items()])
    await repo.record_batch(
        updates=[PhaseUpdate(aid, P.RUNNING, None, None, promotion=True) for aid in rows.values()]
    )
    for phase, aid in rows.items():
        row = await repo.get_action(aid)
        below = phase < P.RUNNING
        assert row.phase == (P.RUNNING if below else phase), phase
        assert row.attempts == 1, phase
    # The ordinary guard still lets the executor's own retry write move FAILED back to RUNNING.
    assert await repo.update_action_phase(rows[P.FAILED], P.RUNNING, 2, 0)
