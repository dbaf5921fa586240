"""Operator-wide hooks: start-up (settings for kopf, the runtime), clean-up, liveness probe."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from taskaction_operator import metrics
from taskaction_operator.config import Settings
from taskaction_operator.handlers.runtime import Runtime
from taskaction_operator.k8s import GROUP, PLURAL
from taskaction_operator.services.observe import RECORDED_LABEL

#: Server-side selection of the watched TaskActions: everything not yet recorded as terminal.
WATCH_SELECTOR = f"{RECORDED_LABEL}!=true"
#: Objects per page of the initial listing.
LIST_CHUNK = 500
#: Seconds an idle per-object worker of kopf lives on.
WORKER_IDLE_S = 2.0


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
    # TaskActions labelled terminal-status-recorded are never listed or watched: upstream's informer
    # drops them in every handler, and here the API server filters them out, so that a restart with
    # many finished actions neither lists nor holds them. Adding the label makes the object leave the
    # selection: the watch reports it as DELETED with its last unlabelled state (terminal, recorded),
    # which records nothing new.
    settings.watching.label_selectors[GROUP, PLURAL] = WATCH_SELECTOR
    # The initial listing comes in pages, so a large namespace is never one huge response.
    settings.watching.chunk_size = LIST_CHUNK
    # kopf keeps one worker task per object (holding its last body) until it idles this long;
    # a short idle keeps memory proportional to the objects that are changing, not to all of them.
    settings.queueing.idle_timeout = WORKER_IDLE_S
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    # Wait for in-flight handlers (their database writes) before exiting on SIGTERM.
    settings.queueing.exit_timeout = 20.0
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
