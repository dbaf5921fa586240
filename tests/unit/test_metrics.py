"""The operator's /metrics endpoint starts once per process, however often start-up is retried."""

from __future__ import annotations

import urllib.request

from taskaction_operator import metrics
from taskaction_operator.devtools.operator_process import free_port


def test_serving_metrics_again_after_a_failed_start_up_is_harmless() -> None:
    """kopf retries a start-up handler that failed (the database down at start); the second call used
    to fail with EADDRINUSE on every retry, so the operator never recovered."""
    port = free_port()
    metrics.serve(port)
    metrics.serve(port)  # the retry
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200 and b"taskaction_events_received_total" in resp.read()
