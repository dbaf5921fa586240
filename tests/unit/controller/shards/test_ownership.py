"""Shard ownership over Leases: a fair share each, handed over when a replica stops or dies, never
owned past its renewal deadline. The Leases are an in-memory table with the API server's
compare-and-swap (a write of a stale read is refused); time is a fake clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from taskaction_operator.controller.shards.ownership import (
    ROLE_LABEL,
    ShardOwnership,
    fair_share,
    preference,
)
from taskaction_operator.k8s.lease_table import LeaseRecord

DURATION = 15.0


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Table:
    """Leases by name: (holder, renew stamp, labels, resourceVersion)."""

    leases: dict[str, tuple[str | None, str, dict[str, str], int]] = field(default_factory=dict)
    versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    stamps: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    failing: set[str] = field(default_factory=set)

    def _record(self, name: str) -> LeaseRecord:
        holder, stamp, labels, version = self.leases[name]
        return LeaseRecord(name, holder, stamp, dict(labels), version)

    async def list(self, selector: str) -> list[LeaseRecord]:
        key, _, value = selector.partition("=")
        return [self._record(n) for n, (_, _, labels, _) in self.leases.items() if labels.get(key) == value]

    async def claim(
        self,
        name: str,
        identity: str,
        *,
        duration: float,
        previous: LeaseRecord | None,
        labels: Mapping[str, str] | None = None,
    ) -> LeaseRecord | None:
        if identity in self.failing:
            raise TimeoutError("silent network")
        current = self.leases.get(name)
        if (previous is None) != (current is None) or (current and previous and current[3] != previous.raw):
            return None
        self.leases[name] = (identity, f"t{next(self.stamps)}", dict(labels or {}), next(self.versions))
        return self._record(name)

    async def release(self, record: LeaseRecord) -> bool:
        current = self.leases.get(record.name)
        if current is None or current[3] != record.raw:
            return False
        self.leases[record.name] = (None, current[1], current[2], next(self.versions))
        return True

    async def delete(self, record: LeaseRecord) -> None:
        self.leases.pop(record.name, None)

    def holders(self) -> dict[int, str | None]:
        return {
            int(n.rsplit("-", 1)[1]): h
            for n, (h, _, labels, _) in self.leases.items()
            if labels[ROLE_LABEL] == "shard"
        }


def replicas(table: Table, clock: Clock, shards: int, *names: str) -> dict[str, ShardOwnership]:
    return {
        n: ShardOwnership(table, identity=n, shards=shards, duration=DURATION, clock=clock) for n in names
    }


def rounds(clock: Clock, live: list[ShardOwnership], n: int = 4) -> None:
    """``n`` passes of every live replica, a third of a lease duration apart (as ``run`` ticks)."""
    for _ in range(n):
        for r in live:
            asyncio.run(r.tick())
        clock.now += DURATION / 3


def test_fair_share_and_preferences_start_each_rank_elsewhere() -> None:
    assert [fair_share(3, m) for m in (1, 2, 3, 4)] == [3, 2, 1, 1]
    assert preference(4, 0, 2)[0] == 0 and preference(4, 1, 2)[0] == 2
    assert sorted(preference(3, 2, 3)) == [0, 1, 2]


def test_one_replica_records_every_shard() -> None:
    table, clock = Table(), Clock()
    (a,) = replicas(table, clock, 3, "a").values()
    assert asyncio.run(a.tick()) == frozenset({0, 1, 2})
    assert set(table.holders().values()) == {"a"}


def test_replicas_split_the_shards_and_a_newcomer_gets_its_share() -> None:
    table, clock = Table(), Clock()
    r = replicas(table, clock, 3, "a", "b", "c")
    rounds(clock, [r["a"]], 1)
    assert r["a"].owned == {0, 1, 2}
    rounds(clock, [r["a"], r["b"]])
    assert sorted(len(x.owned) for x in (r["a"], r["b"])) == [1, 2]
    assert r["a"].owned.isdisjoint(r["b"].owned)
    rounds(clock, [r["a"], r["b"], r["c"]])
    assert [len(x.owned) for x in r.values()] == [1, 1, 1]
    assert frozenset().union(*(x.owned for x in r.values())) == {0, 1, 2}


def test_a_dead_replicas_shards_are_taken_over_after_a_lease_duration() -> None:
    table, clock = Table(), Clock()
    r = replicas(table, clock, 2, "a", "b")
    rounds(clock, [r["a"], r["b"]])
    lost = r["b"].owned
    assert len(lost) == 1
    died_at = clock.now
    # b stops renewing (killed): a keeps its own shard, and takes b's within one lease duration.
    taken_at = None
    while taken_at is None and clock.now < died_at + 3 * DURATION:
        asyncio.run(r["a"].tick())
        if r["a"].owned == {0, 1}:
            taken_at = clock.now
        clock.now += DURATION / 3
    assert taken_at is not None
    assert DURATION * 2 / 3 <= taken_at - died_at <= DURATION


def test_a_clean_stop_hands_its_shards_over_on_the_next_pass() -> None:
    table, clock = Table(), Clock()
    r = replicas(table, clock, 2, "a", "b")
    rounds(clock, [r["a"], r["b"]])
    asyncio.run(r["b"].release_all())
    assert not r["b"].owned
    assert not any(
        n.startswith("taskaction-operator-member-2-") and h == "b" for n, (h, *_) in table.leases.items()
    )
    asyncio.run(r["a"].tick())
    assert r["a"].owned == {0, 1}


def test_shards_stop_being_owned_when_renewals_hang_before_anyone_can_take_them() -> None:
    table, clock = Table(), Clock()
    (a,) = replicas(table, clock, 2, "a").values()
    asyncio.run(a.tick())
    renewed = clock.now
    table.failing.add("a")
    changes: list[frozenset[int]] = []

    async def record(owned: frozenset[int]) -> None:
        changes.append(owned)

    a.on_change = record
    clock.now = renewed + DURATION * 2 / 3 - 0.1
    asyncio.run(a.tick())
    assert a.owns(0) and a.owns(1)
    clock.now = renewed + DURATION * 2 / 3 + 0.1
    asyncio.run(a.tick())
    assert not a.owns(0) and not a.owns(1)
    assert changes == [frozenset()]


def test_ownership_changes_only_at_a_pass_never_by_the_clock_alone() -> None:
    """The handler's answer must be the set the watch is filtered to: a pass delayed under load (its
    calls queued) must not make events of a shard still watched be dropped, unseen by any restart."""
    table, clock = Table(), Clock()
    (a,) = replicas(table, clock, 2, "a").values()
    asyncio.run(a.tick())
    clock.now += DURATION  # the next pass is late: past the renewal deadline
    assert a.owns(0) and a.owns(1) and a.owned == {0, 1}
    asyncio.run(a.tick())  # a pass renews them: still owned, and no restart was needed
    assert a.owned == {0, 1}


def test_operators_of_different_namespaces_never_split_each_others_shards() -> None:
    """Two namespace-scoped operators with their Leases in one namespace: each holds all its shards."""
    from taskaction_operator.controller.shards.ownership import scope_of

    table, clock = Table(), Clock()
    a = ShardOwnership(
        table, identity="a", shards=2, duration=DURATION, clock=clock, scope=scope_of(["ns-a"])
    )
    b = ShardOwnership(
        table, identity="b", shards=2, duration=DURATION, clock=clock, scope=scope_of(["ns-b"])
    )
    rounds(clock, [a, b])
    assert a.owned == b.owned == {0, 1}
    assert scope_of([]) == "cluster" and scope_of(["x", "y"]) == scope_of(["y", "x"])


def test_an_object_or_a_run_is_owned_with_its_buckets_shard() -> None:
    from taskaction_operator.crd.shards import SHARD_LABEL, bucket, shard_of
    from taskaction_operator.model import RunId
    from tests.factories import taskaction_body

    table, clock = Table(), Clock()
    r = replicas(table, clock, 2, "a", "b")
    rounds(clock, [r["a"], r["b"]])
    (shard,) = r["a"].owned
    runs = [RunId("p", "d", f"r{i}") for i in range(8)]
    mine = [run for run in runs if shard_of(bucket(run.project, run.domain, run.name), 2) == shard]
    assert 0 < len(mine) < len(runs)
    assert [run for run in runs if r["a"].owns_run(run)] == mine
    assert [run for run in runs if r["b"].owns_run(run)] == [run for run in runs if run not in mine]
    # An object goes by its label when it has a valid one, else by its run.
    body = taskaction_body("a1", "a0", run=mine[0].name)
    assert r["a"].owns_body(body) and not r["b"].owns_body(body)
    body["metadata"]["labels"] = {SHARD_LABEL: str(1 - shard)}
    assert r["b"].owns_body(body) and not r["a"].owns_body(body)
    # One naming no run is shard 0's.
    assert r["a" if shard == 0 else "b"].owns_body({"metadata": {}, "spec": {}})
