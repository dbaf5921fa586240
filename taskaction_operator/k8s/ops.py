"""Typed async wrappers around the official Kubernetes client for TaskActions, Events and Leases."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from taskaction_operator.crd.names import API_VERSION, GROUP, PLURAL, VERSION
from taskaction_operator.k8s.errors import Conflict, Invalid, KubeError, NotFound, translate
from taskaction_operator.k8s.json_patch import finalizer_addition_ops, finalizer_removal_ops

COMPONENT = "taskaction-operator"


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """The client configuration from the given kubeconfig, ``KUBECONFIG``/``~/.kube/config``, or the
    in-cluster config (exec plugins and auth providers run here, as kubectl runs them)."""
    cfg = client.Configuration()
    if kubeconfig or os.environ.get("KUBECONFIG") or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """An ApiClient from the given kubeconfig, ``KUBECONFIG``/``~/.kube/config``, or in-cluster config."""
    cfg = load_configuration(kubeconfig)
    cfg.connection_pool_maxsize = 32
    return client.ApiClient(cfg)


def bearer_token(kubeconfig: str | None = None) -> str | None:
    """The bearer token the kubeconfig's user presents to the API server (a ``token``, an exec
    plugin's, an auth provider's, the in-cluster ServiceAccount's); None for a user that
    authenticates otherwise (client certificate, basic auth). Raises when no kubeconfig loads."""
    cfg = load_configuration(kubeconfig)
    hook = getattr(cfg, "refresh_api_key_hook", None)
    if hook is not None:  # an exec plugin's or auth provider's expiring token, refreshed when due
        hook(cfg)
    keys = cfg.api_key or {}
    # The client keeps it under "BearerToken" (older releases: "authorization").
    value = keys.get("BearerToken") or keys.get("authorization") or ""
    scheme, _, token = str(value).partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class KubeOps:
    """The few API calls the operator and the actions client make themselves."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.admission = client.AdmissionregistrationV1Api(api_client)
        self.writes = 0
        self.reads = 0

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None) -> KubeOps:
        return cls(load_api_client(kubeconfig))

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    #: (connect, read) seconds of every call but the watch: none waits on the network forever.
    REQUEST_TIMEOUT = (10.0, 30.0)

    @classmethod
    async def _call(cls, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One official-client call in a worker thread, bounded; its ApiException as a KubeError."""
        kwargs.setdefault("_request_timeout", cls.REQUEST_TIMEOUT)
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as exc:
            raise translate(exc) from exc

    # --- TaskActions -------------------------------------------------------------------------
    async def get_taskaction(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The TaskAction, or None when it does not exist."""
        self.reads += 1
        try:
            obj = await self._call(
                self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
            )
        except NotFound:
            return None
        return cast(dict[str, Any], obj)

    async def list_taskactions(
        self, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        """TaskActions in one namespace (or all), optionally by label selector."""
        return cast(list[dict[str, Any]], (await self._list(namespace, label_selector)).get("items", []))

    async def _list(self, namespace: str | None, label_selector: str, **kwargs: Any) -> dict[str, Any]:
        """One list call, in a namespace or cluster-wide; ``kwargs`` go to the official client."""
        self.reads += 1
        kwargs["label_selector"] = label_selector
        if namespace:
            res = await self._call(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, **kwargs
            )
        else:
            res = await self._call(self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, **kwargs)
        return cast(dict[str, Any], res)

    async def taskaction_pages(
        self, namespace: str | None = None, label_selector: str = "", *, limit: int = 500
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """TaskActions in pages of at most ``limit`` (``continue`` tokens): a large cluster is never
        one huge response."""
        token = ""
        while True:
            paging: dict[str, Any] = {"limit": limit, "_continue": token} if token else {"limit": limit}
            res = await self._list(namespace, label_selector, **paging)
            yield cast(list[dict[str, Any]], res.get("items", []))
            token = str((res.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    async def holding(
        self, finalizer: str, namespace: str | None = None, label_selector: str = ""
    ) -> AsyncIterator[dict[str, Any]]:
        """Every TaskAction (paged) that carries ``finalizer``."""
        async for page in self.taskaction_pages(namespace, label_selector):
            for obj in page:
                if finalizer in (obj["metadata"].get("finalizers") or ()):
                    yield obj

    async def remove_finalizer(self, namespace: str, name: str, finalizer: str, *, attempts: int = 5) -> bool:
        """Take ``finalizer`` (only it) off the TaskAction: a JSON patch that tests the entry it
        removes, read again and retried when the list changed meanwhile. False when the object or
        the finalizer is already gone."""
        for _ in range(attempts):
            obj = await self.get_taskaction(namespace, name)
            finalizers = list((obj or {}).get("metadata", {}).get("finalizers") or [])
            if obj is None or finalizer not in finalizers:
                return False
            ops = finalizer_removal_ops(finalizers, finalizer)
            try:
                return await self.json_patch_taskaction(namespace, name, ops) is not None
            except Invalid:
                continue
        raise KubeError(409, "Conflict", f"the finalizers of {namespace}/{name} kept changing")

    async def add_finalizer(self, namespace: str, name: str, finalizer: str, *, attempts: int = 5) -> bool:
        """Put ``finalizer`` on the TaskAction (at the end of its list): a JSON patch that tests the
        list it extends, read again and retried when the list changed meanwhile. False when the
        object is gone, being deleted (the API server refuses new finalizers then) or already
        holds it."""
        for _ in range(attempts):
            obj = await self.get_taskaction(namespace, name)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                return False
            finalizers = obj["metadata"].get("finalizers")
            if finalizers and finalizer in finalizers:
                return False
            ops = finalizer_addition_ops(finalizers, finalizer)
            try:
                return await self.json_patch_taskaction(namespace, name, ops) is not None
            except Invalid:
                continue
        raise KubeError(409, "Conflict", f"the finalizers of {namespace}/{name} kept changing")

    async def create_taskaction(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        obj = await self._call(
            self.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, body
        )
        return cast(dict[str, Any], obj)

    async def delete_taskaction(self, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete with background propagation (the garbage collector takes the subtree); with ``uid``,
        only that object (``preconditions.uid``: another object under the same name is left alone).

        Returns False when the object was already gone (or, with ``uid``, replaced).
        """
        self.writes += 1
        options = client.V1DeleteOptions(
            propagation_policy="Background",
            preconditions=client.V1Preconditions(uid=uid) if uid else None,
        )
        try:
            await self._call(
                self.custom.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body=options,
            )
        except NotFound:
            return False
        except Conflict:
            if uid is None:
                raise
            return False  # the precondition failed: the object we meant is gone
        return True

    async def json_patch_taskaction(
        self, namespace: str, name: str, ops: list[dict[str, Any]], *, status: bool = False
    ) -> dict[str, Any] | None:
        """Apply a JSON patch (RFC 6902); None when the object is gone. A failed ``test`` raises Invalid."""
        return await self._patch(namespace, name, ops, "application/json-patch+json", status)

    async def merge_patch_taskaction(
        self, namespace: str, name: str, patch: dict[str, Any], *, status: bool = False
    ) -> dict[str, Any] | None:
        """Apply a JSON merge patch; None when the object is gone."""
        return await self._patch(namespace, name, patch, "application/merge-patch+json", status)

    async def _patch(
        self, namespace: str, name: str, body: Any, content_type: str, status: bool
    ) -> dict[str, Any] | None:
        self.writes += 1
        fn = (
            self.custom.patch_namespaced_custom_object_status
            if status
            else self.custom.patch_namespaced_custom_object
        )
        try:
            obj = await self._call(
                fn, GROUP, VERSION, namespace, PLURAL, name, body, _content_type=content_type
            )
        except NotFound:
            return None
        return cast(dict[str, Any], obj)

    # --- Events --------------------------------------------------------------------------------
    async def post_event(self, obj: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on a TaskAction (Warning or Normal). Failures to post are swallowed."""
        meta = obj.get("metadata", {})
        now = dt.datetime.now(dt.UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                name=f"{meta.get('name', 'taskaction')}.{uuid.uuid4().hex[:12]}",
                namespace=meta.get("namespace"),
            ),
            involved_object=client.V1ObjectReference(
                api_version=API_VERSION,
                kind="TaskAction",
                name=meta.get("name"),
                namespace=meta.get("namespace"),
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=os.uname().nodename,
        )
        self.writes += 1
        with contextlib.suppress(KubeError):
            await self._call(self.core.create_namespaced_event, meta.get("namespace"), event)

    # --- The admission webhook's configuration (controller/admission.py) -----------------------
    async def put_mutating_webhook(self, body: dict[str, Any], *, attempts: int = 5) -> None:
        """Create the MutatingWebhookConfiguration ``body`` or replace the one of that name (its
        resourceVersion read first; a write in between answers 409 and is tried again)."""
        name = body["metadata"]["name"]
        for _ in range(attempts):
            self.writes += 1
            try:
                await self._call(self.admission.create_mutating_webhook_configuration, body)
                return
            except Conflict:
                pass
            current = await self.get_mutating_webhook(name)
            if current is None:
                continue
            replacement = {**body, "metadata": {**body["metadata"]}}
            replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.writes += 1
            try:
                await self._call(self.admission.replace_mutating_webhook_configuration, name, replacement)
                return
            except (Conflict, NotFound):
                continue
        raise KubeError(409, "Conflict", f"the MutatingWebhookConfiguration {name} kept changing")

    async def delete_mutating_webhook(self, name: str, *, if_ca_bundle: str) -> bool:
        """Delete the MutatingWebhookConfiguration ``name`` if its first webhook still carries
        ``if_ca_bundle`` (ours: another replica may have pointed it at itself since); uid and
        resourceVersion preconditions make it exactly the object read. False when left or gone."""
        current = await self.get_mutating_webhook(name)
        if current is None:
            return False
        hooks = current.get("webhooks") or []
        if not hooks or (hooks[0].get("clientConfig") or {}).get("caBundle", "") != if_ca_bundle:
            return False
        self.writes += 1
        meta = current["metadata"]
        options = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=meta["uid"], resource_version=meta["resourceVersion"])
        )
        try:
            await self._call(self.admission.delete_mutating_webhook_configuration, name, body=options)
        except (NotFound, Conflict):
            return False
        return True

    async def get_mutating_webhook(self, name: str) -> dict[str, Any] | None:
        """The MutatingWebhookConfiguration as the API server sends it (JSON, not the client's
        models: caBundle stays the base64 text it is), or None."""
        self.reads += 1
        try:
            resp = await self._call(
                self.admission.read_mutating_webhook_configuration, name, _preload_content=False
            )
        except NotFound:
            return None
        return cast(dict[str, Any], json.loads(resp.data))

    # --- Additions for the actions client (client/actions_client.py) -------------------------
    async def ensure_namespace(self, name: str) -> bool:
        """GET the namespace, CREATE it if missing (upstream ``EnsureNamespaceExists``).

        Returns True when this call created it; a concurrent creation (409) counts as existing.
        """
        self.reads += 1
        try:
            await self._call(self.core.read_namespace, name)
            return False
        except NotFound:
            pass
        self.writes += 1
        try:
            await self._call(
                self.core.create_namespace, client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
            )
        except Conflict:
            return False
        return True

    async def list_taskactions_versioned(
        self, namespace: str, label_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """TaskActions in one namespace and the list's resourceVersion (where a watch resumes)."""
        body = await self._list(namespace, label_selector)
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        return cast(list[dict[str, Any]], body.get("items", [])), version

    @staticmethod
    def new_watcher() -> Any:
        """A ``kubernetes.watch.Watch`` for :meth:`watch_taskactions_blocking`; ``stop()`` ends its stream."""
        return watch.Watch()  # type: ignore[no-untyped-call]

    def watch_taskactions_blocking(
        self,
        watcher: Any,
        namespace: str,
        resource_version: str,
        *,
        timeout_seconds: int = 300,
    ) -> Iterator[dict[str, Any]]:
        """BLOCKING: the raw watch events (``type``, ``raw_object``) of TaskActions from a resourceVersion.

        The only blocking method here: it is meant for a dedicated thread, never the event loop.
        ``watcher`` is a ``kubernetes.watch.Watch``; its ``stop()`` (from any thread) ends the stream
        at once. The stream ends when the server closes it after ``timeout_seconds``; an expired
        resourceVersion raises Gone.
        """
        self.reads += 1
        stream = watcher.stream(
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _request_timeout=(10, timeout_seconds + 30),
        )
        try:
            for event in stream:
                yield cast(dict[str, Any], event)
        except ApiException as exc:
            raise translate(exc) from exc
