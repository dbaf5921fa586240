"""The database's own limit for the same rows: a bare psycopg loop, no operator, no Kubernetes.

For N actions it inserts the ``actions`` rows (one transaction, not part of the figure), then commits
the 4·N transitions the operator records, each as an ``action_events`` INSERT (… ON CONFLICT DO
NOTHING, an ActionEvent protobuf in ``info``) plus the guarded phase UPDATE of its ``actions`` row
(``phase <= new``, attempts, updated_at, ended_at/duration_ms on a terminal phase): ``executemany``
in pipeline mode, ``batch`` transitions per transaction, phase by phase. No NOTIFY. The rows go to a
project of their own (``<project>``), so they never mix with the operator's.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from flyteidl2.common import identifier_pb2
from flyteidl2.workflow import run_definition_pb2

from _bench.workload import DOMAIN, Node

INSERT_ACTION = (
    "INSERT INTO actions (project, domain, run_name, name, parent_action_name, phase, task_type,"
    " function_name, action_spec, action_details, attempts, created_at, updated_at)"
    " VALUES (%s, %s, %s, %s, %s, 1, 'python', 'bench.workflows.step', %s, '{}', 1, %s, now())"
    " ON CONFLICT DO NOTHING"
)
INSERT_EVENT = (
    "INSERT INTO action_events (project, domain, run_name, name, attempt, phase, version, info,"
    " error_kind, created_at, updated_at) VALUES (%s, %s, %s, %s, 1, %s, 0, %s, NULL, %s, now())"
    " ON CONFLICT DO NOTHING"
)
UPDATE_PHASE = (
    "UPDATE actions SET phase = %(phase)s, attempts = 1, cache_status = 0, updated_at = now(),"
    " ended_at = CASE WHEN %(terminal)s THEN COALESCE(ended_at, greatest(%(at)s, created_at))"
    " ELSE ended_at END,"
    " duration_ms = CASE WHEN %(terminal)s THEN (extract(epoch FROM COALESCE(ended_at,"
    " greatest(%(at)s, created_at)) - created_at) * 1000)::bigint ELSE duration_ms END"
    " WHERE project = %(project)s AND domain = %(domain)s AND run_name = %(run)s AND name = %(name)s"
    " AND (phase <= %(phase)s OR phase = ANY('{6,8}'))"
)


def _info(project: str, node: Node, phase: int) -> bytes:
    msg = run_definition_pb2.ActionEvent(
        id=identifier_pb2.ActionIdentifier(
            run=identifier_pb2.RunIdentifier(project=project, domain=DOMAIN, name=node.run), name=node.name
        ),
        attempt=1,
        phase=phase,
        version=0,
    )
    msg.updated_time.FromDatetime(datetime.now(UTC).replace(tzinfo=None))
    return bytes(msg.SerializeToString())


def run(dsn: str, project: str, runs: list[list[Node]], *, batch: int = 100) -> dict[str, Any]:
    nodes = [n for r in runs for n in r]
    now = datetime.now(UTC)
    with psycopg.connect(dsn) as conn:
        t0 = time.perf_counter()
        with conn.pipeline(), conn.cursor() as cur:
            cur.executemany(
                INSERT_ACTION,
                [(project, DOMAIN, n.run, n.name, n.parent, b"\x0a\x00" * 40, now) for n in nodes],
            )
        conn.commit()
        setup_s = time.perf_counter() - t0
        work: list[tuple[Node, int]] = []
        for step in range(4):
            for n in nodes:
                work.append((n, {0: 1, 1: 3, 2: 4}.get(step, 6 if n.path[3] == "PermanentFailure" else 5)))
        transactions = 0
        t0 = time.perf_counter()
        for start in range(0, len(work), batch):
            chunk = work[start : start + batch]
            at = datetime.now(UTC)
            with conn.pipeline(), conn.cursor() as cur:
                cur.executemany(
                    INSERT_EVENT,
                    [(project, DOMAIN, n.run, n.name, ph, _info(project, n, ph), at) for n, ph in chunk],
                )
                cur.executemany(
                    UPDATE_PHASE,
                    [
                        {
                            "phase": ph,
                            "terminal": ph >= 5,
                            "at": at,
                            "project": project,
                            "domain": DOMAIN,
                            "run": n.run,
                            "name": n.name,
                        }
                        for n, ph in chunk
                    ],
                )
            conn.commit()
            transactions += 1
        elapsed = time.perf_counter() - t0
    return {
        "project": project,
        "actions": len(nodes),
        "transitions": len(work),
        "batch": batch,
        "transactions": transactions,
        "actions_insert_s": round(setup_s, 3),
        "seconds": round(elapsed, 3),
        "per_s": round(len(work) / elapsed, 1) if elapsed > 0 else None,
    }
