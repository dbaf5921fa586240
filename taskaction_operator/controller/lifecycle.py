"""Operator-wide hooks: start-up (settings for kopf, the runtime), clean-up, liveness probe."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import aiohttp
import kopf

from taskaction_operator import metrics
from taskaction_operator.config import Settings
from taskaction_operator.controller.runtime import Runtime
from taskaction_operator.crd.names import GROUP, PLURAL, UNRECORDED_SELECTOR
from taskaction_operator.model.text import one_line
from taskaction_operator.repo import TemporaryRepoError

logger = logging.getLogger(__name__)

#: Objects per page of the initial listing.
LIST_CHUNK = 500
#: Seconds an idle per-object worker of kopf lives on.
WORKER_IDLE_S = 2.0
#: Seconds between start-up attempts while the database is unreachable: doubling from 1 up to this.
STARTUP_RETRY_MAX_S = 30.0


#: The cyclic collector's thresholds once started: a young generation of 10,000 net allocations
#: instead of Python's 700 (see ``settle_heap``).
GC_THRESHOLDS = (10_000, 10, 10)


def settle_heap() -> None:
    """Once started: collect what start-up left, move every surviving object (modules, kopf's and
    the clients' machinery: ~240,000 objects) into the permanent generation, and collect the young
    generation less often.

    Under load the cyclic collector took ~15 % of the operator's CPU (1,000 actions at full speed:
    2.1 s of 14 s), most of it in full collections that walked every object of every imported module
    (~190 ms each). Frozen, those objects are never walked again; with the larger first threshold the
    per-event garbage of kopf (almost all freed by reference counting) triggers far fewer collections:
    0.6 s in the same run (benchmarks/RESULTS.md, "Operator CPU: the cyclic collector"). Nothing
    frozen is ever freed, which is what start-up objects are anyway; cyclic garbage made later is
    collected as before."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def startup_retry_delay(retry: int) -> float:
    """Seconds before start-up attempt ``retry + 1`` (``retry`` counts the failed ones, from 0)."""
    return min(STARTUP_RETRY_MAX_S, 2.0 ** min(retry, 16))


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


def connection_limit(config: Settings) -> int:
    """Connections for kopf's session: ``api_connections`` for requests, plus one per watch stream
    (each holds a connection for as long as it runs: one per watched namespace, or one cluster-wide).

    kopf's own session has no bound: under load every concurrent patch opened a TLS connection of its
    own and the pool kept it (~350 at 10,000 actions), each ~300 KB of the process's memory for good.
    """
    return config.api_connections + max(1, len(config.namespaces))


@kopf.on.login(id="login")
async def login(memo: kopf.Memo, **kwargs: Any) -> kopf.AiohttpSession:
    """kopf's own login (the official client's configuration: in-cluster or kubeconfig, refreshed on
    401 as before), handed to kopf as a session whose connections are bounded."""
    info: kopf.ConnectionInfo | None = await asyncio.to_thread(kopf.login_via_client, **kwargs)
    if info is None:  # the official client is a dependency: it is always importable
        raise kopf.LoginError("the official Kubernetes client found no credentials")
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connection_limit(memo["config"]), ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=info.as_aiohttp_basic_auth(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        priority=info.priority,
        aiohttp_session=session,
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, retry: int = 0, **_: Any) -> None:
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
    settings.watching.label_selectors[GROUP, PLURAL] = UNRECORDED_SELECTOR
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
    if config.webhook_address is not None:
        from taskaction_operator.controller.admission import build_server

        # kopf runs the HTTPS server; ours writes the MutatingWebhookConfiguration as it starts.
        settings.admission.server = build_server(config)
    metrics.serve(config.metrics_port)
    try:
        memo["runtime"] = await Runtime.start(config)
    except TemporaryRepoError as exc:
        # The database is down or unreachable: one line per attempt (kopf logs a TemporaryError as
        # its message alone); the traceback only at debug level (-vv).
        logger.debug("start-up failed", exc_info=True)
        delay = startup_retry_delay(retry)
        raise kopf.TemporaryError(
            f"database unavailable, will retry in {delay:.0f} s: {one_line(exc)}", delay=delay
        ) from None
    runtime: Runtime = memo["runtime"]
    if runtime.ownership is not None:
        await _start_sharding(runtime, settings, memo)
    settle_heap()


async def _start_sharding(runtime: Runtime, settings: kopf.OperatorSettings, memo: kopf.Memo) -> None:
    """Claim this replica's first shards before kopf's watch starts, so that it starts filtered to
    them; then keep the Leases, restarting the watch whenever the shards owned change."""
    from taskaction_operator.controller.shards.watch import ShardWatch

    ownership = runtime.ownership
    assert ownership is not None
    watch = ShardWatch(settings, memo["insights"], ownership.shards)
    try:
        owned = await ownership.tick()
    except Exception as exc:  # the API server is slow or down: no shard yet, the next pass claims
        logger.warning("could not claim recording shards at start: %s", exc or type(exc).__name__)
        owned = frozenset()
    watch.start(owned)

    async def changed(now_owned: frozenset[int]) -> None:
        await watch.want(now_owned)
        runtime.forget_unowned()

    ownership.on_change = changed
    runtime.tasks.append(asyncio.create_task(ownership.run(), name="shard-leases"))
    runtime.stoppers.append(watch.stop)


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
        **({} if runtime.ownership is None else {"shards": sorted(runtime.ownership.owned)}),
    }
