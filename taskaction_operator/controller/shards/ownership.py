"""Who records which shard: one Lease per shard, one per live replica, and a fair share each.

Every ``duration / 3`` seconds a replica reads every Lease of the shard set with one LIST, renews its
own member Lease (which says it is alive), then:

- counts the live members (member Leases renewed within two thirds of ``duration``, judged as
  client-go judges a Lease: by the local time since this replica last saw it change, never by
  comparing clocks) and its fair share, ``ceil(shards / members)``;
- renews the shard Leases it holds, up to its share, and releases the rest (a replica that just
  joined finds them free on its next pass);
- claims free shards (no Lease, no holder, or unrenewed for two thirds of ``duration``) up to its share, in an
  order of its own (starting at its rank among the members), so that replicas rarely race for one.

A shard is **owned** from the pass that renewed or claimed it until a pass finds its last renewal
older than ``2/3 duration`` (the renewal's send time, as ``LeaseElector``) or its Lease held by
another: a replica whose renewals hang stops recording the shard before anyone can take it over.
Ownership changes only at a pass, never between two: the handler's answer is the set the watch is
filtered to, so an event is never dropped for a lapse the watch was not restarted for (a restart
lists the shard again; a lapse seen only by the handler would lose the events in between).
Every Lease call is bounded (a third of the duration), so a pass with hung calls still ends and sees
the lapse. When a replica dies, its shards are claimed within one lease duration of its last renewal (see
``_expired``); on a clean stop it releases them at once.

Recording is idempotent (``ON CONFLICT DO NOTHING``, the guarded phase update), and a new owner lists
the shard's TaskActions from the start (their ``phaseHistory`` and the record guard keep everything a
gap could miss), so neither the short overlap of a handover nor its gap loses or doubles an event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Protocol

from taskaction_operator.crd.shards import body_bucket, bucket, shard_of
from taskaction_operator.k8s.lease_table import LeaseRecord
from taskaction_operator.model import RunId

log = logging.getLogger(__name__)

#: Label of every Lease of a shard set: its key (``set_key``: what it divides, and into how many).
SHARDS_LABEL = "flyte.org/record-shards"
#: Label saying what a Lease stands for: ``member`` (a live replica) or ``shard``.
ROLE_LABEL = "flyte.org/record-lease"
LEASE_PREFIX = "taskaction-operator"
#: Lease durations after which a silent replica's member Lease is deleted.
DEPARTED_AFTER = 20


class Table(Protocol):
    async def list(self, selector: str) -> list[LeaseRecord]: ...

    async def claim(
        self,
        name: str,
        identity: str,
        *,
        duration: float,
        previous: LeaseRecord | None,
        labels: Mapping[str, str] | None = None,
    ) -> LeaseRecord | None: ...

    async def release(self, record: LeaseRecord) -> bool: ...

    async def delete(self, record: LeaseRecord) -> None: ...


def scope_of(namespaces: Collection[str]) -> str:
    """What a shard set divides: ``cluster`` for a cluster-wide operator, else a digest of its
    namespaces, so that operators of different namespaces sharing a Lease namespace never split each
    other's shards."""
    if not namespaces:
        return "cluster"
    return hashlib.sha256(",".join(sorted(namespaces)).encode()).hexdigest()[:10]


def set_key(scope: str, shards: int) -> str:
    """The shard set's name in its Leases' names and ``SHARDS_LABEL``: scope and shard count."""
    return f"{scope}-{shards}" if scope else str(shards)


def shard_lease_name(key: str, shard: int) -> str:
    return f"{LEASE_PREFIX}-shard-{key}-{shard}"


def member_lease_name(key: str, identity: str) -> str:
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{LEASE_PREFIX}-member-{key}-{digest}"


def fair_share(shards: int, members: int) -> int:
    return math.ceil(shards / max(1, members))


def preference(shards: int, rank: int, members: int) -> list[int]:
    """The order a replica of ``rank`` (among ``members``) claims and keeps shards in: starting at its
    own slice of the ring, so that replicas of different ranks want different shards first."""
    start = (rank * shards) // max(1, members)
    return [(start + i) % shards for i in range(shards)]


OnChange = Callable[[frozenset[int]], Awaitable[None]]


class ShardOwnership:
    """The shards of a set of ``shards`` this replica holds, kept by :meth:`run`."""

    def __init__(
        self,
        table: Table,
        *,
        identity: str,
        shards: int,
        duration: float,
        scope: str = "",
        on_change: OnChange | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self.identity = identity
        self.shards = shards
        self.duration = duration
        self.renew_deadline = duration * 2 / 3
        #: A Lease unchanged this long, as seen from here, is free (see ``_expired``).
        self.takeover_after = self.renew_deadline
        self.on_change = on_change
        self._clock = clock
        self._renewed: dict[int, float] = {}
        self._seen: dict[str, tuple[tuple[str | None, str | None], float]] = {}
        self._reported: frozenset[int] = frozenset()
        self.members = 1
        self.key = set_key(scope, shards)
        self._labels = {SHARDS_LABEL: self.key}
        self._member_name = member_lease_name(self.key, identity)

    @property
    def owned(self) -> frozenset[int]:
        """The shards this replica records: those whose Lease it renewed less than ``renew_deadline``
        ago as of its last pass (the set its watch is filtered to)."""
        return self._reported

    def owns(self, shard: int) -> bool:
        return shard in self._reported

    def owns_body(self, body: Mapping[str, Any]) -> bool:
        """Whether the TaskAction ``body`` is in an owned shard (one naming no run is shard 0's, whose
        owner reports it)."""
        found = body_bucket(body)
        return self.owns(0 if found is None else shard_of(found, self.shards))

    def owns_run(self, run: RunId) -> bool:
        return self.owns(shard_of(bucket(run.project, run.domain, run.name), self.shards))

    def _within_deadline(self) -> frozenset[int]:
        now = self._clock()
        return frozenset(s for s, at in self._renewed.items() if now - at < self.renew_deadline)

    def _expired(self, record: LeaseRecord, now: float) -> bool:
        """Unchanged for ``takeover_after`` (two thirds of the duration) since this replica first saw
        its content, which is no earlier than the holder's last renewal was sent: by then the holder's
        own deadline (two thirds from that send) has passed, so it has stopped owning the shard at its
        next pass. Two thirds rather than the whole duration, as the sweep Lease waits, so that a dead
        replica's shards are claimed within one lease duration of its last renewal (seen up to a pass
        late, claimed at that pass): a handover's overlap costs only repeated, idempotent writes."""
        seen = self._seen.get(record.name)
        if seen is None or seen[0] != record.version:
            self._seen[record.name] = (record.version, now)
            return False
        return now - seen[1] > self.takeover_after

    async def tick(self) -> frozenset[int]:
        """One pass (see the module docstring); the shards owned after it."""
        now = self._clock()
        records = {r.name: r for r in await self._table.list(f"{SHARDS_LABEL}={self.key}")}
        for name in list(self._seen):
            if name not in records:
                del self._seen[name]
        live = {self.identity}
        for record in records.values():
            expired = self._expired(record, now)
            if record.labels.get(ROLE_LABEL) == "member" and record.holder and not expired:
                live.add(record.holder)
        sent = self._clock()
        try:
            await self._table.claim(
                self._member_name,
                self.identity,
                duration=self.duration,
                labels={**self._labels, ROLE_LABEL: "member"},
                previous=records.get(self._member_name),
            )
        except Exception as exc:  # the shards are renewed all the same
            log.warning("could not renew this replica's member Lease: %s", exc or type(exc).__name__)
        await self._forget_departed(records, now)
        members = sorted(live)
        share = fair_share(self.shards, len(members))
        order = preference(self.shards, members.index(self.identity), len(members))
        leases = {s: records.get(shard_lease_name(self.key, s)) for s in range(self.shards)}
        held = [s for s in order if self._holds(leases[s])]
        keep, extra = held[:share], held[share:]
        free = [s for s in order if s not in held and self._free(leases[s], now)]
        claims = keep + free[: max(0, share - len(keep))]
        # Extras are given up, and a shard no longer held is someone else's now.
        self._renewed = {s: at for s, at in self._renewed.items() if s in keep}
        results = await asyncio.gather(
            *(self._claim(s, leases[s]) for s in claims),
            *(self._table.release(leases[s]) for s in extra),  # type: ignore[arg-type]
            return_exceptions=True,
        )
        for shard, result in zip(claims, results[: len(claims)], strict=True):
            if result is True:
                self._renewed[shard] = sent
            elif isinstance(result, BaseException):
                # Still owned until its deadline passes; the next pass tries again.
                log.warning("could not renew or claim shard %d: %s", shard, result)
            else:
                self._renewed.pop(shard, None)  # another replica got there first
        self.members = len(members)
        await self._publish(self._within_deadline())
        return self._reported

    async def _forget_departed(self, records: Mapping[str, LeaseRecord], now: float) -> None:
        """Delete member Leases of replicas gone for ``DEPARTED_AFTER`` lease durations (killed
        replicas leave theirs behind; each new Pod has a new identity)."""
        for record in records.values():
            if record.labels.get(ROLE_LABEL) != "member" or record.name == self._member_name:
                continue
            seen = self._seen.get(record.name)
            if seen is not None and now - seen[1] > DEPARTED_AFTER * self.duration:
                try:
                    await self._table.delete(record)
                except Exception as exc:
                    log.debug("could not delete %s: %s", record.name, exc)
                self._seen.pop(record.name, None)

    def _holds(self, record: LeaseRecord | None) -> bool:
        return record is not None and record.holder == self.identity

    def _free(self, record: LeaseRecord | None, now: float) -> bool:
        return record is None or not record.holder or self._expired(record, now)

    async def _claim(self, shard: int, previous: LeaseRecord | None) -> bool:
        got = await self._table.claim(
            shard_lease_name(self.key, shard),
            self.identity,
            duration=self.duration,
            labels={**self._labels, ROLE_LABEL: "shard"},
            previous=previous,
        )
        return got is not None

    async def run(self) -> None:
        """:meth:`tick` every third of the lease duration, forever; a failed pass is logged and the
        shards it could not renew stop being owned when their deadline passes."""
        while True:
            try:
                await self.tick()
            except Exception as exc:
                log.warning("shard ownership pass failed: %s", exc or type(exc).__name__)
                await self._publish(self._within_deadline())
            await asyncio.sleep(self.duration / 3)

    async def _publish(self, owned: frozenset[int]) -> None:
        """Make ``owned`` the shards recorded (and the watch's, through ``on_change``) if it changed."""
        if owned == self._reported:
            return
        log.info(
            "recording shards %s of %d (%d replicas, share %d) as %s",
            ",".join(map(str, sorted(owned))) or "none",
            self.shards,
            self.members,
            fair_share(self.shards, self.members),
            self.identity,
        )
        self._reported = owned
        if self.on_change is not None:
            await self.on_change(owned)

    async def release_all(self) -> None:
        """On a clean stop: stop owning, then free every shard held and delete the member Lease, so
        the others take over on their next pass instead of a lease duration later."""
        self._renewed.clear()
        self._reported = frozenset()
        try:
            records = await self._table.list(f"{SHARDS_LABEL}={self.key}")
        except Exception as exc:
            log.warning("could not release the recording shards: %s", exc)
            return
        for record in records:
            if record.holder != self.identity:
                continue
            try:
                if record.name == self._member_name:
                    await self._table.delete(record)
                else:
                    await self._table.release(record)
            except Exception as exc:
                log.warning("could not release %s: %s", record.name, exc)
