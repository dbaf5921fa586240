"""The shard watch restarts kopf's TaskAction watch the way kopf's orchestrator allows: the resource
leaves kopf's insights, the old watcher ends, the selector changes, the resource comes back (a new
watcher, which lists first). A stand-in orchestrator plays kopf's part: it runs a watcher task named as
kopf names it while the resource is in the insights, and notes the selector each watcher starts with."""

from __future__ import annotations

import asyncio

import kopf
from kopf._cogs.structs.references import Insights, Resource

from taskaction_operator.controller.shards.watch import ShardWatch
from taskaction_operator.crd.names import GROUP, PLURAL, UNRECORDED_SELECTOR, VERSION
from taskaction_operator.crd.shards import NO_SHARD_SELECTOR, shard_selector

RESOURCE = Resource(GROUP, VERSION, PLURAL, namespaced=True)


async def orchestrator(insights: Insights, settings: kopf.OperatorSettings, started: list[str]) -> None:
    """kopf's orchestrator, reduced: one watcher while the resource is watched."""
    watcher: asyncio.Task[None] | None = None
    async with insights.revised:
        while True:
            wanted = RESOURCE in insights.watched_resources
            if wanted and watcher is None:
                selector = ",".join(sorted(set(settings.watching.label_selectors.collect(RESOURCE))))
                started.append(selector)
                watcher = asyncio.create_task(asyncio.sleep(3600), name=f"watcher for {RESOURCE}@None")
            elif not wanted and watcher is not None:
                watcher.cancel()
                watcher = None
            await insights.revised.wait()


async def test_a_change_of_shards_restarts_the_watch_with_the_new_selector() -> None:
    settings = kopf.OperatorSettings()
    settings.watching.label_selectors[GROUP, PLURAL] = UNRECORDED_SELECTOR
    insights = Insights()
    started: list[str] = []
    watch = ShardWatch(settings, insights, 3)
    watch.start(frozenset({0}))
    async with insights.revised:
        insights.watched_resources.add(RESOURCE)  # kopf's resource observer, after start-up
        insights.revised.notify_all()
    orch = asyncio.create_task(orchestrator(insights, settings, started))
    try:
        for _ in range(100):
            if started:
                break
            await asyncio.sleep(0.01)
        await watch.want(frozenset({0, 2}))
        await watch.want(frozenset({0, 1, 2}))  # the latest wins; a restart never runs twice at once
        for _ in range(300):
            if watch.restarts and RESOURCE in insights.watched_resources and len(started) >= 2:
                break
            await asyncio.sleep(0.01)
        await watch.want(frozenset())
        for _ in range(300):
            if started[-1].endswith(NO_SHARD_SELECTOR) or started[-1] == NO_SHARD_SELECTOR:
                break
            await asyncio.sleep(0.01)
    finally:
        orch.cancel()
        await watch.stop()
    first = sorted([UNRECORDED_SELECTOR, shard_selector({0}, 3) or ""])
    assert started[0] == ",".join(first)
    # Owning everything: the shard selector is gone, the recorded-label one stays.
    assert UNRECORDED_SELECTOR in started and started.index(UNRECORDED_SELECTOR) >= 1
    assert started[-1] == ",".join(sorted([UNRECORDED_SELECTOR, NO_SHARD_SELECTOR]))
    assert RESOURCE in insights.watched_resources
