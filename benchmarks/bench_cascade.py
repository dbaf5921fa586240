"""What the record guard costs a cascade: delete a root with N children, time until every row is
ABORTED and every TaskAction gone, with the guard on and off. Figures printed, and saved to
``.local/bench/cascade.json``; not a test.

    KUBECONFIG=.local/cluster/kubeconfig TASKACTION_DATABASE_URL=$(cat .local/db/dsn) \
        .venv/bin/python benchmarks/bench_cascade.py [--children 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from taskaction_operator.k8s import KubeOps
from tests.e2e.operator import Db, OperatorProcess
from tests.e2e.taskactions import taskaction


def api_writes(op: OperatorProcess) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in op.metrics().splitlines()
        if line.startswith("taskaction_api_writes_total{")
    )


async def wait(predicate: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


async def one(kube: KubeOps, db: Db, kubeconfig: str, dsn: str, children: int, guard: bool) -> dict[str, Any]:
    ns = f"bench-cascade-{uuid.uuid4().hex[:6]}"
    project, run = ns, "rcascade"
    await asyncio.to_thread(kube.core.create_namespace, {"metadata": {"name": ns}})
    op = OperatorProcess(
        kubeconfig=kubeconfig,
        dsn=dsn,
        namespace=ns,
        log_dir=ROOT / ".local" / "bench",
        TASKACTION_RECORD_GUARD=str(guard).lower(),
    ).start()
    try:
        root = await kube.create_taskaction(ns, taskaction(project, run, "a0"))
        ref = {
            "apiVersion": "flyte.org/v1",
            "kind": "TaskAction",
            "name": root["metadata"]["name"],
            "uid": root["metadata"]["uid"],
            "blockOwnerDeletion": True,
        }
        sem = asyncio.Semaphore(32)

        async def child(i: int) -> None:
            async with sem:
                await kube.create_taskaction(
                    ns, taskaction(project, run, f"c{i}", "a0", ownerReferences=[ref])
                )

        await asyncio.gather(*(child(i) for i in range(children)))
        count_sql = "SELECT count(*) AS n FROM actions WHERE project = %s AND run_name = %s AND phase = %s"
        await wait(
            lambda: (
                db.query(count_sql, project, run, 4)[0]["n"] == 1  # root promoted to RUNNING
                and db.query(count_sql, project, run, 1)[0]["n"] == children
            ),
            300,
            "all recorded",
        )
        if guard:

            async def all_guarded() -> bool:
                items = await kube.list_taskactions(ns)
                return all("flyte.org/record-guard" in (i["metadata"].get("finalizers") or []) for i in items)

            await wait(all_guarded, 300, "guards on every object")
        writes_before = api_writes(op)
        started = time.monotonic()
        await kube.delete_taskaction(ns, root["metadata"]["name"])
        recorded = await wait(
            lambda: db.query(count_sql, project, run, 7)[0]["n"] == children + 1, 600, "every row ABORTED"
        )

        async def none_left() -> bool:
            return not await kube.list_taskactions(ns)

        await wait(none_left, 600, "every TaskAction gone")
        gone = time.monotonic() - started
        return {
            "guard": guard,
            "children": children,
            "recorded_s": round(started and recorded, 2),
            "gone_s": round(gone, 2),
            "operator_patches_during_cascade": api_writes(op) - writes_before,
        }
    finally:
        op.stop()
        await asyncio.to_thread(kube.core.delete_namespace, ns)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--children", type=int, default=1000)
    args = ap.parse_args()
    kubeconfig = os.environ["KUBECONFIG"]
    dsn = os.environ["TASKACTION_DATABASE_URL"]
    kube = KubeOps.from_kubeconfig(kubeconfig)
    db = Db(dsn)
    results = [await one(kube, db, kubeconfig, dsn, args.children, guard) for guard in (False, True)]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"cascade of {args.children} children (commit {commit})")
    print(f"{'record guard':<14}{'all ABORTED (s)':>17}{'all gone (s)':>14}{'operator patches':>18}")
    for r in results:
        print(
            f"{'on' if r['guard'] else 'off':<14}{r['recorded_s']:>17}{r['gone_s']:>14}"
            f"{r['operator_patches_during_cascade']:>18.0f}"
        )
    out = ROOT / ".local" / "bench" / "cascade.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"commit": commit, "results": results}, indent=2))
    kube.close()


if __name__ == "__main__":
    asyncio.run(main())
