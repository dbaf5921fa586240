"""What every phase of the end-to-end benchmark uses: its context (arguments, clients, artifacts), the
operator under test, namespace clean-up, waits on the database and the operator, and the bare watch
client as a separate process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes.client.exceptions import ApiException

from _bench import dbwatch
from _bench.operator_proc import BenchOperator, metric_sum
from _bench.rawapi import ApiError, RawApi
from taskaction_operator.crd.names import GROUP, PLURAL, VERSION
from taskaction_operator.k8s import KubeOps

ROOT = Path(__file__).resolve().parent.parent.parent
LOCAL = ROOT / ".local"


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


@dataclass
class Ctx:
    kubeconfig: str
    dsn: str
    stamp: str
    args: argparse.Namespace
    kube: KubeOps
    out_dir: Path
    api: RawApi
    started: float = field(default_factory=time.monotonic)
    notes: list[str] = field(default_factory=list)

    def operator(
        self,
        ns: str,
        *,
        guard: bool = True,
        webhook: bool = False,
        tag: str = "",
        env: dict[str, str] | None = None,
    ) -> BenchOperator:
        """The operator under test for namespace ``ns`` (not started), logging under the artifacts;
        ``webhook``: serving the admission webhook on a free port of 127.0.0.1; ``env``: more of its
        environment."""
        env = {
            **({"TASKACTION_WEBHOOK_LISTEN": f"127.0.0.1:{free_port()}"} if webhook else {}),
            **(env or {}),
        }
        return BenchOperator(
            namespace=ns,
            dsn=self.dsn,
            kubeconfig=self.kubeconfig,
            log_path=self.out_dir / f"operator-{ns}{'-' + tag if tag else ''}.log",
            guard=guard,
            plain=self.args.plain_operator,
            env=env,
        )

    def over_budget(self) -> bool:
        return time.monotonic() - self.started > self.args.budget_s


# --------------------------------------------------------------------------------------------------
# Kubernetes helpers (blocking client calls in threads)
# --------------------------------------------------------------------------------------------------
async def cleanup_namespace(ctx: Ctx, ns: str, timeout: float = 300) -> float:
    """Strip finalizers left behind (as many at once as the generator's client has connections),
    delete every TaskAction, delete the namespace, wait until gone."""
    kube = ctx.kube
    t0 = time.monotonic()
    sem = asyncio.Semaphore(ctx.api.connections)

    async def strip(name: str) -> None:
        async with sem:
            with contextlib.suppress(ApiError, aiohttp.ClientError, TimeoutError):
                await ctx.api.patch(ns, name, {"metadata": {"finalizers": None}})

    try:
        listed: Any = await asyncio.to_thread(
            kube.custom.list_namespaced_custom_object, GROUP, VERSION, ns, PLURAL
        )
        held = [i["metadata"]["name"] for i in listed.get("items", []) if i["metadata"].get("finalizers")]
        await asyncio.gather(*(strip(name) for name in held))
        await asyncio.to_thread(
            kube.custom.delete_collection_namespaced_custom_object, GROUP, VERSION, ns, PLURAL
        )
        await asyncio.to_thread(kube.core.delete_namespace, ns)
    except ApiException as exc:
        if exc.status != 404:
            log(f"cleanup of {ns}: {exc.reason}")
    while time.monotonic() - t0 < timeout:
        try:
            await asyncio.to_thread(kube.core.read_namespace, ns)
        except ApiException as exc:
            if exc.status == 404:
                return time.monotonic() - t0
        await asyncio.sleep(1)
    log(f"namespace {ns} still terminating after {timeout:.0f} s")
    return time.monotonic() - t0


async def count_crs(kube: KubeOps, ns: str, selector: str = "") -> bool:
    """Whether any TaskAction is left (a list with limit=1: cheap whatever the count)."""
    res: Any = await asyncio.to_thread(
        kube.custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        ns,
        PLURAL,
        label_selector=selector,
        limit=1,
    )
    return bool((res or {}).get("items"))


# --------------------------------------------------------------------------------------------------
# Waiting for the operator
# --------------------------------------------------------------------------------------------------
async def wait_recorded(poller: dbwatch.CountPoller, expect: int, timeout: float) -> float | None:
    """Time at which the poller first saw ``expect`` event rows; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = poller.latest()
        if latest is not None and latest.events >= expect:
            return latest.t
        await asyncio.sleep(0.25)
    return None


async def recorded_rows(dsn: str, project: str, expect: int, timeout: float) -> float | None:
    """:func:`wait_recorded` with a poller of its own over ``project``'s rows."""
    poller = dbwatch.CountPoller(dsn, project)
    poller.start()
    try:
        return await wait_recorded(poller, expect, timeout)
    finally:
        poller.stop()


async def quiesce(op: BenchOperator, timeout: float = 30) -> bool:
    """Until the operator's events, writes and queue stop moving for ~1.5 s (bounded)."""
    deadline = time.monotonic() + timeout
    last: tuple[float, ...] | None = None
    stable = 0
    while time.monotonic() < deadline:
        m = await asyncio.to_thread(op.scrape)
        now = (
            metric_sum(m, "taskaction_events_received_total"),
            metric_sum(m, "taskaction_api_writes_total"),
            metric_sum(m, "taskaction_recorder_queue_depth"),
        )
        stable = stable + 1 if now == last else 0
        if stable >= 3:
            return True
        last = now
        await asyncio.sleep(0.5)
    return False


# --------------------------------------------------------------------------------------------------
# The bare watch client (another process)
# --------------------------------------------------------------------------------------------------
def start_watcher(ctx: Ctx, ns: str, expect: int, timeout: float, tag: str, from_rv: str = "") -> Any:
    out = ctx.out_dir / f"watch-{ns}-{tag}.json"
    ready = ctx.out_dir / f"watch-{ns}-{tag}.ready"
    for p in (out, ready):
        p.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "_bench" / "watcher.py"),
        "--namespace",
        ns,
        "--expect",
        str(expect),
        "--timeout",
        str(timeout),
        "--out",
        str(out),
        "--ready",
        str(ready),
    ]
    if from_rv:
        cmd += ["--from-rv", from_rv]
    env = {**os.environ, "KUBECONFIG": ctx.kubeconfig}
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(out.with_suffix(".log"), "wb"),  # noqa: SIM115 - handed to the child
    )
    return proc, out, ready


async def watcher_ready(watcher: Any, timeout: float = 30) -> None:
    """Until the watcher of :func:`start_watcher` has its watch open (or has exited)."""
    proc, _out, ready = watcher
    for _ in range(int(timeout / 0.1)):
        if ready.exists() or proc.poll() is not None:
            return
        await asyncio.sleep(0.1)


def finish_watcher(proc: Any, out: Path, wait: float) -> dict[str, Any]:
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if not out.exists():
        return {"error": f"no output (exit {proc.returncode})"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


async def open_phase(ctx: Ctx, label: str, size: int, what: str) -> tuple[str, dict[str, Any]]:
    """Phase ``label`` begun: its line logged, its namespace ``bench-<stamp>-<label>`` created (its
    rows go under a project of that name) and its result started."""
    ns = f"bench-{ctx.stamp}-{label}"
    log(f"phase {label}: {what}")
    await ctx.kube.ensure_namespace(ns)
    return ns, {"phase": label, "namespace": ns, "project": ns, "actions": size}
