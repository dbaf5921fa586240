"""kopf's TaskAction watch, filtered by the API server to the shards this replica owns.

kopf reads ``settings.watching.label_selectors`` when it lists and whenever it resumes a watch, so
changing the selector of a running watch would resume it from its last resourceVersion under the new
filter: the objects of a shard just taken over, unchanged since, would never be listed. So the watch is
restarted instead: the resource leaves kopf's insights (its orchestrator stops the watcher, letting
in-flight handlers finish, ``settings.queueing.exit_timeout``), the selector changes, and the resource
comes back (a new watcher, which lists first). The watcher task is kopf's, found by its name
(``kopf/_core/reactor/orchestration.py``, ``spawn_missing_watchers``: ``watcher for RESOURCE@NS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf
from kopf._cogs.structs.references import Insights, Resource

from taskaction_operator.crd.names import GROUP, PLURAL, VERSION
from taskaction_operator.crd.shards import shard_selector

log = logging.getLogger(__name__)

#: Seconds to wait for kopf to stop the old watcher, beyond its exit timeout.
STOP_SLACK_S = 10.0


def _ours(resource: Resource) -> bool:
    return resource.group == GROUP and resource.plural == PLURAL


class ShardWatch:
    """Keeps kopf's TaskAction watch on the shards owned: :meth:`want` is called with each new set,
    the restarts run one at a time in the background, always towards the latest set."""

    def __init__(self, settings: kopf.OperatorSettings, insights: Insights, shards: int) -> None:
        self._settings = settings
        self._insights = insights
        self.shards = shards
        self._wanted: frozenset[int] | None = None
        self._applied: frozenset[int] | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self.restarts = 0

    def start(self, owned: frozenset[int]) -> None:
        """Before kopf's watchers start: the first selector, no restart."""
        self._set_selector(owned)
        self._applied = self._wanted = owned
        self._task = asyncio.create_task(self._loop(), name="shard-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def want(self, owned: frozenset[int]) -> None:
        self._wanted = owned
        self._changed.set()

    def _set_selector(self, owned: frozenset[int]) -> None:
        key = (GROUP, VERSION, PLURAL)
        selector = shard_selector(owned, self.shards)
        if selector is None:
            if key in self._settings.watching.label_selectors:
                del self._settings.watching.label_selectors[key]
        else:
            self._settings.watching.label_selectors[key] = selector

    async def _loop(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            wanted = self._wanted
            if wanted is None or wanted == self._applied:
                continue
            try:
                await self._restart(wanted)
            except Exception:
                log.exception("restarting the TaskAction watch failed; retrying")
                await asyncio.sleep(1.0)
                self._changed.set()

    async def _restart(self, owned: frozenset[int]) -> None:
        async with self._insights.revised:
            ours = {r for r in self._insights.watched_resources if _ours(r)}
            self._insights.watched_resources.difference_update(ours)
            self._insights.revised.notify_all()
        if ours:
            await self._stopped(ours)
        self._set_selector(owned)
        self._applied = owned
        self.restarts += 1
        if ours:
            async with self._insights.revised:
                self._insights.watched_resources.update(ours)
                self._insights.revised.notify_all()
        log.info("TaskAction watch restarted for shards %s", ",".join(map(str, sorted(owned))) or "none")

    async def _stopped(self, resources: set[Resource]) -> None:
        names = tuple(f"watcher for {r}@" for r in resources)
        deadline = asyncio.get_running_loop().time() + self._settings.queueing.exit_timeout + STOP_SLACK_S
        while asyncio.get_running_loop().time() < deadline:
            if not any(t.get_name().startswith(names) and not t.done() for t in asyncio.all_tasks()):
                return
            await asyncio.sleep(0.05)
        log.warning("kopf's TaskAction watcher did not stop in time; restarting the watch anyway")
