"""Runs to buckets, buckets to shards, and the selector a replica's watch carries."""

from __future__ import annotations

import zlib

import pytest

from taskaction_operator.crd.shards import (
    BUCKETS,
    NO_SHARD_SELECTOR,
    SHARD_LABEL,
    body_bucket,
    bucket,
    bucket_label,
    owned_buckets,
    shard_of,
    shard_selector,
)
from tests.factories import taskaction_body


def test_a_runs_bucket_is_the_crc32_of_its_key_the_same_in_every_process() -> None:
    assert bucket("p", "d", "r1") == zlib.crc32(b"p/d/r1") % BUCKETS
    assert bucket_label("p", "d", "r1") == str(zlib.crc32(b"p/d/r1") % BUCKETS)
    # A fixed value: a change of hash would move every run's shard under a running cluster.
    assert bucket("flytesnacks", "development", "r1") == zlib.crc32(b"flytesnacks/development/r1") % 64
    runs = {bucket("p", "d", f"r{i}") for i in range(2000)}
    assert runs == set(range(BUCKETS))


def test_the_label_decides_when_it_is_a_bucket_else_the_identity_does() -> None:
    b = taskaction_body("a1", "a0", run="r7")
    computed = bucket("p", "d", "r7")
    assert body_bucket(b) == computed  # from the spec
    b["metadata"]["labels"] = {"flyte.org/project": "p", "flyte.org/domain": "d", "flyte.org/run": "r7"}
    b["spec"] = {}
    assert body_bucket(b) == computed  # from the identity labels
    b["metadata"]["labels"][SHARD_LABEL] = "5"
    assert body_bucket(b) == 5
    for bad in ("64", "-1", "x", ""):
        b["metadata"]["labels"][SHARD_LABEL] = bad
        assert body_bucket(b) == computed
    assert body_bucket({"metadata": {}, "spec": {"project": "p"}}) is None


@pytest.mark.parametrize("shards", [1, 2, 3, 5, 64])
def test_the_shards_partition_the_buckets(shards: int) -> None:
    parts = [owned_buckets({s}, shards) for s in range(shards)]
    assert sum(len(p) for p in parts) == BUCKETS
    assert frozenset().union(*parts) == frozenset(range(BUCKETS))
    assert all(shard_of(b, shards) == s for s, p in enumerate(parts) for b in p)


def test_the_selector_excludes_the_buckets_owned_elsewhere() -> None:
    assert shard_selector({0, 1}, 2) is None  # everything: no filter
    assert shard_selector(set(), 2) == NO_SHARD_SELECTOR
    sel = shard_selector({0}, 2)
    assert sel is not None and sel.startswith(f"{SHARD_LABEL} notin (")
    excluded = {int(v) for v in sel[sel.index("(") + 1 : -1].split(",")}
    assert excluded == set(range(1, BUCKETS, 2))
