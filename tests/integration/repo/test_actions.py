"""Single-object methods: create/get, detailed info, state, aborts, root listing (upstream
runs/repository/impl/action.go: CreateAction, GetAction, UpdateActionDetailedInfo, UpdateActionState,
AbortRun, AbortAction, ListRootActions)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from flyteidl2.workflow import run_info_pb2

from taskaction_operator.model import ActionId, ActionPhase, ActionType, RunSource
from taskaction_operator.repo import Action, ActionRepo, AlreadyFinishedError, NotFoundError
from tests.integration.repo.helpers import action, at, next_item, next_matching, run

pytestmark = pytest.mark.db


async def test_create_action_inserts_and_returns_the_stored_row(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    row = action(rid.root, action_type=ActionType.TASK, created_at=at(0), task_name="wf.main")
    row.set_run_source(RunSource.CLI)
    row.set_detailed_info(run_info_pb2.RunInfo(inputs_uri="s3://b/inputs.pb"))
    stored = await repo.create_action(row)
    assert stored.created_at == at(0)
    assert stored.updated_at is not None and stored.updated_at > at(0)
    assert stored.run_source == "RUN_SOURCE_CLI"
    assert stored.get_detailed_info() == run_info_pb2.RunInfo(inputs_uri="s3://b/inputs.pb")
    assert (stored.phase, stored.attempts, stored.action_details) == (ActionPhase.QUEUED, 1, b"{}")
    assert stored.duration_ms is None and stored.ended_at is None
    expected = row.clone()
    expected.updated_at = stored.updated_at
    assert stored == expected
    assert await repo.get_action(rid.root) == stored
    assert await repo.get_run(rid) == stored


async def test_create_action_conflict_returns_the_existing_row(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    first = await repo.create_action(action(aid, task_name="first"))
    again = await repo.create_action(action(aid, task_name="second", phase=ActionPhase.RUNNING))
    assert again == first and again.task_name == "first"


async def test_create_action_with_end_time_computes_duration(repo: ActionRepo, project: str) -> None:
    """Traces are recorded finished: duration from created_at to ended_at, never negative."""
    rid = run(project)
    done = await repo.create_action(
        action(ActionId(rid, "t1"), phase=ActionPhase.SUCCEEDED, created_at=at(0), ended_at=at(2.5))
    )
    assert (done.ended_at, done.duration_ms) == (at(2.5), 2500)
    early = await repo.create_action(action(ActionId(rid, "t2"), created_at=at(10), ended_at=at(5)))
    assert early.duration_ms == 0


async def test_create_action_defaults_created_at_to_now(repo: ActionRepo, project: str) -> None:
    before = datetime.now(UTC)
    stored = await repo.create_action(action(run(project).root))
    assert stored.created_at is not None and before - timedelta(seconds=5) <= stored.created_at


async def test_create_action_accepts_update_triggered_at(repo: ActionRepo, project: str) -> None:
    stored = await repo.create_action(
        action(run(project).root, trigger_name="nightly"), update_triggered_at=True
    )
    assert stored.trigger_name == "nightly"


async def test_create_action_notifies_only_when_inserted(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    await repo.create_action(action(aid))
    async with repo.watch_action_updates(aid) as sub:
        await repo.create_action(action(aid))  # conflict: no notification
        await repo.update_action_phase(aid, ActionPhase.RUNNING, 1, 0)  # the sentinel
        first = await next_item(sub)
        assert first.phase is ActionPhase.RUNNING


async def test_get_run_is_the_row_without_parent(repo: ActionRepo, project: str) -> None:
    rid = run(project)
    await repo.create_action(action(ActionId(rid, "c1")))
    with pytest.raises(NotFoundError, match="run not found"):
        await repo.get_run(rid)
    root = await repo.create_action(action(rid.root))
    assert await repo.get_run(rid) == root


async def test_update_action_detailed_info(repo: ActionRepo, project: str) -> None:
    aid = run(project).root
    created = await repo.create_action(action(aid))
    info = run_info_pb2.RunInfo(outputs_uri="s3://b/out")
    async with repo.watch_action_updates(aid) as sub:
        await repo.update_action_detailed_info(aid, info)
        seen = await next_matching(sub, lambda a: a.detailed_info is not None)
    assert seen.get_detailed_info() == info
    assert (
        seen.updated_at is not None
        and created.updated_at is not None
        and seen.updated_at > created.updated_at
    )
    await repo.update_action_detailed_info(aid, b"")
    assert (await repo.get_action(aid)).detailed_info == b""
    with pytest.raises(NotFoundError):
        await repo.update_action_detailed_info(ActionId.of(project, "d", "none", "a0"), b"x")


async def test_action_state_lives_in_a_table_of_its_own(
    repo: ActionRepo, project: str, repo_dsn: str
) -> None:
    """Upstream's bug: a state with a string phase went into the INTEGER phase column. Not here, and
    not in upstream's actions table either (its sqlx reads refuse an unknown column)."""
    aid = run(project).root
    await repo.create_action(action(aid, phase=ActionPhase.RUNNING))
    assert await repo.get_action_state(aid) is None
    state = '{"phase": "ACTION_PHASE_SUCCEEDED", "outputs": {"x": 1}}'
    await repo.update_action_state(aid, state)
    assert await repo.get_action_state(aid) == state
    row = await repo.get_action(aid)
    assert (row.phase, row.action_state, row.action_details) == (ActionPhase.RUNNING, state, b"{}")
    with psycopg.connect(repo_dsn) as conn:
        stored = conn.execute(
            "SELECT a.phase, s.state FROM actions a JOIN taskaction_action_states s"
            " USING (project, domain, run_name, name) WHERE project = %s AND name = 'a0'",
            (project,),
        ).fetchone()
    assert stored == (4, state)
    await repo.update_action_state(aid, "second")
    assert await repo.get_action_state(aid) == "second"
    missing = ActionId.of(project, "d", "none", "a0")
    with pytest.raises(NotFoundError):
        await repo.update_action_state(missing, "{}")
    with pytest.raises(NotFoundError):
        await repo.get_action_state(missing)


async def test_abort_run_marks_only_the_root_unconditionally(private_repo: ActionRepo, project: str) -> None:
    repo = private_repo  # no operator sweeps this database (see conftest)
    rid = run(project)
    await repo.create_action(action(rid.root, phase=ActionPhase.SUCCEEDED, created_at=at(0), ended_at=at(3)))
    await repo.create_action(action(ActionId(rid, "c1"), phase=ActionPhase.RUNNING, created_at=at(1)))
    await repo.mark_abort_attempt(rid.root)
    await repo.abort_run(rid, "user asked", aborted_by="someone")
    root = await repo.get_action(rid.root)
    assert root.phase is ActionPhase.ABORTED  # no guard: SUCCEEDED is overwritten
    assert (root.abort_reason, root.abort_attempt_count) == ("user asked", 0)
    assert root.abort_requested_at is not None
    assert (root.ended_at, root.duration_ms) == (at(3), 3000)  # ended_at kept (write-once)
    child = await repo.get_action(ActionId(rid, "c1"))
    assert child.phase is ActionPhase.RUNNING and child.abort_requested_at is None
    with pytest.raises(NotFoundError, match="run not found"):
        await repo.abort_run(run(project, "none"), "x")


@pytest.mark.parametrize("finished", [ActionPhase.SUCCEEDED, ActionPhase.FAILED, ActionPhase.TIMED_OUT])
async def test_an_abort_without_force_leaves_a_finished_run_or_action_as_it_ended(
    private_repo: ActionRepo, project: str, finished: ActionPhase
) -> None:
    """Ours (upstream's AbortRun is the unconditional SET above): ``force=False`` refuses to rewrite a
    terminal phase, atomically; an unfinished one, or an abort already requested, proceeds."""
    repo = private_repo
    rid = run(project)
    await repo.create_action(action(rid.root, phase=finished, created_at=at(0), ended_at=at(3)))
    await repo.create_action(action(ActionId(rid, "c1"), phase=finished, created_at=at(1), ended_at=at(2)))
    await repo.create_action(action(ActionId(rid, "c2"), phase=ActionPhase.RUNNING, created_at=at(1)))
    with pytest.raises(AlreadyFinishedError, match=finished.name):
        await repo.abort_run(rid, "x", force=False)
    with pytest.raises(AlreadyFinishedError, match=finished.name):
        await repo.abort_action(ActionId(rid, "c1"), "x", force=False)
    for name in ("a0", "c1"):
        row = await repo.get_action(ActionId(rid, name))
        assert (row.phase, row.abort_requested_at) == (finished, None)
    await repo.abort_action(ActionId(rid, "c2"), "x", force=False)
    assert (await repo.get_action(ActionId(rid, "c2"))).phase is ActionPhase.ABORTED
    await repo.abort_action(ActionId(rid, "c2"), "again", force=False)  # ABORTED: no phase rewritten
    with pytest.raises(NotFoundError, match="run not found"):
        await repo.abort_run(run(project, "none"), "x", force=False)
    with pytest.raises(NotFoundError):
        await repo.abort_action(ActionId(rid, "none"), "x", force=False)


async def test_abort_sets_ended_at_when_unset(private_repo: ActionRepo, project: str) -> None:
    repo = private_repo  # no operator sweeps this database (see conftest)
    aid = ActionId(run(project), "c1")
    created = await repo.create_action(action(aid, phase=ActionPhase.RUNNING, created_at=at(0)))
    await repo.abort_action(aid, "stop")
    row = await repo.get_action(aid)
    assert row.phase is ActionPhase.ABORTED and row.abort_reason == "stop"
    assert row.ended_at is not None and row.ended_at > created.created_at  # type: ignore[operator]
    assert row.duration_ms == round((row.ended_at - at(0)).total_seconds() * 1000)
    with pytest.raises(NotFoundError, match="action not found"):
        await repo.abort_action(ActionId(run(project), "none"), "x")


async def test_abort_bookkeeping(private_repo: ActionRepo, project: str) -> None:
    repo = private_repo  # no operator sweeps this database (see conftest)
    rid = run(project)
    a1, a2 = ActionId(rid, "c1"), ActionId(rid, "c2")
    for aid in (rid.root, a1, a2):
        await repo.create_action(action(aid))

    def mine(rows: list[Action]) -> list[ActionId]:
        return [a.action_id for a in rows if a.project == project]

    assert mine(await repo.list_pending_aborts()) == []
    await repo.abort_action(a2, "first")
    await repo.abort_run(rid, "second")
    assert mine(await repo.list_pending_aborts()) == [a2, rid.root]  # oldest request first
    assert [await repo.mark_abort_attempt(a2) for _ in range(3)] == [1, 2, 3]
    await repo.clear_abort_request(a2)
    row = await repo.get_action(a2)
    assert (row.abort_requested_at, row.abort_attempt_count) == (None, 0)
    assert (row.abort_reason, row.phase) == ("first", ActionPhase.ABORTED)  # kept after clear
    assert mine(await repo.list_pending_aborts()) == [rid.root]
    # mark does not check that an abort is still requested; clear of a missing row is fine
    assert await repo.mark_abort_attempt(a2) == 1
    await repo.clear_abort_request(ActionId(rid, "none"))
    with pytest.raises(NotFoundError):
        await repo.mark_abort_attempt(ActionId(rid, "none"))
    # abort re-arms the counter
    await repo.abort_action(a2, "again")
    assert (await repo.get_action(a2)).abort_attempt_count == 0


async def test_abort_notifications(private_repo: ActionRepo, project: str) -> None:
    repo = private_repo  # no operator sweeps this database (see conftest)
    rid = run(project)
    await repo.create_action(action(rid.root))
    async with (
        repo.watch_run_updates(rid) as runs,
        repo.watch_action_updates(rid.root) as roots,
        repo.watch_abort_requests() as aborts,
    ):
        await repo.abort_action(rid.root, "a")  # notifies the action, not the run
        assert (await next_item(roots)).abort_reason == "a"
        assert await next_matching(aborts, lambda a: a == rid.root) == rid.root
        await repo.abort_run(rid, "b")  # notifies both
        assert (await next_item(runs)).abort_reason == "b"  # the first run notification is abort_run's
        assert (await next_matching(roots, lambda a: a.abort_reason == "b")).phase is ActionPhase.ABORTED


async def test_list_root_actions(repo: ActionRepo, project: str) -> None:
    # A time window of this test's own: the unfiltered query below sees every project's rows.
    base = datetime(2099, 1, 1, tzinfo=UTC) + timedelta(seconds=random.randrange(10**9))

    def at(seconds: float) -> datetime:
        return base + timedelta(seconds=seconds)

    for i in range(5):
        rid = run(project, f"r{i}")
        await repo.create_action(action(rid.root, created_at=at(i * 10)))
        await repo.create_action(action(ActionId(rid, "c1"), created_at=at(i * 10 + 1)))
    await repo.create_action(action(run(project, "other", domain="prod").root, created_at=at(25)))

    def names(rows: list[Action]) -> list[str]:
        return [r.run_name for r in rows]

    assert names(await repo.list_root_actions(project, "development")) == ["r4", "r3", "r2", "r1", "r0"]
    assert names(await repo.list_root_actions(project, "development", start=at(10), end=at(30))) == [
        "r3",
        "r2",
        "r1",
    ]  # both bounds inclusive
    assert names(await repo.list_root_actions(project, "development", start=at(11))) == ["r4", "r3", "r2"]
    assert names(await repo.list_root_actions(project, "development", end=at(9))) == ["r0"]
    assert names(await repo.list_root_actions(project, "development", limit=2)) == ["r4", "r3"]
    assert names(await repo.list_root_actions(project, "", start=at(20), end=at(30))) == ["r3", "other", "r2"]
    everyone = await repo.list_root_actions("", "", start=at(0), end=at(40), limit=0)
    assert names(everyone) == ["r4", "r3", "other", "r2", "r1", "r0"]
