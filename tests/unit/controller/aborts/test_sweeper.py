"""The abort sweep's decisions: carry out, retry with backoff, give up, and leave others' aborts alone.

The store and the deleter stand at the database and Kubernetes boundaries, in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskaction_operator.controller.aborts.deleter import Place
from taskaction_operator.controller.aborts.sweeper import AbortSweeper
from taskaction_operator.model import ActionId

A = ActionId.of("p", "d", "r1", "a0")
B = ActionId.of("p", "d", "r2", "a0")


@dataclass
class Row:
    project: str
    domain: str
    run_name: str
    name: str
    abort_reason: str | None = "stop"


class Store:
    def __init__(self, *pending: ActionId) -> None:
        self.pending = {a: 0 for a in pending}
        self.cleared: list[ActionId] = []

    async def list_pending_aborts(self) -> list[Row]:
        return [Row(a.project, a.domain, a.run_name, a.name) for a in self.pending]

    async def mark_abort_attempt(self, action_id: ActionId) -> int:
        self.pending[action_id] += 1
        return self.pending[action_id]

    async def clear_abort_request(self, action_id: ActionId) -> None:
        self.pending.pop(action_id, None)
        self.cleared.append(action_id)


class Cluster:
    """TaskActions by action; ``held`` ones survive deletion (a finalizer); ``foreign`` are not ours."""

    def __init__(
        self, objects: dict[ActionId, str], held: set[str] = frozenset(), foreign: set[ActionId] = frozenset()
    ):  # type: ignore[assignment]
        self.objects = dict(objects)
        self.held = set(held)
        self.foreign = set(foreign)
        self.deleted: list[str] = []
        self.warnings: list[tuple[str, str]] = []

    async def locate(self, action_id: ActionId) -> list[Place] | None:
        if action_id in self.foreign:
            return None
        name = self.objects.get(action_id)
        return [Place("ns", name, f"u-{name}")] if name else []

    async def delete(self, place: Place) -> None:
        self.deleted.append(place.name)
        if place.name not in self.held:
            self.objects = {a: n for a, n in self.objects.items() if n != place.name}

    async def exists(self, place: Place) -> bool:
        return place.name in self.objects.values()

    async def warn(self, place: Place, reason: str, message: str) -> None:
        self.warnings.append((reason, message))


def sweeper(store: Store, cluster: Cluster, **kw: float) -> AbortSweeper:
    return AbortSweeper(store, cluster, confirm_timeout=0.05, initial_delay=0.0001, max_delay=0.0002, **kw)  # type: ignore[arg-type]


async def test_deletes_confirms_gone_and_clears() -> None:
    store, cluster = Store(A), Cluster({A: "r1-a0"})
    await sweeper(store, cluster).sweep_once()
    assert cluster.deleted == ["r1-a0"]
    assert store.cleared == [A]


async def test_already_gone_counts_as_done() -> None:
    store, cluster = Store(A), Cluster({})
    await sweeper(store, cluster).sweep_once()
    assert store.cleared == [A]
    assert cluster.deleted == []


async def test_held_object_is_retried_and_not_cleared_until_gone() -> None:
    store, cluster = Store(A), Cluster({A: "r1-a0"}, held={"r1-a0"})
    sw = sweeper(store, cluster, max_attempts=10)
    await sw.sweep_once()
    assert store.pending == {A: 1}
    assert store.cleared == []
    assert A in sw.stats.backoff
    cluster.held.clear()
    sw.stats.backoff[A] = 0.0  # backoff elapsed
    await sw.sweep_once()
    assert store.cleared == [A]


async def test_gives_up_after_the_maximum_with_a_warning_and_clears() -> None:
    store, cluster = Store(A), Cluster({A: "r1-a0"}, held={"r1-a0"})
    sw = sweeper(store, cluster, max_attempts=3)
    for _ in range(3):
        sw.stats.backoff.clear()
        await sw.sweep_once()
    assert store.cleared == [A]
    assert sw.stats.gave_up == 1
    assert cluster.warnings[0][0] == "AbortGaveUp"
    assert "manual action needed" in cluster.warnings[0][1]


async def test_another_operators_action_is_neither_counted_nor_cleared() -> None:
    store, cluster = Store(A, B), Cluster({A: "r1-a0"}, foreign={B})
    sw = sweeper(store, cluster)
    await sw.sweep_once()
    assert store.cleared == [A]
    assert store.pending == {B: 0}
    assert sw.stats.foreign == 1
