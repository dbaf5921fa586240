"""Watches over LISTEN/NOTIFY: listening when the call returns, re-read rows, coalescing, bounded
queues that coalesce instead of dropping, rolled-back writes unseen, closing."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from taskaction_operator.model import ActionId, ActionPhase
from taskaction_operator.repo import Action, ActionRepo, PermanentRepoError, PhaseUpdate
from tests.integration.repo.helpers import action, event, eventually, next_item, next_matching, run

pytestmark = pytest.mark.db
P = ActionPhase


async def test_each_watch_sees_an_update_made_right_after_subscribing(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    child = ActionId(rid, "c1")
    await repo.record_batch(actions=[action(rid.root), action(child)])
    run_sub = await repo.watch_run_updates(rid)
    all_runs = await repo.watch_all_run_updates()
    act_sub = await repo.watch_action_updates(child)
    all_acts = await repo.watch_all_action_updates(rid)
    state_sub = await repo.watch_state_updates(child)
    assert repo.listener.listening
    try:
        # no waiting between subscribing and writing
        await repo.record_batch(
            updates=[PhaseUpdate(rid.root, P.RUNNING, 1, 0), PhaseUpdate(child, P.RUNNING, 1, 0)]
        )
        await repo.update_action_state(child, "s1")
        assert (await next_item(run_sub)).phase is P.RUNNING
        mine = await next_matching(all_runs, lambda a: a.project == project)
        assert (mine.run_id, mine.phase) == (rid, P.RUNNING)
        assert (await next_item(act_sub)).phase is P.RUNNING
        assert {(await next_item(all_acts)).name for _ in range(2)} == {"a0", "c1"}
        assert await next_item(state_sub) == "s1"
    finally:
        for sub in (run_sub, all_runs, act_sub, all_acts, state_sub):
            await sub.aclose()


async def test_watches_yield_rows_re_read_at_consumption(repo: ActionRepo, project: str) -> None:
    """The payload carries keys only; what a watcher gets is the row as it is when it reads."""
    aid = run(project).root
    await repo.create_action(action(aid))
    async with repo.watch_action_updates(aid) as sub:
        await repo.update_action_phase(aid, P.RUNNING, 1, 0)
        await repo.update_action_phase(aid, P.SUCCEEDED, 1, 0)
        first = await next_item(sub)
        assert first.phase is P.SUCCEEDED or first.phase is P.RUNNING
        last = first if first.phase is P.SUCCEEDED else await next_item(sub)
        assert last.phase is P.SUCCEEDED and last == await repo.get_action(aid)


async def test_a_burst_is_coalesced_per_key(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.create_action(action(aid))
    async with repo.watch_action_updates(aid) as sub:
        received = repo.listener.received
        for i in range(30):
            await repo.update_action_detailed_info(aid, f"v{i}".encode())

        await eventually(lambda: repo.listener.received >= received + 30, what="30 notifications delivered")
        burst = await next_item(sub)
        assert burst.detailed_info == b"v29"  # one read for the whole burst, of the latest row
        await repo.update_action_detailed_info(aid, b"sentinel")
        assert (await next_item(sub)).detailed_info == b"sentinel"  # nothing else was queued


async def test_all_actions_coalesces_per_action(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    ids = [ActionId(rid, f"c{i}") for i in range(5)]
    await repo.record_batch(actions=[action(a) for a in ids])
    async with repo.watch_all_action_updates(rid) as sub:
        received = repo.listener.received
        for phase in (P.WAITING_FOR_RESOURCES, P.INITIALIZING, P.RUNNING):
            await repo.record_batch(updates=[PhaseUpdate(a, phase, 1, 0) for a in ids])

        await eventually(lambda: repo.listener.received >= received + 15)
        got = [await next_item(sub) for _ in range(5)]
        assert sorted(a.name for a in got) == [a.name for a in ids]
        assert {a.phase for a in got} == {P.RUNNING}
        await repo.update_action_state(ids[0], "sentinel")
        assert (await next_item(sub)).action_state == "sentinel"


async def test_rolled_back_writes_are_not_seen(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    await repo.create_action(action(rid.root))
    async with repo.watch_run_updates(rid) as runs, repo.watch_action_updates(rid.root) as roots:
        with pytest.raises(PermanentRepoError):
            await repo.record_batch(
                updates=[PhaseUpdate(rid.root, P.RUNNING, 1, 0)], events=[event(rid.root, 2**40, P.RUNNING)]
            )
        await repo.update_action_phase(rid.root, P.INITIALIZING, 1, 0)  # the sentinel
        assert (await next_item(runs)).phase is P.INITIALIZING
        assert (await next_item(roots)).phase is P.INITIALIZING


async def test_a_slow_watcher_blocks_no_one_and_coalesces_instead_of_dropping(
    repo: ActionRepo, project: str
) -> None:
    rid = run(project)
    ids = [ActionId(rid, f"c{i:02d}") for i in range(40)]
    await repo.record_batch(actions=[action(a) for a in ids])
    repo.watch_max_pending = 5
    slow = await repo.watch_all_action_updates(rid)
    fast = await repo.watch_all_action_updates(rid)
    try:
        for a in ids:  # 40 distinct keys, one transaction each: the slow watcher overflows
            await repo.update_action_phase(a, P.RUNNING, 1, 0)
        seen: dict[str, Action] = {}
        while len(seen) < len(ids):
            item = await next_item(fast)
            seen[item.name] = item
        assert {a.phase for a in seen.values()} == {P.RUNNING}
        assert slow.overflows >= 1
        # the slow watcher, read at last, ends up with every action in its latest state
        caught_up: dict[str, Action] = {}
        while len(caught_up) < len(ids) or any(a.phase is not P.RUNNING for a in caught_up.values()):
            item = await next_item(slow)
            if item.name != "a0":
                caught_up[item.name] = item
        assert sorted(caught_up) == [a.name for a in ids]
    finally:
        await slow.aclose()
        await fast.aclose()


async def test_all_runs_overflow_re_reads_recent_runs(repo: ActionRepo, project: str) -> None:
    runs = [run(project, f"r{i}") for i in range(8)]
    await repo.record_batch(actions=[action(r.root) for r in runs])
    repo.watch_max_pending = 2
    async with repo.watch_all_run_updates() as sub:
        for r in runs:
            await repo.update_action_phase(r.root, P.RUNNING, 1, 0)
        await eventually(lambda: sub.overflows >= 1, what="an overflow")
        seen: set[str] = set()
        while len(seen) < len(runs):
            item = await next_item(sub)
            if item.project == project and item.phase is P.RUNNING:
                seen.add(item.run_name)
        assert seen == {r.name for r in runs}


async def test_state_watch_yields_changes_only(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.create_action(action(aid))
    async with repo.watch_state_updates(aid) as sub:
        await repo.update_action_phase(aid, P.RUNNING, 1, 0)  # no state yet: nothing to yield
        await repo.update_action_state(aid, "one")
        assert await next_item(sub) == "one"
        await repo.update_action_state(aid, "one")  # unchanged: not yielded again
        await repo.notify_state_update(aid)
        await repo.update_action_state(aid, "two")
        assert await next_item(sub) == "two"


async def test_notify_state_update_wakes_action_watchers(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    created = await repo.create_action(action(aid))
    async with repo.watch_action_updates(aid) as sub:
        await repo.notify_state_update(aid)
        assert await next_item(sub) == created


async def test_aclose_ends_a_waiting_iteration(repo: ActionRepo, project: str) -> None:
    sub = await repo.watch_action_updates(run(project).root)
    waiter = asyncio.ensure_future(anext(sub))
    await asyncio.sleep(0)
    await sub.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiter, 5)
    assert sub.closed
    async with repo.watch_run_updates(run(project)) as scoped:
        assert not scoped.closed
    assert scoped.closed


async def test_closing_the_repo_ends_every_watch(repo_dsn: str, project: str) -> None:
    own = await ActionRepo.connect(repo_dsn, pool_size=1)
    sub = await own.watch_all_run_updates()
    await own.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(sub), 5)


async def test_malformed_payloads_are_ignored(repo: ActionRepo, project: str, repo_dsn: str) -> None:
    rid = run(project)
    await repo.create_action(action(rid.root))
    async with (
        repo.watch_all_run_updates() as sub,
        await psycopg.AsyncConnection.connect(repo_dsn, autocommit=True) as raw,
    ):
        await raw.execute("SELECT pg_notify('run_updates', 'not/a-run')")
        await raw.execute(
            "SELECT pg_notify('run_updates', %s)", (f"{project}/development/none",)
        )  # no such run
        await repo.update_action_phase(rid.root, P.RUNNING, 1, 0)
        item = await next_matching(sub, lambda a: a.project == project)
        assert item.run_id == rid


async def test_abort_request_watch(private_repo: ActionRepo, project: str) -> None:
    repo = private_repo  # no operator sweeps this database (see conftest)
    rid = run(project)
    child = ActionId(rid, "c1")
    await repo.record_batch(actions=[action(rid.root), action(child)])
    async with repo.watch_abort_requests() as sub:
        await repo.abort_action(child, "x")
        await repo.abort_run(rid, "y")
        got = [await next_matching(sub, lambda a: a.project == project) for _ in range(2)]
        assert got == [child, rid.root]
