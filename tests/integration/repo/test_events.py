"""Events: idempotent insert (first write wins), chunking, and the three readers (upstream
runs/repository/impl/action.go: InsertEvents, ListEvents, ListEventsSince, GetLatestEventByAttempt)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from taskaction_operator.model import ActionId, ActionPhase
from taskaction_operator.repo import ActionRepo, NotFoundError, PermanentRepoError
from tests.integration.repo.helpers import action, at, event, next_item, run

pytestmark = pytest.mark.db
P = ActionPhase


async def test_insert_events_is_idempotent_and_first_write_wins(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.insert_events([event(aid, 1, P.RUNNING, info=b"first")])
    await repo.insert_events(
        [event(aid, 1, P.RUNNING, info=b"second"), event(aid, 1, P.RUNNING, 1, info=b"v1")]
    )
    got = await repo.list_events(aid)
    assert [(e.attempt, e.phase, e.version, e.info) for e in got] == [
        (1, P.RUNNING, 0, b"first"),
        (1, P.RUNNING, 1, b"v1"),
    ]


async def test_duplicates_within_one_call_keep_the_first(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.insert_events([event(aid, 1, P.QUEUED, info=b"a"), event(aid, 1, P.QUEUED, info=b"b")])
    assert [e.info for e in await repo.list_events(aid)] == [b"a"]


async def test_empty_insert_is_a_no_op(repo: ActionRepo) -> None:
    before = repo.stats.statements
    await repo.insert_events([])
    assert repo.stats.statements == before


async def test_error_kind_is_stored(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.insert_events([event(aid, 1, P.FAILED, error_kind="KIND_USER")])
    assert (await repo.list_events(aid))[0].error_kind == "KIND_USER"


async def test_insert_events_chunks_beyond_one_chunk(repo: ActionRepo, project: str, repo_dsn: str) -> None:
    """12,001 events with upstream's 5,000-row chunk: the COPY meets the re-sent duplicates, so the
    idempotent INSERT runs: three statements, one transaction, all stored."""
    rid = run(project)
    events = [
        event(ActionId(rid, f"a{i % 100}"), 1 + i // 1000, P.RUNNING, i % 1000 // 100) for i in range(12001)
    ]
    # re-send a slice: the duplicates across chunks are ignored
    events += events[4990:5010]
    before = repo.stats.statements
    await repo.insert_events(events)
    # the COPY that failed, three INSERTs of ≤5000 rows, and the NOTIFY
    assert (repo.stats.statements - before, repo.stats.copy_fallbacks) == (5, 1)
    with psycopg.connect(repo_dsn) as conn:
        count = conn.execute("SELECT count(*) FROM action_events WHERE project = %s", (project,)).fetchone()
    assert count == (12001,)


async def test_chunks_commit_together(repo: ActionRepo, project: str, repo_dsn: str) -> None:
    """A bad row in the last chunk rolls back the earlier chunks too (upstream would keep them)."""
    aid = run(project).root
    repo.events_chunk_rows = 10
    events = [event(aid, 1, P.RUNNING, v) for v in range(25)] + [event(aid, 2**40, P.RUNNING)]
    with pytest.raises(Exception, match="out of range"):
        await repo.insert_events(events)
    assert await repo.list_events(aid) == []


async def test_insert_events_notifies_each_action_once(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    a1, a2 = ActionId(rid, "c1"), ActionId(rid, "c2")
    await repo.record_batch(actions=[action(a1), action(a2)])
    async with repo.watch_all_action_updates(rid) as sub:
        before = repo.stats.notifications
        await repo.insert_events([event(a, 1, P.RUNNING, v) for a in (a1, a2) for v in range(5)])
        assert repo.stats.notifications - before == 2
        seen = {(await next_item(sub)).name, (await next_item(sub)).name}
        assert seen == {"c1", "c2"}


async def test_list_events_order_and_limit(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    keys = [(2, P.QUEUED, 0), (1, P.SUCCEEDED, 0), (1, P.RUNNING, 1), (1, P.RUNNING, 0), (1, P.QUEUED, 0)]
    await repo.insert_events([event(aid, *k) for k in keys])
    await repo.insert_events([event(ActionId(run(project), "other"), 1, P.QUEUED)])
    got = [(e.attempt, e.phase, e.version) for e in await repo.list_events(aid)]
    assert got == sorted(keys)
    assert [(e.attempt, e.phase, e.version) for e in await repo.list_events(aid, limit=2)] == sorted(keys)[:2]


async def test_get_latest_event_by_attempt_orders_by_phase_then_version(
    repo: ActionRepo, project: str
) -> None:
    aid = run(project).root
    # inserted last, but a lower phase: "latest" is by phase and version, not by time
    await repo.insert_events(
        [event(aid, 1, P.RUNNING, 3), event(aid, 1, P.SUCCEEDED, 1), event(aid, 2, P.QUEUED)]
    )
    await repo.insert_events([event(aid, 1, P.SUCCEEDED, 0), event(aid, 1, P.QUEUED, 9)])
    latest = await repo.get_latest_event_by_attempt(aid, 1)
    assert (latest.phase, latest.version) == (P.SUCCEEDED, 1)
    assert (await repo.get_latest_event_by_attempt(aid, 2)).phase is P.QUEUED
    with pytest.raises(NotFoundError):
        await repo.get_latest_event_by_attempt(aid, 3)


async def test_list_events_since_is_strict_and_pages(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.insert_events([event(aid, 1, P.QUEUED, v) for v in range(3)])
    first = await repo.list_events(aid)
    t1 = first[0].updated_at
    assert t1 is not None and all(e.updated_at == t1 for e in first)  # one transaction, one timestamp

    async def later() -> None:
        # a later transaction has a later CURRENT_TIMESTAMP
        while True:
            await repo.insert_events(
                [event(aid, 1, P.RUNNING, v) for v in range(4)] + [event(aid, 2, P.RUNNING)]
            )
            rows = await repo.list_events(aid)
            if all(e.updated_at is not None and e.updated_at > t1 for e in rows if e.phase is P.RUNNING):
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(later(), 10)
    since = await repo.list_events_since(aid, 1, t1)
    assert [(e.phase, e.version) for e in since] == [(P.RUNNING, v) for v in range(4)]  # strictly after t1
    assert [e.version for e in await repo.list_events_since(aid, 1, t1, offset=1, limit=2)] == [1, 2]
    assert len(await repo.list_events_since(aid, 2, t1)) == 1
    before_all = t1.replace(year=2000)
    assert len(await repo.list_events_since(aid, 1, before_all)) == 7


async def test_large_new_batches_are_copied(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    events = [
        event(ActionId(rid, f"c{i % 7}"), 1, P.RUNNING, i, info=bytes([i % 256]) * 3) for i in range(500)
    ]
    before = repo.stats.statements
    async with repo.watch_all_action_updates(rid) as sub:
        await repo.record_batch(actions=[action(ActionId(rid, "c0"))], events=events)
        assert (repo.stats.statements - before, repo.stats.copy_fallbacks) == (3, 0)  # COPY, INSERT, NOTIFY
        assert (await next_item(sub)).name == "c0"  # copied events notify their actions
    stored = [e for i in range(7) for e in await repo.list_events(ActionId(rid, f"c{i}"))]
    assert sorted((e.name, e.version, e.info) for e in stored) == sorted(
        (e.name, e.version, e.info) for e in events
    )
    assert all(e.created_at is not None and e.created_at == e.updated_at for e in stored)


async def test_copy_falls_back_when_a_key_exists_and_first_write_wins(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.insert_events([event(aid, 1, P.RUNNING, 7, info=b"first")])
    await repo.insert_events([event(aid, 1, P.RUNNING, v, info=b"second") for v in range(100)])
    assert repo.stats.copy_fallbacks == 1
    got = {e.version: e.info for e in await repo.list_events(aid)}
    assert len(got) == 100 and got[7] == b"first" and got[8] == b"second"


async def test_copy_falls_back_on_duplicates_within_the_batch(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    batch = [event(aid, 1, P.RUNNING, v, info=b"a") for v in range(80)] + [
        event(aid, 1, P.RUNNING, 3, info=b"b")
    ]
    await repo.insert_events(batch)
    assert repo.stats.copy_fallbacks == 1
    got = {e.version: e.info for e in await repo.list_events(aid)}
    assert len(got) == 80 and got[3] == b"a"


async def test_bad_data_in_a_copy_fails_like_the_insert(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    with pytest.raises(PermanentRepoError) as info:
        await repo.insert_events(
            [event(aid, 1, P.RUNNING, v) for v in range(100)] + [event(aid, 2**40, P.RUNNING)]
        )
    assert info.value.sqlstate == "22003"
    assert repo.stats.copy_fallbacks == 0
    assert await repo.list_events(aid) == []


async def test_a_failure_after_the_copy_rolls_it_back(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    with pytest.raises(PermanentRepoError):
        await repo.record_batch(
            events=[event(rid.root, 1, P.RUNNING, v) for v in range(100)],
            actions=[action(rid.root, attempts=2**40)],  # INTEGER overflow, after the COPY
        )
    assert await repo.list_events(rid.root) == []


async def test_events_with_explicit_created_at_use_the_insert(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    before = repo.stats.statements
    await repo.insert_events([event(aid, 1, P.RUNNING, v, created_at=at(v)) for v in range(100)])
    assert repo.stats.statements - before == 2  # INSERT, NOTIFY: no COPY attempted
    assert [e.created_at for e in await repo.list_events(aid)] == [at(v) for v in range(100)]


@pytest.mark.parametrize("copy_min", [0, 1], ids=["insert", "copy"])
async def test_a_derived_event_never_becomes_a_second_row_of_a_reported_transition(
    repo_dsn: str, project: str, copy_min: int
) -> None:
    """Flyte's executor reported RUNNING as version 1 (before the status write that shows it); the
    operator's derivation of the same transition (version 0) must not add a second row, on the INSERT
    path or the COPY path (``copy_min=1``). A new transition still goes in."""
    r = await ActionRepo.connect(repo_dsn, pool_size=2, max_overflow=0, copy_events_min=copy_min)
    try:
        aid = run(project).root
        await r.create_action(action(aid))
        await r.insert_reported_events([event(aid, 1, P.QUEUED), event(aid, 1, P.RUNNING, 1)])
        derived = [event(aid, 1, P.QUEUED), event(aid, 1, P.RUNNING), event(aid, 1, P.SUCCEEDED)]
        await r.record_batch(events=derived, derived=True)
        assert [(e.attempt, e.phase, e.version) for e in await r.list_events(aid)] == [
            (1, P.QUEUED, 0),
            (1, P.RUNNING, 1),
            (1, P.SUCCEEDED, 0),
        ]
        # Upstream's InsertEvents keeps every version, as before.
        await r.insert_events([event(aid, 1, P.RUNNING, 0)])
        assert [(e.phase, e.version) for e in await r.list_events(aid) if e.phase is P.RUNNING] == [
            (P.RUNNING, 0),
            (P.RUNNING, 1),
        ]
    finally:
        await r.close()
