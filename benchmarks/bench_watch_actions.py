"""Benchmark of the API server's watches: N concurrent ``WatchActions`` streams on one run.

    .venv/bin/python benchmarks/bench_watch_actions.py --dsn postgresql://… --streams 100 --actions 1000

Seeds a run of ``--actions`` actions (a0 and its children) in a project of its own, starts
``taskaction-operator serve`` as a process, opens ``--streams`` WatchActions streams (flyteidl2's
Connect client, one HTTP/1.1 connection each) and measures:

* time to first snapshot: from each stream's request to its whole tree received (p50, p99, max);
* update latency: ``--updates`` phase updates of random children, each timed from the repository's
  COMMIT returning to the message carrying it arriving on each stream (p50, p99 over every stream and update);
* server RSS (``/proc/PID/status``) before the streams and with all of them open, per stream.

Prints the figures and writes them as JSON to ``.local/bench/watch-actions.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flyteidl2.workflow import run_service_pb2 as rs
from flyteidl2.workflow.run_service_connect import RunServiceClient

from taskaction_operator.devtools.operator_process import free_port
from taskaction_operator.model import ActionId, ActionPhase, RunId
from taskaction_operator.repo import Action, ActionRepo, upgrade

ROOT = Path(__file__).resolve().parent.parent


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _seed(repo: ActionRepo, run_id: RunId, n: int) -> list[ActionId]:
    t0 = datetime.now(UTC)
    rows = [Action.new(run_id.root, phase=ActionPhase.RUNNING, created_at=t0)]
    rows += [
        Action.new(
            ActionId(run_id, f"c{i:05d}"), parent_action_name="a0", created_at=t0 + timedelta(milliseconds=i)
        )
        for i in range(1, n)
    ]
    await repo.record_batch(actions=rows)
    return [r.action_id for r in rows[1:]]


def _start_server(dsn: str, port: int, max_streams: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "taskaction_operator", "serve", "--listen", f"127.0.0.1:{port}"]
    argv += ["--database-url", dsn, "--max-streams", str(max_streams)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("serve did not become ready within 30 s")


async def _stream(
    url: str,
    run_id: RunId,
    n: int,
    ready: asyncio.Event,
    snapshots: list[float],
    arrivals: dict[str, list[float]],
    arrived: asyncio.Condition,
) -> None:
    """Follows the run: the seconds to its whole tree into ``snapshots``, then each change's arrival."""
    async with RunServiceClient(url) as client:
        started = time.perf_counter()
        seen = 0
        async for message in client.watch_actions(rs.WatchActionsRequest(run_id=run_id.to_proto())):
            now = time.perf_counter()
            if seen < n:
                seen += len(message.enriched_actions)
                if seen >= n:
                    snapshots.append(now - started)
                    ready.set()
                continue
            for enriched in message.enriched_actions:
                arrivals.setdefault(enriched.action.id.name, []).append(now)
            async with arrived:
                arrived.notify_all()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    upgrade(args.dsn)
    repo = await ActionRepo.connect(args.dsn)
    run_id = RunId(f"bench-{uuid.uuid4().hex[:8]}", "development", "rwatch")
    children = await _seed(repo, run_id, args.actions)
    port = free_port()
    server = _start_server(args.dsn, port, args.streams + 10)
    url = f"http://127.0.0.1:{port}"
    try:
        rss_idle = _rss_kib(server.pid)
        arrivals: dict[str, list[float]] = {}
        snapshots: list[float] = []
        arrived = asyncio.Condition()
        readies = [asyncio.Event() for _ in range(args.streams)]
        tasks = [
            asyncio.create_task(_stream(url, run_id, args.actions, r, snapshots, arrivals, arrived))
            for r in readies
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 600)
        rss_open = _rss_kib(server.pid)
        latencies: list[float] = []
        for action_id in random.sample(children, args.updates):
            arrivals.pop(action_id.name, None)
            await repo.update_action_phase(action_id, ActionPhase.SUCCEEDED, 1, 0)
            committed = time.perf_counter()
            name = action_id.name
            async with arrived:
                try:
                    await asyncio.wait_for(
                        arrived.wait_for(lambda n=name: len(arrivals.get(n, [])) >= args.streams), 30
                    )
                except TimeoutError:
                    raise RuntimeError(f"not every stream saw {name} within 30 s") from None
            latencies += [t - committed for t in arrivals[name]]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        await repo.close()
    figures = {
        "streams": args.streams,
        "actions": args.actions,
        "updates": args.updates,
        "snapshot_s": {
            "p50": statistics.median(snapshots),
            "p99": _pct(snapshots, 0.99),
            "max": max(snapshots),
        },
        "update_latency_ms": {
            "p50": 1000 * statistics.median(latencies),
            "p99": 1000 * _pct(latencies, 0.99),
            "max": 1000 * max(latencies),
        },
        "server_rss_mib": {"idle": rss_idle / 1024, "open": rss_open / 1024},
        "rss_per_stream_kib": (rss_open - rss_idle) / args.streams,
        "cpus": os.cpu_count(),
    }
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=os.environ.get("TASKACTION_DATABASE_URL"), required=False)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--actions", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=20)
    args = parser.parse_args()
    if not args.dsn:
        parser.error("--dsn (or TASKACTION_DATABASE_URL) is required")
    result = asyncio.run(main(args))
    out = ROOT / ".local" / "bench" / "watch-actions.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
