"""Leader election on a coordination.k8s.io/v1 Lease: exactly one replica runs the abort sweep.

Expiry is judged as client-go does, by the local time since this replica last saw the Lease change
(not by comparing clocks across machines).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from taskaction_operator.k8s.ops import KubeOps

log = logging.getLogger(__name__)

#: Reads and replaces a release tries when the Lease changed between them (409).
RELEASE_ATTEMPTS = 3


class LeaseElector:
    """Acquires and renews one Lease; ``is_leader`` says whether this replica holds it.

    Leadership lasts ``renew_deadline`` (two thirds of the lease duration) from the moment the last
    successful renewal was sent, as client-go's ``RenewDeadline``: a replica whose renewal hangs (a
    silent network) stops being leader on its own, while another replica takes the Lease over only a
    whole duration after it last saw it renewed, so there are never two leaders at once. Every call
    is bounded (``_request_timeout``), so a hung one cannot stall the loop either.
    """

    def __init__(self, kube: KubeOps, *, namespace: str, name: str, identity: str, duration: float) -> None:
        self._api = kube.coordination
        self._kube = kube
        self.namespace = namespace
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

    async def _call(self, fn: Any, *args: Any) -> Any:
        """One coordination API call, bounded by a third of the lease duration."""
        timeout = max(1.0, self.duration / 3)
        return await asyncio.wait_for(asyncio.to_thread(fn, *args, _request_timeout=timeout), timeout)

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
        now = dt.datetime.now(dt.UTC)
        sent = time.monotonic()
        try:
            lease = await self._call(self._api.read_namespaced_lease, self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=int(self.duration),
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            try:
                await self._call(self._api.create_namespaced_lease, self.namespace, body)
            except ApiException as exc2:
                if exc2.status == 409:
                    return self._set(False)
                raise
            return self._set(True, sent)
        spec = lease.spec or client.V1LeaseSpec()
        lease.spec = spec
        record = (spec.holder_identity, str(spec.renew_time))
        if record != self._observed:
            self._observed, self._observed_at = record, loop.time()
        held_by_me = spec.holder_identity == self.identity
        expired = loop.time() - self._observed_at > self.duration
        if not held_by_me and spec.holder_identity and not expired:
            return self._set(False)
        if not held_by_me:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = int(self.duration)
        try:
            await self._call(self._api.replace_namespaced_lease, self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                return self._set(False)
            raise
        self._observed, self._observed_at = (self.identity, str(now)), loop.time()
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
        # replace is then refused as stale (409), and read again.
        for attempt in range(RELEASE_ATTEMPTS):
            try:
                lease = await self._call(self._api.read_namespaced_lease, self.name, self.namespace)
                if lease.spec is None or lease.spec.holder_identity != self.identity:
                    return
                lease.spec.holder_identity = None
                await self._call(self._api.replace_namespaced_lease, self.name, self.namespace, lease)
                return
            except ApiException as exc:
                if exc.status == 409 and attempt + 1 < RELEASE_ATTEMPTS:
                    continue
                log.warning("could not release the sweep Lease: %s %s", exc.status, exc.reason)
                return
            except TimeoutError:
                log.warning("could not release the sweep Lease: no answer within %.0f s", self.duration / 3)
                return
