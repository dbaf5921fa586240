"""record_batch: one transaction, few statements, guarded updates applied in order, notifications
only for what changed, all-or-nothing on failure; and concurrent writers racing on one action."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any

import pytest

from taskaction_operator.model import ActionId, ActionPhase
from taskaction_operator.repo import ActionRepo, ListActionsRequest, PermanentRepoError, PhaseUpdate
from tests.integration.repo.helpers import action, at, event, next_item, run

pytestmark = pytest.mark.db
P = ActionPhase


async def test_batch_writes_everything_in_four_statements(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    ids = [ActionId(rid, f"c{i:03d}") for i in range(100)]
    before = repo.stats.statements
    await repo.record_batch(
        actions=[action(a, created_at=at(0)) for a in ids],
        events=[event(a, 1, P.RUNNING) for a in ids],
        updates=[PhaseUpdate(a, P.RUNNING, 1, 0, start_time=at(-1)) for a in ids],
    )
    assert repo.stats.statements - before == 4  # actions, events, one UPDATE for 100 actions, NOTIFY
    rows = [await repo.get_action(a) for a in ids]
    assert {(r.phase, r.created_at) for r in rows} == {(P.RUNNING, at(-1))}
    assert [len(await repo.list_events(a)) for a in ids[:5]] == [1] * 5


async def test_empty_batch_does_nothing(repo: ActionRepo) -> None:
    before = (repo.stats.statements, repo.stats.transactions)
    await repo.record_batch()
    assert (repo.stats.statements, repo.stats.transactions) == before


@pytest.mark.parametrize(
    ("sequence", "final"),
    [
        ([P.RUNNING, P.QUEUED, P.FAILED, P.QUEUED, P.SUCCEEDED], P.SUCCEEDED),
        ([P.SUCCEEDED, P.RUNNING], P.SUCCEEDED),
        ([P.RUNNING, P.SUCCEEDED], P.SUCCEEDED),
        ([P.FAILED, P.QUEUED], P.QUEUED),
        ([P.QUEUED, P.FAILED], P.FAILED),
        ([P.PAUSED, P.RUNNING, P.TIMED_OUT, P.RUNNING], P.RUNNING),
    ],
)
async def test_updates_of_one_action_apply_in_order(
    repo: ActionRepo, project: str, sequence: list[ActionPhase], final: ActionPhase
) -> None:
    rid = run(project)
    batched, single, other = ActionId(rid, "batched"), ActionId(rid, "single"), ActionId(rid, "other")
    await repo.record_batch(actions=[action(single, created_at=at(0))])
    updates = [PhaseUpdate(batched, p, i + 1, 0, end_time=at(i + 1)) for i, p in enumerate(sequence)]
    before = repo.stats.statements
    # the action is created in the same batch; another action's update is interleaved
    await repo.record_batch(
        actions=[action(batched, created_at=at(0)), action(other)],
        updates=[updates[0], PhaseUpdate(other, P.RUNNING, 1, 0), *updates[1:]],
    )
    assert repo.stats.statements - before == 2 + len(sequence)  # insert, one UPDATE per round, NOTIFY
    for u in updates:  # the same updates one by one must end in the same row
        await repo.update_action_phase(single, u.phase, u.attempts, u.cache_status, end_time=u.end_time)
    got, want = await repo.get_action(batched), await repo.get_action(single)
    assert got.phase is final
    assert (got.phase, got.attempts, got.ended_at, got.duration_ms) == (
        want.phase,
        want.attempts,
        want.ended_at,
        want.duration_ms,
    )
    assert (await repo.get_action(other)).phase is P.RUNNING


async def test_batch_notifies_only_what_changed(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    existing, fresh, done, evented = (ActionId(rid, n) for n in ("existing", "fresh", "done", "evented"))
    await repo.record_batch(
        actions=[action(rid.root, phase=P.SUCCEEDED), action(existing), action(done, phase=P.SUCCEEDED)]
    )
    async with repo.watch_all_action_updates(rid) as sub, repo.watch_run_updates(rid) as runs:
        before = repo.stats.notifications
        await repo.record_batch(
            actions=[action(existing, task_name="ignored"), action(fresh)],  # existing: conflict, no notify
            events=[event(evented, 1, P.RUNNING)],
            updates=[
                PhaseUpdate(done, P.RUNNING, 1, 0),  # blocked: no notify
                PhaseUpdate(existing, P.RUNNING, 1, 0),  # applied
                PhaseUpdate(rid.root, P.QUEUED, 1, 0),  # blocked, but the run is notified anyway
            ],
        )
        # run r1; actions fresh, evented, existing
        assert repo.stats.notifications - before == 4
        assert (await next_item(runs)).phase is P.SUCCEEDED
        seen = {(await next_item(sub)).name for _ in range(2)}
        await repo.update_action_detailed_info(rid.root, b"sentinel")
        while (item := await next_item(sub)).name != "a0":
            seen.add(item.name)
        assert seen == {"fresh", "existing"}  # evented has no row to re-read; done and a0 were blocked
        assert item.detailed_info == b"sentinel"


async def test_failed_batch_rolls_back_and_notifies_nobody(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    kept = ActionId(rid, "kept")
    await repo.record_batch(actions=[action(kept)])
    async with repo.watch_all_action_updates(rid) as sub:
        with pytest.raises(PermanentRepoError) as info:
            await repo.record_batch(
                actions=[action(ActionId(rid, "new"))],
                events=[event(kept, 1, P.RUNNING), event(kept, 2**40, P.RUNNING)],  # INTEGER overflow
                updates=[PhaseUpdate(kept, P.RUNNING, 7, 0)],
            )
        assert info.value.sqlstate == "22003"
        row = await repo.get_action(kept)
        assert (row.phase, row.attempts) == (P.QUEUED, 1)
        assert await repo.list_events(kept) == []
        assert [a.name for a in (await repo.list_actions(ListActionsRequest(run=rid))).actions] == ["kept"]
        # nothing was notified: the first item is the sentinel written afterwards
        await repo.update_action_phase(kept, P.INITIALIZING, 2, 0)
        first = await next_item(sub)
        assert (first.name, first.phase) == ("kept", P.INITIALIZING)
    # the connection went back to the pool healthy
    await repo.record_batch(updates=[PhaseUpdate(kept, P.RUNNING, 3, 0)])
    assert (await repo.get_action(kept)).attempts == 3


async def test_concurrent_writers_end_in_the_state_the_guard_allows(repo_dsn: str, project: str) -> None:
    """Two repositories (two pools) race random forward and backward moves on one action: whatever
    the interleaving, the guard keeps the highest phase written, and every applied write is one the
    guard allowed at the time (phases only went up)."""
    aid = run(project).root
    writers = [await ActionRepo.connect(repo_dsn, pool_size=3) for _ in range(2)]
    try:
        await writers[0].create_action(action(aid))
        rng = random.Random(7)
        plans = [
            [rng.choice([P.QUEUED, P.INITIALIZING, P.RUNNING, P.SUCCEEDED]) for _ in range(40)]
            for _ in writers
        ]

        async def write(repo: ActionRepo, plan: list[ActionPhase]) -> list[tuple[ActionPhase, bool]]:
            out = []
            for i, phase in enumerate(plan):
                if i % 2:
                    ok = await repo.update_action_phase(aid, phase, 1, 0)
                else:
                    await repo.record_batch(updates=[PhaseUpdate(aid, phase, 1, 0)])
                    ok = True  # unknown for batches
                out.append((phase, ok))
            return out

        results = await asyncio.gather(*(write(w, p) for w, p in zip(writers, plans, strict=True)))
        row = await writers[0].get_action(aid)
        assert row.phase is max(max(p) for p in plans)
        assert all(ok for res in results for phase, ok in res if phase is row.phase)
    finally:
        for w in writers:
            await w.close()


async def _concurrently(*writes: Coroutine[Any, Any, Any]) -> None:
    """Run ``writes`` at once; the first failure cancels (and awaits) the others, so no write is left
    holding a pooled connection after the test."""
    async with asyncio.TaskGroup() as tg:
        for w in writes:
            tg.create_task(w)


def _orders(ids: list[ActionId]) -> list[list[ActionId]]:
    half = len(ids) // 2
    return [ids, ids[::-1], ids[half:] + ids[:half], random.Random(7).sample(ids, len(ids))]


@pytest.mark.parametrize("table", ["shared", "empty"])
async def test_overlapping_updates_in_different_orders_do_not_deadlock(
    request: pytest.FixtureRequest, repo: ActionRepo, project: str, table: str
) -> None:
    """Rows are locked in key order whatever the order of the batch and the plan. On a small table
    the planner hashes the batch and scans ``actions`` in the rows' physical order, which every
    update reshuffles; on a large one it looks the rows up one by one in the batch's order."""
    if table == "empty":
        await repo.close()
        repo = await ActionRepo.connect(request.getfixturevalue("empty_dsn"), pool_size=4, max_overflow=4)
    rid = run(project)
    ids = [ActionId(rid, f"c{i:03d}") for i in range(50)]
    await repo.record_batch(actions=[action(a) for a in ids])
    # FAILED lets an action go round again (the guard's retry path): many batches over the same rows
    phases = [*[P.QUEUED, P.WAITING_FOR_RESOURCES, P.INITIALIZING, P.RUNNING, P.FAILED] * 5, P.SUCCEEDED]

    async def churn(order: list[ActionId]) -> None:
        for phase in phases:
            await repo.record_batch(updates=[PhaseUpdate(a, phase, 1, 0) for a in order])

    try:
        await _concurrently(*(churn(order) for order in _orders(ids)))
        assert {(await repo.get_action(a)).phase for a in ids} == {P.SUCCEEDED}
    finally:
        await repo.close()


async def test_overlapping_inserts_in_different_orders_do_not_deadlock(
    repo: ActionRepo, project: str
) -> None:
    """Concurrent inserts of the same new keys wait on each other key by key: in one order for all."""
    for r in range(4):
        rid = run(project, f"r{r}")
        ids = [ActionId(rid, f"c{i:03d}") for i in range(200)]

        async def insert(order: list[ActionId]) -> None:
            await repo.record_batch(
                actions=[action(a) for a in order], events=[event(a, 1, P.QUEUED) for a in order]
            )

        await _concurrently(*(insert(order) for order in _orders(ids)))
        listed = await repo.list_actions(ListActionsRequest(run=rid, limit=200))
        assert sorted(a.name for a in listed.actions) == [a.name for a in ids]
        assert [len(await repo.list_events(a)) for a in ids[::50]] == [1] * 4


async def test_copy_and_insert_paths_racing_on_the_same_new_keys_do_not_deadlock(
    repo: ActionRepo, repo_dsn: str, project: str
) -> None:
    """A large batch COPYs its events before anything else; a batch on the INSERT path must take
    the same keys in the same order of tables (events, then actions), or two writers recording the
    same new objects (two replicas) could each wait for the other."""
    inserting = await ActionRepo.connect(repo_dsn, pool_size=4, max_overflow=4, copy_events_min=0)
    try:
        for r in range(6):
            rid = run(project, f"r{r}")
            ids = [ActionId(rid, f"c{i:03d}") for i in range(100)]
            rows = [action(a) for a in ids]
            events = [event(a, 1, P.QUEUED) for a in ids]
            assert len(events) >= repo.copy_events_min  # so `repo` takes the COPY path
            await _concurrently(
                repo.record_batch(actions=rows, events=events),
                inserting.record_batch(actions=rows, events=events),
            )
            listed = await repo.list_actions(ListActionsRequest(run=rid, limit=200))
            assert len(listed.actions) == len(ids)
            assert [len(await repo.list_events(a)) for a in ids[::25]] == [1] * 4
    finally:
        await inserting.close()


async def test_an_update_without_attempts_or_cache_status_keeps_the_stored_ones(
    repo: ActionRepo, project: str
) -> None:
    """Parent promotion sends RUNNING alone; the parent's attempts and cache status stay as they are."""
    aid = run(project).root
    await repo.create_action(action(aid))
    await repo.record_batch(updates=[PhaseUpdate(aid, ActionPhase.RUNNING, 3, 2)])
    await repo.record_batch(updates=[PhaseUpdate(aid, ActionPhase.RUNNING, None, None)])
    row = await repo.get_action(aid)
    assert (row.phase, row.attempts, row.cache_status) == (ActionPhase.RUNNING, 3, 2)
