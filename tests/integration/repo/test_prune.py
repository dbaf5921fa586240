"""``ActionRepo.prune_runs`` against the real PostgreSQL: a finished run goes with every row it has
(actions, events, our state rows), and nothing that is unfinished, recent, being aborted or being
written right now; filters; a dry run counts exactly what a real pass then deletes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import ActionRepo, InvalidArgumentError, NotFoundError
from tests.integration.conftest import connected
from tests.integration.repo.helpers import DONE, at, count_rows, make_run, run

pytestmark = pytest.mark.db

CUTOFF = datetime(2026, 6, 1, tzinfo=UTC)  # the rows below end in January (old) or "now" (recent)


async def test_an_old_finished_run_goes_with_every_row_and_a_recent_one_stays(
    repo: ActionRepo, repo_dsn: str, project: str
) -> None:
    old, recent = run(project, "rold"), run(project, "rrecent")
    await make_run(repo, old)
    await make_run(repo, recent, ended=datetime.now(UTC))
    assert count_rows(repo_dsn, old) == (3, 6, 3)

    result = await repo.prune_runs(CUTOFF, project=project)

    assert (result.runs, result.actions, result.events, result.dry_run) == (1, 3, 6, False)
    assert count_rows(repo_dsn, old) == (0, 0, 0)
    with pytest.raises(NotFoundError):
        await repo.get_run(old)
    assert count_rows(repo_dsn, recent) == (3, 6, 3)
    assert (await repo.prune_runs(CUTOFF, project=project)).runs == 0  # nothing left to prune


@pytest.mark.parametrize(
    "phases",
    [
        pytest.param((ActionPhase.RUNNING, DONE, DONE), id="root-running"),
        pytest.param((DONE, ActionPhase.RUNNING, DONE), id="child-running-under-a-finished-root"),
        pytest.param((DONE, DONE, ActionPhase.QUEUED), id="grandchild-queued"),
    ],
)
async def test_a_run_with_any_unfinished_action_stays_however_old(
    repo: ActionRepo, repo_dsn: str, project: str, phases: Sequence[ActionPhase]
) -> None:
    rid = run(project, "rbusy")
    await make_run(repo, rid, phases)
    result = await repo.prune_runs(CUTOFF, project=project)
    assert (result.scanned, result.runs) == (1, 0)
    assert count_rows(repo_dsn, rid) == (3, 6, 3)


async def test_a_run_whose_child_ended_after_the_cutoff_or_with_an_abort_pending_stays(
    repo: ActionRepo, repo_dsn: str, project: str
) -> None:
    late, aborting = run(project, "rlate"), run(project, "rabort")
    await make_run(repo, late, late="a1")
    await make_run(repo, aborting)
    await repo.abort_action(ActionId(aborting, "a1"), "stop", force=True)
    await repo.update_action_phase(ActionId(aborting, "a1"), DONE, 1, 0, end_time=at(60))
    assert (await repo.prune_runs(CUTOFF, project=project)).runs == 0
    assert count_rows(repo_dsn, late) == count_rows(repo_dsn, aborting) == (3, 6, 3)


async def test_dry_run_counts_what_a_real_pass_deletes_and_deletes_nothing(
    repo: ActionRepo, repo_dsn: str, project: str
) -> None:
    gone = [run(project, f"rgone{i}") for i in range(3)]
    for rid in gone:
        await make_run(repo, rid)
    await make_run(repo, run(project, "rstays"), (DONE, ActionPhase.RUNNING, DONE))

    dry = await repo.prune_runs(CUTOFF, project=project, dry_run=True, runs_per_transaction=2)

    assert (dry.runs, dry.actions, dry.events, dry.scanned, dry.dry_run) == (3, 9, 18, 4, True)
    assert all(count_rows(repo_dsn, rid) == (3, 6, 3) for rid in gone)
    real = await repo.prune_runs(CUTOFF, project=project, runs_per_transaction=2)
    assert (real.runs, real.actions, real.events) == (dry.runs, dry.actions, dry.events)
    assert real.transactions == 3  # 4 roots, 2 per transaction, then one that finds none left
    assert all(count_rows(repo_dsn, rid) == (0, 0, 0) for rid in gone)


async def test_small_transactions_pass_over_runs_that_stay(
    repo: ActionRepo, repo_dsn: str, project: str
) -> None:
    """Runs that stay never stall the pass: each transaction moves on past what it looked at."""
    for i in range(5):
        await make_run(repo, run(project, f"rbusy{i}"), (DONE, ActionPhase.RUNNING, DONE))
    await make_run(repo, run(project, "rz-old"))
    seen: list[int] = []
    result = await repo.prune_runs(
        CUTOFF, project=project, runs_per_transaction=1, on_transaction=lambda r: seen.append(r.scanned)
    )
    assert (result.runs, result.scanned) == (1, 6)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert count_rows(repo_dsn, run(project, "rz-old")) == (0, 0, 0)


async def test_project_and_domain_select_what_goes(empty_dsn: str) -> None:
    """On a database of its own: an unfiltered pass reaches every run in it."""
    async with connected(empty_dsn, 2) as private_repo:
        await _filters(private_repo, empty_dsn)


async def _filters(private_repo: ActionRepo, private_dsn: str) -> None:
    runs = {
        (p, d): RunId(p, d, "rscope") for p in ("pa-prune", "pb-prune") for d in ("development", "production")
    }
    for rid in runs.values():
        await make_run(private_repo, rid)

    assert (await private_repo.prune_runs(CUTOFF, project="pa-prune", domain="production")).runs == 1
    assert count_rows(private_dsn, runs["pa-prune", "production"])[0] == 0
    one_by_one = await private_repo.prune_runs(CUTOFF, domain="development", runs_per_transaction=1)
    assert (one_by_one.runs, one_by_one.scanned) == (2, 2)  # the cursor over projects, in one domain
    assert [k for k, rid in runs.items() if count_rows(private_dsn, rid)[0]] == [("pb-prune", "production")]
    assert (await private_repo.prune_runs(CUTOFF, project="pb-prune", domain="production")).runs == 1
    assert (await private_repo.prune_runs(CUTOFF, runs_per_transaction=1)).runs == 0
    assert all(count_rows(private_dsn, rid) == (0, 0, 0) for rid in runs.values())


async def test_a_run_being_written_is_skipped_without_waiting_then_pruned(
    repo: ActionRepo, repo_dsn: str, project: str
) -> None:
    rid = run(project, "rlocked")
    await make_run(repo, rid)
    with psycopg.connect(repo_dsn) as conn:  # a writer holding one action's row (as a recorder does)
        conn.execute(
            "SELECT 1 FROM actions WHERE project = %s AND run_name = %s AND name = 'a1-1' FOR UPDATE",
            (project, rid.name),
        )
        result = await asyncio.wait_for(repo.prune_runs(CUTOFF, project=project), 10)
        assert result.runs == 0
        assert count_rows(repo_dsn, rid) == (3, 6, 3)
        conn.rollback()
    assert (await repo.prune_runs(CUTOFF, project=project)).runs == 1
    assert count_rows(repo_dsn, rid) == (0, 0, 0)


async def test_the_cutoff_must_be_aware(repo: ActionRepo) -> None:
    with pytest.raises(InvalidArgumentError, match="timezone"):
        await repo.prune_runs(datetime(2026, 1, 1))
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        await repo.prune_runs(CUTOFF - timedelta(days=1), runs_per_transaction=0)
