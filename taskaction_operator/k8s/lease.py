"""Leader election on a coordination.k8s.io/v1 Lease: exactly one replica runs the abort sweep.

Expiry is judged as client-go does, by the local time since this replica last saw the Lease change
(not by comparing clocks across machines).
"""

from __future__ import annotations

import asyncio
import logging
import time

from kubernetes.client.exceptions import ApiException

from taskaction_operator.k8s.lease_table import LeaseTable

log = logging.getLogger(__name__)

#: Reads and replaces a release tries when the Lease changed between them (409).
RELEASE_ATTEMPTS = 3


class LeaseElector:
    """Acquires and renews one Lease; ``is_leader`` says whether this replica holds it.

    Leadership lasts ``renew_deadline`` (two thirds of the lease duration) from the moment the last
    successful renewal was sent, as client-go's ``RenewDeadline``: a replica whose renewal hangs (a
    silent network) stops being leader on its own, while another replica takes the Lease over only a
    whole duration after it last saw it renewed, so there are never two leaders at once. Every call
    is bounded (the table's timeout), so a hung one cannot stall the loop either.
    """

    def __init__(self, table: LeaseTable, *, name: str, identity: str, duration: float) -> None:
        self._table = table
        self.namespace = table.namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew_deadline = duration * 2 / 3
        self._leader = False
        self._renewed_at = -float("inf")
        self._observed: tuple[str | None, str | None] | None = None
        self._observed_at = 0.0

    @property
    def is_leader(self) -> bool:
        """Holds the Lease, renewed less than ``renew_deadline`` ago (measured from the send)."""
        return self._leader and time.monotonic() - self._renewed_at < self.renew_deadline

    async def run(self) -> None:
        """Try to acquire or renew every third of the lease duration, forever."""
        while True:
            try:
                await self.try_acquire_or_renew()
            except Exception as exc:
                if self._leader:
                    log.warning("lost sweep leadership: %s", exc or type(exc).__name__)
                self._leader = False
            await asyncio.sleep(self.duration / 3)

    async def try_acquire_or_renew(self) -> bool:
        loop = asyncio.get_running_loop()
        sent = time.monotonic()
        lease = await self._table.get(self.name)
        if lease is not None:
            if lease.version != self._observed:
                self._observed, self._observed_at = lease.version, loop.time()
            held_by_me = lease.holder == self.identity
            expired = loop.time() - self._observed_at > self.duration
            if not held_by_me and lease.holder and not expired:
                return self._set(False)
        claimed = await self._table.claim(self.name, self.identity, duration=self.duration, previous=lease)
        if claimed is None:  # another replica created or changed it first
            return self._set(False)
        self._observed, self._observed_at = claimed.version, loop.time()
        return self._set(True, sent)

    def _set(self, leader: bool, renewed_at: float | None = None) -> bool:
        if renewed_at is not None:
            self._renewed_at = renewed_at
        if leader != self._leader:
            log.info(
                "sweep leadership %s (%s/%s as %s)",
                "acquired" if leader else "not held",
                self.namespace,
                self.name,
                self.identity,
            )
        self._leader = leader
        return leader

    async def release(self) -> None:
        """Give the Lease up on shutdown so another replica takes over at once; this replica stops
        leading first, so it no longer leads once the Lease is free."""
        if not self.is_leader:
            return
        self._leader = False
        # A renewal sent just before shutdown still lands (cancelling the elector's task does not
        # stop its thread's call), changing the Lease between this read and this replace: the
        # replace is then refused as stale, and read again.
        try:
            for _ in range(RELEASE_ATTEMPTS):
                lease = await self._table.get(self.name)
                if lease is None or lease.holder != self.identity or await self._table.release(lease):
                    return
            log.warning(
                "could not release the sweep Lease: changed on every one of %d tries", RELEASE_ATTEMPTS
            )
        except ApiException as exc:
            log.warning("could not release the sweep Lease: %s %s", exc.status, exc.reason)
        except TimeoutError:
            log.warning("could not release the sweep Lease: no answer within %.0f s", self._table.timeout)
