"""Operator-wide hooks: start-up (settings for kopf, the runtime), clean-up, liveness probe."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from taskaction_operator import metrics
from taskaction_operator.config import Settings
from taskaction_operator.handlers.runtime import Runtime


class NoDiffBase(kopf.DiffBaseStorage):
    """A diff base that keeps nothing.

    kopf builds an object's "essence" (a deep copy of its body) on every event to detect changes, but
    only change-detecting handlers (on.create/update/…) use it; ours is a raw on.event handler, so
    that copy was a tenth of the operator's CPU under load, and nothing is stored in annotations.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: Settings = memo["config"]
    # Only warnings become Kubernetes Events (ours: ParentNotFound, InvalidParent, RecordFailed …).
    settings.posting.level = logging.WARNING
    # No CRD/namespace scanning: the resource is known, and it needs no cluster-wide CRD permissions.
    settings.scanning.disabled = True
    settings.persistence.diffbase_storage = NoDiffBase()
    # Coalesce an object's bursts briefly; the latest state wins (as upstream's coalescing).
    settings.batching.batch_window = 0.05
    settings.batching.idle_timeout = 30.0
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    # Wait for in-flight handlers (their database writes) before exiting on SIGTERM.
    settings.batching.exit_timeout = 20.0
    metrics.serve(config.metrics_port)
    memo["runtime"] = await Runtime.start(config)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.stop()


@kopf.on.probe(id="recorder")
async def recorder_probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is None:
        return {"ready": False}
    return {
        "queue": runtime.recorder.depth,
        "tracked": runtime.reconciler.tracked,
        "sweep_leader": runtime.elector.is_leader,
    }
