"""Prometheus metrics of the operator, served on ``/metrics`` (``TASKACTION_METRICS_PORT``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_RECEIVED = Counter(
    "taskaction_events_received_total",
    "TaskAction watch events handled, by type",
    ["type"],
    registry=REGISTRY,
)
EVENTS_RECORDED = Counter(
    "taskaction_events_recorded_total",
    "TaskAction watch events whose rows were committed, by type",
    ["type"],
    registry=REGISTRY,
)
RECORDING_LAG = Histogram(
    "taskaction_recording_lag_seconds",
    "From the object's last change (managedFields time) to the committed row",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
DB_ERRORS = Counter("taskaction_db_errors_total", "Database errors, by class", ["kind"], registry=REGISTRY)
GUARDS_RELEASED_UNRECORDED = Counter(
    "taskaction_guards_released_unrecorded_total",
    "Record guards released on deleting TaskActions whose end could not be recorded, by why",
    ["reason"],
    registry=REGISTRY,
)
BATCHES = Histogram(
    "taskaction_batch_rows",
    "Rows per recorder transaction",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
    registry=REGISTRY,
)
ABORT_ATTEMPTS = Counter(
    "taskaction_abort_attempts_total",
    "Abort sweep attempts, by outcome (cleared, retry, gave_up)",
    ["outcome"],
    registry=REGISTRY,
)
API_WRITES = Counter(
    "taskaction_api_writes_total",
    "Patches the operator applied to TaskActions, by kind",
    ["kind"],
    registry=REGISTRY,
)
API_WRITES_REJECTED = Counter(
    "taskaction_api_writes_rejected_total",
    "Patches of TaskActions the API server refused because a test failed (finalizers changed), by kind",
    ["kind"],
    registry=REGISTRY,
)
ADMISSIONS = Counter(
    "taskaction_admissions_total",
    "TaskAction creations the admission webhook answered, by what it added (guard, owner, nothing)",
    ["added"],
    registry=REGISTRY,
)
WATCH_RESTARTS = Counter("taskaction_watch_restarts_total", "Database listener reconnects", registry=REGISTRY)
QUEUE_DEPTH = Gauge(
    "taskaction_recorder_queue_depth", "Observations waiting for a transaction", registry=REGISTRY
)
TRACKED = Gauge("taskaction_tracked_objects", "TaskActions with in-memory recording state", registry=REGISTRY)
SWEEP_LEADER = Gauge("taskaction_sweep_leader", "1 when this replica runs the abort sweep", registry=REGISTRY)
SHARDS_OWNED = Gauge(
    "taskaction_shards_owned",
    "Recording shards this replica holds (TASKACTION_SHARDS > 1; unsharded: 0)",
    registry=REGISTRY,
)


_serving: set[int] = set()


def serve(port: int) -> None:
    """Start the /metrics endpoint in a background thread, once per process and port (no-op for port
    0): start-up may be retried (kopf retries a failed start-up handler), the endpoint stays."""
    if port and port not in _serving:
        start_http_server(port, registry=REGISTRY)
        _serving.add(port)
