"""Flyte's own API over Connect, served by ``taskaction-operator serve``: the events endpoint that
Flyte's executor reports to (``EventsProxyService``, ``InternalRunService.RecordActionEvents``),
health, readiness and per-RPC metrics. Over the repository only: no database credentials leave it."""
