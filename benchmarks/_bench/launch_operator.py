"""Runs the operator exactly as ``taskaction-operator run`` does (``run_operator(Settings.from_env())``),
plus one read-only Prometheus collector on the operator's own registry exposing in-process counters
that have no metric of their own: the repository's statement/transaction counters (``ActionRepo.stats``)
and the operator's ``KubeOps`` call counters. Nothing in the operator's behaviour is changed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
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

if __name__ == "__main__":
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        print(f"launch_operator: {exc}", file=sys.stderr)
        sys.exit(2)
    run_operator(settings)
