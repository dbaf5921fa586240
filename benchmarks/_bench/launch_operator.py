"""Runs the operator exactly as ``taskaction-operator run`` does (``run_operator(Settings.from_env())``),
plus one read-only Prometheus collector on the operator's own registry exposing in-process counters
that have no metric of their own: the repository's statement/transaction counters (``ActionRepo.stats``)
and the operator's ``KubeOps`` call counters. Nothing in the operator's behaviour is changed.

With ``BENCH_MEMDIAG=DIR`` (the memory phase's ``--memory-diag``), SIGUSR1 writes memory diagnostics
under DIR: live objects by type (``gc``), ``sys._debugmallocstats()`` and glibc's ``malloc_stats()``
(both print to fd 2, captured), ``smaps_rollup``, and a tracemalloc snapshot when tracing is on
(``PYTHONTRACEMALLOC``); then an empty ``done`` file.

``BENCH_KOPF_SETTINGS="queueing.worker_limit=500;…"`` (for trying kopf settings in the memory phase's
variants) sets those kopf settings at start-up, before the operator's own start-up handler (which
does not set them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily

from taskaction_operator import metrics
from taskaction_operator.config import ConfigurationError, Settings
from taskaction_operator.controller import runtime as runtime_mod
from taskaction_operator.controller.main import run_operator

_RUNTIME: list[Any] = []
_original_start = runtime_mod.Runtime.start.__func__  # type: ignore[attr-defined]


async def _start(cls: Any, settings: Settings) -> Any:
    rt = await _original_start(cls, settings)
    _RUNTIME.append(rt)
    return rt


runtime_mod.Runtime.start = classmethod(_start)  # type: ignore[assignment, method-assign]


class _BenchCollector:
    def collect(self) -> Iterator[CounterMetricFamily]:
        if not _RUNTIME:
            return
        rt = _RUNTIME[-1]
        for name, value in (
            ("bench_repo_statements", rt.repo.stats.statements),
            ("bench_repo_transactions", rt.repo.stats.transactions),
            ("bench_repo_notifications", rt.repo.stats.notifications),
            ("bench_recorder_batches", rt.recorder.batches),
            ("bench_kubeops_reads", rt.kube.reads),
            ("bench_kubeops_writes", rt.kube.writes),
        ):
            yield CounterMetricFamily(name, f"{name} (benchmark probe)", value=value)


metrics.REGISTRY.register(_BenchCollector())


def _capture_fd2(path: Path, fn: Any) -> None:
    """Runs ``fn`` with fd 2 redirected to ``path`` (C code printing to stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "wb") as f:
            os.dup2(f.fileno(), 2)
            fn()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _dump_memdiag(out: Path) -> None:
    import collections
    import ctypes
    import gc
    import json
    import tracemalloc

    out.mkdir(parents=True, exist_ok=True)
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    (out / "gc_types.json").write_text(json.dumps(counts.most_common(60), indent=1))
    _capture_fd2(out / "debugmallocstats.txt", sys._debugmallocstats)
    libc = ctypes.CDLL("libc.so.6")
    _capture_fd2(out / "malloc_stats.txt", libc.malloc_stats)
    (out / "smaps_rollup.txt").write_text(Path("/proc/self/smaps_rollup").read_text())
    (out / "status.txt").write_text(Path("/proc/self/status").read_text())
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(out / "tracemalloc.snap"))
        cur, peak = tracemalloc.get_traced_memory()
        (out / "traced.json").write_text(
            json.dumps({"current": cur, "peak": peak, "overhead": tracemalloc.get_tracemalloc_memory()})
        )
    (out / "done").write_text("")


def _install_memdiag(out: Path) -> None:
    import signal
    import threading

    def handler(signum: int, frame: Any) -> None:
        threading.Thread(target=_dump_memdiag, args=(out,), name="memdiag", daemon=True).start()

    signal.signal(signal.SIGUSR1, handler)


def _install_kopf_settings(spec: str) -> None:
    import ast

    import kopf

    pairs = [item.split("=", 1) for item in spec.split(";") if item.strip()]

    @kopf.on.startup(id="bench-kopf-settings")
    async def _apply(settings: kopf.OperatorSettings, **_: Any) -> None:
        for path, value in pairs:
            *parents, leaf = path.strip().split(".")
            target: Any = settings
            for part in parents:
                target = getattr(target, part)
            setattr(target, leaf, ast.literal_eval(value.strip()))


if __name__ == "__main__":
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        print(f"launch_operator: {exc}", file=sys.stderr)
        sys.exit(2)
    if os.environ.get("BENCH_KOPF_SETTINGS"):
        _install_kopf_settings(os.environ["BENCH_KOPF_SETTINGS"])
    if os.environ.get("BENCH_MEMDIAG"):
        _install_memdiag(Path(os.environ["BENCH_MEMDIAG"]))
    run_operator(settings)
