"""Which replica records a run: the run's bucket, the shards that group buckets, and the label
selector that lets the API server filter a replica's watch to the shards it owns (pure).

A run's **bucket** is a stable hash of ``project/domain/run`` (CRC-32) modulo ``BUCKETS``; it is
written on every TaskAction as the ``flyte.org/record-shard`` label at creation (by our actions client,
by the admission webhook for everyone else's creations, and by the operator's first-sight patch when
the webhook was unavailable). With ``TASKACTION_SHARDS=S`` the operator's replicas split the buckets
into S **shards** (bucket ``b`` belongs to shard ``b % S``), each held by one replica with a Lease
(``controller/shards``). The bucket count is fixed, so the label never depends on S: S can change
without relabelling anything.

The label is a filter, not the truth: an object without it (created while the webhook was down) is
seen by every replica (``notin`` also selects objects without the label) and kept by its owner alone,
from the identity labels or the spec; an object with a valid label is owned by that label's shard.
Upstream has no sharding: every replica of its informer sees everything.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Mapping
from typing import Any

from taskaction_operator.crd.names import LABEL_DOMAIN, LABEL_PROJECT, LABEL_RUN

#: A TaskAction's bucket (a decimal in ``range(BUCKETS)``).
SHARD_LABEL = "flyte.org/record-shard"
#: Buckets of the hash; the most shards there can be.
BUCKETS = 64
#: The selector of a replica that owns no shard: a value no bucket has, so its watch is empty.
NO_SHARD_SELECTOR = f"{SHARD_LABEL}=none"


def bucket(project: str, domain: str, run: str) -> int:
    """The run's bucket: CRC-32 of ``project/domain/run`` modulo ``BUCKETS`` (stable everywhere)."""
    return zlib.crc32(f"{project}/{domain}/{run}".encode()) % BUCKETS


def bucket_label(project: str, domain: str, run: str) -> str:
    """The ``flyte.org/record-shard`` value of every TaskAction of the run."""
    return str(bucket(project, domain, run))


def body_bucket(body: Mapping[str, Any]) -> int | None:
    """The bucket a TaskAction body belongs to: its label when that is a valid bucket, else the hash
    of its identity (labels first, then the spec); None when neither names a run."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    raw = labels.get(SHARD_LABEL)
    if isinstance(raw, str) and raw.isdigit() and int(raw) < BUCKETS:
        return int(raw)
    spec = body.get("spec") or {}
    project = labels.get(LABEL_PROJECT) or spec.get("project")
    domain = labels.get(LABEL_DOMAIN) or spec.get("domain")
    run = labels.get(LABEL_RUN) or spec.get("runName")
    if not (project and domain and run):
        return None
    return bucket(str(project), str(domain), str(run))


def shard_of(bucket_: int, shards: int) -> int:
    """The shard that holds ``bucket_`` when there are ``shards`` of them."""
    return bucket_ % shards


def owned_buckets(owned: Collection[int], shards: int) -> frozenset[int]:
    """Every bucket of the shards ``owned`` (of ``shards``)."""
    return frozenset(b for b in range(BUCKETS) if b % shards in owned)


def shard_selector(owned: Collection[int], shards: int) -> str | None:
    """The label selector of the TaskActions a replica owning the shards ``owned`` must see: None
    when it owns them all (no filter), ``NO_SHARD_SELECTOR`` when it owns none, else the buckets it
    does not own excluded (``notin`` keeps unlabelled objects in, for the owner to find)."""
    mine = owned_buckets(owned, shards)
    if len(mine) == BUCKETS:
        return None
    if not mine:
        return NO_SHARD_SELECTOR
    others = ",".join(str(b) for b in range(BUCKETS) if b not in mine)
    return f"{SHARD_LABEL} notin ({others})"
