"""``taskaction-operator serve``: Flyte's API over Connect (see :mod:`taskaction_operator.server`)."""

from __future__ import annotations

import sys

from taskaction_operator.cli.context import Context, UsageError


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``:PORT`` (all interfaces) as (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {value!r}: expected HOST:PORT (e.g. 127.0.0.1:8090 or :8090)")
    return (host.strip("[]") or "0.0.0.0"), int(port)


async def serve(ctx: Context) -> int:
    """Serve until SIGINT/SIGTERM."""
    host, port = parse_listen(ctx.args.listen)
    events_listen = parse_listen(ctx.args.events_listen) if ctx.args.events_listen else None
    if events_listen is not None and events_listen[1] == port:
        raise UsageError(f"--events-listen {ctx.args.events_listen}: must be another port than --listen")
    if ctx.args.max_streams < 1:
        raise UsageError(f"--max-streams {ctx.args.max_streams}: must be at least 1")
    if ctx.args.max_stream_seconds <= 0:
        raise UsageError(f"--max-stream-seconds {ctx.args.max_stream_seconds:g}: must be positive")
    from taskaction_operator.server.main import ServeOptions, serve  # lazily: hypercorn loads only here

    if ctx.args.auth == "none":
        # Always on stderr, whatever -v says: nobody should run this unaware.
        print(
            "taskaction-operator: warning: serving WITHOUT authentication (--auth none): anyone who "
            f"reaches {host}:{port} may read every run, abort any and record events",
            file=sys.stderr,
            flush=True,
        )
    if events_listen is not None:
        print(
            f"taskaction-operator: note: {events_listen[0]}:{events_listen[1]} serves the events endpoint "
            "only, without authentication: keep it reachable from Flyte's executor alone",
            file=sys.stderr,
            flush=True,
        )
    options = ServeOptions(
        database_url=ctx.database_url,
        host=host,
        port=port,
        max_streams=ctx.args.max_streams,
        max_stream_seconds=ctx.args.max_stream_seconds,
        kube=ctx.kube() if ctx.args.auth == "kubernetes" or ctx.args.actions else None,
        namespace=ctx.namespace,
        actions=ctx.args.actions,
        auth=ctx.args.auth == "kubernetes",
        storage_prefix=ctx.args.storage_prefix,
        events_listen=events_listen,
    )
    await serve(options)
    return 0
