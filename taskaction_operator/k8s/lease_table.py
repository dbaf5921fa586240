"""coordination.k8s.io/v1 Leases of one namespace, read (one by name, or a set with one LIST) and each
written with a compare-and-swap (the resourceVersion it was read at): where the sweep's leadership
(``k8s/lease.py``) and the recording shards (``controller/shards/ownership.py``) are held. Those two
decide who holds what; this module only reads and writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from taskaction_operator.k8s.ops import KubeOps

#: Threads for Lease calls (a pass renews its shards concurrently).
THREADS = 4


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """One Lease as last read: who holds it, when it was last renewed (as written, never compared
    with this machine's clock), and the object itself for the next compare-and-swap."""

    name: str
    holder: str | None
    renew_time: str | None
    labels: Mapping[str, str]
    raw: Any

    @property
    def version(self) -> tuple[str | None, str | None]:
        """What changes on every renewal: expiry is judged by how long this stayed the same."""
        return self.holder, self.renew_time


def _record(lease: client.V1Lease) -> LeaseRecord:
    spec = lease.spec or client.V1LeaseSpec()
    meta = lease.metadata or client.V1ObjectMeta()
    return LeaseRecord(
        name=str(meta.name),
        holder=spec.holder_identity or None,
        renew_time=None if spec.renew_time is None else str(spec.renew_time),
        labels=dict(meta.labels or {}),
        raw=lease,
    )


class LeaseTable:
    """The Leases of one namespace that carry a label selector; every call bounded by ``timeout``."""

    def __init__(self, kube: KubeOps, namespace: str, *, timeout: float) -> None:
        self._api = kube.coordination
        self.namespace = namespace
        self.timeout = timeout
        # Threads of its own: under load the event loop's default executor is full of TaskAction
        # patches, and a renewal queued behind them would let the Lease lapse.
        self._threads = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="lease-table")

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, _request_timeout=self.timeout, **kwargs)
        return await asyncio.wait_for(loop.run_in_executor(self._threads, call), self.timeout)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def get(self, name: str) -> LeaseRecord | None:
        """The Lease ``name`` as it is now; None when there is none."""
        try:
            return _record(await self._call(self._api.read_namespaced_lease, name, self.namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, selector: str) -> list[LeaseRecord]:
        leases = await self._call(self._api.list_namespaced_lease, self.namespace, label_selector=selector)
        return [_record(lease) for lease in leases.items]

    async def claim(
        self,
        name: str,
        identity: str,
        *,
        duration: float,
        previous: LeaseRecord | None,
        labels: Mapping[str, str] | None = None,
    ) -> LeaseRecord | None:
        """Hold ``name`` as ``identity`` from now: create it (``previous`` None) or replace the Lease
        as read (``previous``; a renewal when it already names ``identity``). None when another
        writer got there first (409: created, or changed since it was read) or it is gone (404)."""
        now = dt.datetime.now(dt.UTC)
        try:
            if previous is None:
                body = client.V1Lease(
                    metadata=client.V1ObjectMeta(
                        name=name, namespace=self.namespace, labels=dict(labels or {})
                    ),
                    spec=client.V1LeaseSpec(
                        holder_identity=identity,
                        lease_duration_seconds=int(duration),
                        acquire_time=now,
                        renew_time=now,
                        lease_transitions=0,
                    ),
                )
                created = await self._call(self._api.create_namespaced_lease, self.namespace, body)
                return _record(created)
            lease = previous.raw
            spec = lease.spec or client.V1LeaseSpec()
            lease.spec = spec
            if spec.holder_identity != identity:
                spec.acquire_time = now
                spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.holder_identity = identity
            spec.renew_time = now
            spec.lease_duration_seconds = int(duration)
            replaced = await self._call(self._api.replace_namespaced_lease, name, self.namespace, lease)
            return _record(replaced)
        except ApiException as exc:
            if exc.status in (404, 409):
                return None
            raise

    async def release(self, record: LeaseRecord) -> bool:
        """Give up a Lease held as ``record`` says (holder cleared, so another takes it at once);
        False when it changed since (someone else's now, or renewed by a call still in flight)."""
        lease = record.raw
        if lease.spec is None:
            return False
        lease.spec.holder_identity = None
        try:
            await self._call(self._api.replace_namespaced_lease, record.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def delete(self, record: LeaseRecord) -> None:
        """Delete the Lease as read (a precondition on its resourceVersion); gone already is fine."""
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=record.raw.metadata.resource_version)
        )
        try:
            await self._call(self._api.delete_namespaced_lease, record.name, self.namespace, body=options)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
