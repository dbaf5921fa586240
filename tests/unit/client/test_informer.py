"""The client's informer without a cluster: a relist publishes only what changed (deletions it missed
from the last state it saw), recorded TaskActions are never published, and the watch thread resumes
from the last resourceVersion and relists when the server says it expired (410)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any, cast

from taskaction_operator.client.informer import TaskActionInformer
from taskaction_operator.client.updates import ActionUpdate, Subscription
from taskaction_operator.crd.names import RECORDED_LABEL
from taskaction_operator.k8s.ops import KubeOps
from taskaction_operator.model import ActionPhase
from tests.factories import taskaction_body


def ta(action: str, rv: str, **labels: str) -> dict[str, Any]:
    body = taskaction_body(action, resourceVersion=rv, labels=labels)
    body["spec"]["taskTemplate"] = "big"
    return body


class _Watcher:
    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()


class FakeKube:
    """Lists what ``items`` holds; each watch plays the next script of events, then blocks until stopped."""

    def __init__(self, items: list[dict[str, Any]], version: str = "10") -> None:
        self.items = items
        self.version = version
        self.scripts: list[list[dict[str, Any]]] = []
        self.watched_from: list[str] = []
        self.lists = 0
        #: Set when a watch finds no script left: everything scripted has been played.
        self.idle = threading.Event()

    async def list_taskactions_versioned(self, namespace: str) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        return list(self.items), self.version

    def new_watcher(self) -> _Watcher:
        return _Watcher()

    def watch_taskactions_blocking(
        self, watcher: _Watcher, namespace: str, resource_version: str, *, timeout_seconds: int = 300
    ) -> Iterator[dict[str, Any]]:
        self.watched_from.append(resource_version)
        if self.scripts:
            yield from self.scripts.pop(0)
            return
        self.idle.set()
        watcher.stopped.wait(10)


def informer(kube: FakeKube) -> TaskActionInformer:
    return TaskActionInformer(cast(KubeOps, kube), "ns", watch_timeout=1)


def drain(sub: Subscription) -> list[ActionUpdate]:
    out = []
    while (u := sub.get_nowait()) is not None:
        out.append(u)
    return out


async def test_resync_publishes_additions_changes_and_missed_deletions_only() -> None:
    kube = FakeKube([ta("a1", "1"), ta("a2", "1"), ta("a3", "1")])
    inf = informer(kube)
    sub = inf.subscribe("r1", "a0")
    assert await inf.resync() == "10"
    assert sorted(u.action_id.name for u in drain(sub)) == ["a1", "a2", "a3"]
    kube.items = [ta("a1", "2"), ta("a3", "1")]  # a1 changed, a2 vanished, a3 as it was
    await inf.resync()
    changed = {u.action_id.name: u for u in drain(sub)}
    assert set(changed) == {"a1", "a2"}
    assert not changed["a1"].is_deleted and changed["a1"].resource_version == "2"
    assert changed["a2"].is_deleted and changed["a2"].phase is ActionPhase.ABORTED
    await inf.resync()
    assert drain(sub) == []
    assert inf.relists == 3
    assert "taskTemplate" not in inf._cache["r1-a1"]["spec"]  # the cache keeps what updates need


async def test_recorded_taskactions_are_cached_but_never_published() -> None:
    kube = FakeKube([ta("a1", "1", **{RECORDED_LABEL: "true"}), ta("a2", "1")])
    inf = informer(kube)
    sub = inf.subscribe("r1", "a0")
    await inf.resync()
    assert [u.action_id.name for u in drain(sub)] == ["a2"]
    assert set(inf._cache) == {"r1-a1", "r1-a2"}


async def test_watch_resumes_from_the_last_version_and_relists_on_expiry() -> None:
    kube = FakeKube([ta("a1", "1")], version="20")
    modified = {"type": "MODIFIED", "raw_object": ta("a1", "11")}
    bookmark = {"type": "BOOKMARK", "raw_object": ta("a1", "12")}
    kube.scripts = [[modified, bookmark], [{"type": "ERROR", "raw_object": {"code": 410}}]]
    inf = informer(kube)
    sub = inf.subscribe("r1", "a0")
    await inf.start()
    assert inf.running
    await inf.start()  # idempotent
    kube.items = [ta("a1", "11")]  # what the relist will find: as the watch last saw it
    try:
        assert await asyncio.to_thread(kube.idle.wait, 10)
    finally:
        await inf.stop()
    # The server ended the first stream: resumed from the bookmark; then 410: relisted, watched from 20.
    assert kube.watched_from[:3] == ["20", "12", "20"]
    assert kube.lists == 2 and inf.restarts >= 2
    seen = [(u.action_id.name, u.resource_version) for u in drain(sub)]
    assert seen == [("a1", "1"), ("a1", "11")]  # the bookmark is not an update; the relist saw no change
    assert not inf.running and sub.closed
