"""The sweep's Lease elector steps down on time: a replica whose renewal hangs is no longer leader
before another replica may take the Lease over, so there are never two leaders at once."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
from typing import Any

from kubernetes import client

from taskaction_operator.k8s.lease import LeaseElector
from taskaction_operator.k8s.lease_table import LeaseTable


class Coordination:
    """The coordination API of one Lease; ``hang`` makes every call block (a silent network)."""

    def __init__(self) -> None:
        self.lease: client.V1Lease | None = None
        self.hang = threading.Event()
        self.unhang = threading.Event()

    def _maybe_hang(self) -> None:
        if self.hang.is_set():
            self.unhang.wait(30)

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> client.V1Lease:
        self._maybe_hang()
        if self.lease is None:
            raise client.exceptions.ApiException(status=404)
        return self.lease

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease, **_: Any) -> client.V1Lease:
        self._maybe_hang()
        self.lease = body
        return body

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: client.V1Lease, **_: Any
    ) -> client.V1Lease:
        self._maybe_hang()
        self.lease = body
        return body


class Kube:
    def __init__(self, coordination: Coordination) -> None:
        self.coordination = coordination


def elector_over(api: Coordination, *, duration: float) -> LeaseElector:
    """The elector as the operator builds it: over a Lease table bounded by a third of the duration."""
    table = LeaseTable(Kube(api), "ns", timeout=max(1.0, duration / 3))  # type: ignore[arg-type]
    return LeaseElector(table, name="sweep", identity="me", duration=duration)


async def test_a_leader_whose_renewal_hangs_steps_down_before_the_lease_can_be_taken() -> None:
    api = Coordination()
    duration = 0.9
    elector = elector_over(api, duration=duration)
    task = asyncio.create_task(elector.run())
    try:
        deadline = time.monotonic() + 5
        while not elector.is_leader:
            assert time.monotonic() < deadline, "never became leader"
            await asyncio.sleep(0.01)
        api.hang.set()  # every further call blocks, as on a partitioned network
        renewed = time.monotonic()  # at the latest: the last renewal was no later than now
        while elector.is_leader:  # noqa: ASYNC110  (a property, polled: no event to wait on)
            await asyncio.sleep(0.01)
        stepped_down = time.monotonic() - renewed
        # Another replica takes over only a whole lease duration after it last saw a renewal.
        assert stepped_down < duration, f"still leader {stepped_down:.2f} s after the last renewal"
    finally:
        api.unhang.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_leader_giving_the_lease_up_stops_leading_before_the_lease_is_free() -> None:
    """On shutdown the Lease is released so another replica takes over at once: this replica must
    already not lead when the release reaches the API server, or both lead for a moment."""
    api = Coordination()
    elector = elector_over(api, duration=3)
    assert await elector.try_acquire_or_renew() and elector.is_leader
    leading_at_release: list[bool] = []
    replace = api.replace_namespaced_lease

    def watched_replace(name: str, namespace: str, body: client.V1Lease, **kw: Any) -> client.V1Lease:
        if body.spec is not None and body.spec.holder_identity is None:
            leading_at_release.append(elector.is_leader)
        return replace(name, namespace, body, **kw)

    api.replace_namespaced_lease = watched_replace  # type: ignore[method-assign]
    await elector.release()
    assert leading_at_release == [False]
    assert api.lease is not None and api.lease.spec is not None and api.lease.spec.holder_identity is None


class VersionedCoordination(Coordination):
    """The Lease with a resourceVersion, checked on replace as the API server does (409 on a stale one)."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0
        self.conflicts = 0

    def read_namespaced_lease(self, name: str, namespace: str, **kw: Any) -> client.V1Lease:
        return _copy(super().read_namespaced_lease(name, namespace, **kw))

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease, **kw: Any) -> client.V1Lease:
        self.version += 1
        body.metadata.resource_version = str(self.version)
        return super().create_namespaced_lease(namespace, _copy(body), **kw)

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: client.V1Lease, **kw: Any
    ) -> client.V1Lease:
        assert self.lease is not None
        if body.metadata.resource_version != self.lease.metadata.resource_version:
            self.conflicts += 1
            raise client.exceptions.ApiException(status=409, reason="Conflict")
        self.version += 1
        stored = _copy(body)
        stored.metadata.resource_version = str(self.version)
        return super().replace_namespaced_lease(name, namespace, stored, **kw)


def _copy(lease: client.V1Lease) -> client.V1Lease:
    return copy.deepcopy(lease)


async def test_a_release_racing_the_last_renewal_still_frees_the_lease() -> None:
    """On shutdown the elector's task is cancelled, but a renewal already sent from its thread still
    lands: it can change the Lease between the release's read and its replace. The release is then
    refused (409) and must read again, or the next replica waits a whole lease duration."""
    api = VersionedCoordination()
    elector = elector_over(api, duration=3)
    assert await elector.try_acquire_or_renew() and elector.is_leader
    read = api.read_namespaced_lease
    raced: list[bool] = []

    def read_then_renewal_lands(name: str, namespace: str, **kw: Any) -> client.V1Lease:
        lease = read(name, namespace, **kw)
        if not raced:  # the in-flight renewal, written just after the release's read
            raced.append(True)
            renewal = read(name, namespace)
            api.replace_namespaced_lease(name, namespace, renewal)
        return lease

    api.read_namespaced_lease = read_then_renewal_lands  # type: ignore[method-assign]
    await elector.release()
    assert api.conflicts == 1, "the race happened"
    assert api.lease is not None and api.lease.spec is not None and api.lease.spec.holder_identity is None
