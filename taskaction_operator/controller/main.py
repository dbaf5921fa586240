"""Entry point of the operator process: ``taskaction-operator run``."""

from __future__ import annotations

import asyncio
import logging

import kopf
from kopf._cogs.structs.references import Insights
from kopf._core.engines.peering import Identity

from taskaction_operator.config import Settings


def run_operator(settings: Settings, *, verbose: int = 0) -> None:
    """Run kopf with our handlers until SIGINT/SIGTERM; ``verbose`` 1 (``-v``) adds the HTTP access
    log of the probe and webhook servers, 2 (``-vv``) logs everything at debug level, tracebacks of
    retried failures included."""
    import taskaction_operator.controller.handlers
    import taskaction_operator.controller.lifecycle  # noqa: F401

    if settings.webhook_address is not None:
        from taskaction_operator.controller import admission

        admission.register()

    # The operator owns the process's logging: one handler, kopf's, in the chosen format.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    kopf.configure(
        debug=verbose >= 2,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
    )
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # aiohttp's access log of kopf's servers (the liveness probe, the webhook): a line for every
    # probe and every TaskAction created, and ~2 % of the operator's CPU under load; with -v only.
    logging.getLogger("aiohttp.access").setLevel(logging.INFO if verbose >= 1 else logging.WARNING)
    insights = Insights()
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=settings.liveness or None,
            # Our own insights (kopf's view of what it watches), so that the shard watch can
            # restart kopf's TaskAction watch when the shards owned change (controller/shards/watch.py).
            insights=insights,
            memo=kopf.Memo(config=settings, insights=insights),
            # Ours, not kopf's guess: that calls getpass.getuser(), which raises for a uid with no
            # passwd entry (the image's 65532) — kopf/_core/engines/peering.py detect_own_id.
            identity=Identity(settings.identity),
        )
    )
