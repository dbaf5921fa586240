"""The database restarts under live watchers: the listener reconnects with backoff, every watcher
re-reads what it watches, and later updates flow again. Stops and starts the shared server
(``hack/db/db.sh stop`` / ``start``), so it keeps the outage short."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from taskaction_operator.model import ActionId, ActionPhase
from taskaction_operator.repo import ActionRepo, TemporaryRepoError
from taskaction_operator.repo.dsn import to_conninfo
from taskaction_operator.repo.notify import NotificationListener
from tests.conftest import ROOT
from tests.integration.repo.helpers import action, eventually, next_item, next_matching, run

pytestmark = pytest.mark.db
P = ActionPhase


async def _db(command: str) -> None:
    proc = await asyncio.to_thread(
        subprocess.run,
        ["bash", "hack/db/db.sh", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
async def fast_repo(repo_dsn: str) -> AsyncIterator[ActionRepo]:
    """A repository whose listener pings and retries quickly, so the test notices the outage fast."""
    listener = NotificationListener(
        to_conninfo(repo_dsn),
        ping_interval=0.5,
        backoff_initial=0.1,
        backoff_max=0.5,
        connect_timeout=5,
        resync_margin=timedelta(seconds=30),
    )
    r = await ActionRepo.connect(repo_dsn, pool_size=2, listener=listener)
    try:
        yield r
    finally:
        await r.close()


async def test_watchers_resume_after_the_database_restarts(
    fast_repo: ActionRepo, project: str, repo_dsn: str
) -> None:
    repo = fast_repo
    # Two more repositories that only hold pooled connections across the restart, untouched during
    # the outage: their first call afterwards meets a dead connection and must retry, not fail.
    writer = await ActionRepo.connect(repo_dsn, pool_size=1, max_overflow=0)
    reader = await ActionRepo.connect(repo_dsn, pool_size=1, max_overflow=0)
    rid = run(project)
    child = ActionId(rid, "c1")
    await repo.record_batch(actions=[action(rid.root), action(child)])
    await repo.update_action_state(child, "before")
    await writer.update_action_state(child, "before")
    assert (await reader.get_action(child)).action_state == "before"
    one = await repo.watch_action_updates(child)
    one_run = await repo.watch_run_updates(rid)
    every_action = await repo.watch_all_action_updates(rid)
    every_run = await repo.watch_all_run_updates()
    state = await repo.watch_state_updates(child)
    try:
        await _db("stop")
        try:
            await eventually(lambda: not repo.listener.listening, what="the listener noticed")
            with pytest.raises(TemporaryRepoError):
                await repo.get_action(child)
        finally:
            await _db("start")
        await eventually(lambda: repo.listener.listening and repo.listener.reconnects == 1)

        # stale pooled connections are retried, for writes (nothing was committed) and reads
        assert await writer.update_action_phase(child, P.INITIALIZING, 1, 0)
        assert writer.stats.stale_retries == 1
        assert (await reader.get_action(child)).phase is P.INITIALIZING
        assert reader.stats.stale_retries == 1

        # every watcher re-reads what it watches after the reconnect
        assert (await next_item(one)).action_id == child
        assert (await next_item(one_run)).run_id == rid
        assert {(await next_item(every_action)).name for _ in range(2)} == {"a0", "c1"}
        assert (await next_matching(every_run, lambda a: a.project == project)).run_id == rid
        assert await next_item(state) == "before"

        # and later updates flow again (the pool replaced its dead connections)
        await repo.update_action_phase(child, P.RUNNING, 2, 0)
        await repo.update_action_phase(rid.root, P.RUNNING, 1, 0)
        await repo.update_action_state(child, "after")
        assert (await next_matching(one, lambda a: a.phase is P.RUNNING)).attempts == 2
        assert (await next_matching(one_run, lambda a: a.phase is P.RUNNING)).run_id == rid
        seen = await next_matching(every_action, lambda a: a.name == "c1" and a.phase is P.RUNNING)
        assert seen.action_id == child
        assert (
            await next_matching(every_run, lambda a: a.project == project and a.phase is P.RUNNING)
        ).run_id == rid
        assert await next_item(state) == "after"
    finally:
        for sub in (one, one_run, every_action, every_run, state):
            await sub.aclose()
        await writer.close()
        await reader.close()
