"""A network partition between the operator and PostgreSQL in the middle of a transaction, for
longer than any of its timeouts: packets dropped on a veth pair (``tests/e2e/netpartition.py``),
nothing closed, nothing answered. The record must end equal to the cluster's truth, every event
once, and nothing labelled recorded while the database could not be reached."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

from taskaction_operator.crd.names import RECORDED_LABEL
from taskaction_operator.k8s import KubeOps
from tests.e2e.netpartition import NetPartition, unavailable_reason
from tests.e2e.operator import Db, until
from tests.e2e.test_operator_faults import ENDINGS, FIRST_HALF, TREE, Run, assert_record_matches

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.usefixtures("local_components")]

#: Longer than any bound of the operator's connections (tcp_user_timeout 30 s, keepalives 25 s).
PARTITION_SECONDS = 40


def _operator_transactions(db: Db) -> list[dict[str, Any]]:
    """The operator's backends inside a transaction (as the server sees them)."""
    return db.query(
        "SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE backend_type = 'client backend'"
        " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL AND application_name = ''"
    )


def _temporary_errors(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith('taskaction_db_errors_total{kind="temporary"}'):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
async def test_a_partition_mid_transaction_loses_nothing_and_labels_nothing_early(
    kube: KubeOps, db: Db, namespace: str, start_operator: Any, database_url: str
) -> None:
    with NetPartition(database_url) as path:
        op = start_operator(TASKACTION_DATABASE_URL=path.dsn)
        run = Run(kube, namespace, "rpart")
        await run.create()
        await run.drive({a: FIRST_HALF for a, _ in TREE})
        await until(lambda: db.phases(run.project, run.name).get("a6") == 3, what="recorded before the cut")

        # Hold a6's row so that the operator's next transaction waits inside, on its UPDATE; cut
        # while it waits, then let it go: the server finishes the UPDATE and waits, in the open
        # transaction, for the rest of it (its COMMIT), which cannot arrive.
        with psycopg.connect(database_url, autocommit=False) as holder:
            holder.execute(
                "SELECT 1 FROM actions WHERE project = %s AND run_name = %s AND name = 'a6' FOR UPDATE",
                (run.project, run.name),
            )
            await run.drive({"a6": ["Executing"]})
            await until(
                lambda: any(t["wait_event_type"] == "Lock" for t in _operator_transactions(db)),
                what="the operator's transaction waiting on the held row",
            )
            path.cut()
            holder.rollback()
        cut_at = time.monotonic()
        try:
            await until(  # "active" in a pipeline still being read, else "idle in transaction"
                lambda: any(t["wait_event_type"] == "Client" for t in _operator_transactions(db)),
                what="the operator's transaction open on the server, waiting for a client cut off",
            )
            await run.drive({a: ["Executing", ENDINGS[a]] for a in ("a3", "a4", "a5")})
            await run.drive({"a6": [ENDINGS["a6"]]})
            await run.drive({a: ["Executing"] for a in ("a0", "a1", "a2")})
            # The stuck transaction is given up while the partition lasts (keepalives, TCP user
            # timeout): the recorder retries it on new connections, it does not wait for the heal.
            await until(
                lambda: _temporary_errors(op.metrics()) > 0,
                timeout=PARTITION_SECONDS,
                what="the recorder giving up the cut-off transaction and retrying",
            )
            await asyncio.sleep(max(0.0, PARTITION_SECONDS - (time.monotonic() - cut_at)))
            for obj in await kube.list_taskactions(namespace):
                assert RECORDED_LABEL not in obj["metadata"].get("labels", {}), "labelled while cut off"
        finally:
            path.heal()
        await run.drive({a: [ENDINGS[a]] for a in ("a1", "a2")})
        await run.drive({"a0": [ENDINGS["a0"]]})
        await assert_record_matches(run, db)
