"""The load generator's API client: plain aiohttp on the event loop, no threads, no model classes.

The official client runs one blocking request per thread and builds model objects around every
response; under the GIL that caps a Python generator at ~120 requests/s on this machine, below what
the operator can take. This client sends the same requests (create, status merge patch) over a pool of
keep-alive connections and reads each response body as bytes, which leaves the API server as the
limit. It takes its address and credentials from the official client's ``Configuration`` (so a token
kubeconfig and kind's client certificates both work).
"""

from __future__ import annotations

import contextlib
import json
import ssl
from typing import Any

import aiohttp
from kubernetes import client

GROUP, VERSION, PLURAL = "flyte.org", "v1", "taskactions"


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def _ssl_context(cfg: client.Configuration) -> ssl.SSLContext | bool:
    if not cfg.verify_ssl:
        return False
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    return ctx


class RawApi:
    """``create``, ``patch`` and ``patch_status`` of TaskActions;
    use as ``async with RawApi(cfg, n) as api``."""

    def __init__(self, cfg: client.Configuration, connections: int) -> None:
        self.base = cfg.host.rstrip("/")
        self.headers = {"Accept": "application/json"}
        for auth in cfg.auth_settings().values():  # the official client's own header logic
            if auth.get("in") == "header" and auth.get("value"):
                self.headers[auth["key"]] = auth["value"]
        self._ssl = _ssl_context(cfg)
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RawApi:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections, ssl=self._ssl),
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _path(self, namespace: str, name: str = "", sub: str = "") -> str:
        path = f"{self.base}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        if name:
            path += f"/{name}"
        if sub:
            path += f"/{sub}"
        return path

    async def _send(self, method: str, url: str, body: Any, content_type: str) -> None:
        assert self._session is not None, "use RawApi as an async context manager"
        async with self._session.request(
            method, url, data=json.dumps(body), headers={"Content-Type": content_type}
        ) as resp:
            payload = await resp.read()
            if resp.status >= 300:
                reason = resp.reason or ""
                with contextlib.suppress(ValueError):
                    reason = json.loads(payload).get("message", reason)
                raise ApiError(resp.status, reason)

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        await self._send("POST", self._path(namespace), body, "application/json")

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self._send("PATCH", self._path(namespace, name), patch, "application/merge-patch+json")

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await self._send(
            "PATCH", self._path(namespace, name, "status"), patch, "application/merge-patch+json"
        )
