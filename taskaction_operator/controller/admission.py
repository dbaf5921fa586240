"""The mutating admission webhook: TaskActions arrive with the record guard and their ownerReference.

Without it, the operator's first sight of a TaskAction created by anyone but our actions client
(``kubectl apply``, Flyte's executor creating children) costs a patch: the guard finalizer and the
ownerReference to the parent. With ``TASKACTION_WEBHOOK_LISTEN`` set, the API server asks the operator
first, at CREATE, and the object is stored with both; the first-sight patch stays as the fallback for
whatever the webhook did not change (webhook down, parent unknown to this process).

- **What it adds** (:func:`admission_changes`, pure): the guard, when the operator's guard is on, to
  an object in a namespace it watches that is not terminal, labelled recorded or already guarded; the
  ownerReference to the parent, when the object has none and the parent's uid is in the operator's
  index (what its watch has seen, never an API call: admission must answer fast), for the same run.
  Nothing else; nothing is ever refused.
- **Never blocking a creation**: ``failurePolicy: Ignore`` and a 5 s timeout, so an operator that is
  down, starting or slow only means the fallback patch.
- **The server** is kopf's (``settings.admission.server``), HTTPS with the certificate of
  ``TASKACTION_WEBHOOK_CERT_DIR`` or one self-signed at start (made with ``cryptography``).
- **The configuration** is one MutatingWebhookConfiguration per operator (its namespaces select it),
  written by the operator when its server starts (``kopf``'s own managed mode writes one cluster-wide
  configuration without a namespace selector, which operators of different namespaces would share)
  and deleted at exit if it still points at this replica; every 30 s each replica writes it again if
  it has gone, so that another replica takes over when the one it pointed at exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Any

import kopf

from taskaction_operator import metrics
from taskaction_operator.config import Settings
from taskaction_operator.controller.runtime import Runtime
from taskaction_operator.crd.names import (
    GROUP,
    PLURAL,
    RECORD_GUARD_FINALIZER,
    RECORDED_LABEL,
    VERSION,
    is_recorded,
    owner_reference,
)
from taskaction_operator.crd.observe import phase_from_conditions
from taskaction_operator.crd.shards import SHARD_LABEL, bucket_label
from taskaction_operator.k8s import KubeOps
from taskaction_operator.k8s.errors import KubeError
from taskaction_operator.model import ActionId, RunId, cr_name

HANDLER_ID = "admit-taskaction"
#: The webhook's name inside the configuration (a DNS name of three labels at least).
WEBHOOK_NAME = "record-guard.taskactions.flyte.org"
#: Seconds the API server waits for an answer before it creates the object unchanged.
TIMEOUT_S = 5
#: Seconds between checks that the configuration still exists (written again if not).
KEEP_INTERVAL_S = 30.0
log = logging.getLogger(__name__)


# --- what is added ------------------------------------------------------------------------------
ParentLookup = Callable[[str, str], tuple[str, RunId] | None]


def parent_wanted(body: Mapping[str, Any]) -> tuple[RunId, str] | None:
    """The run and the parent's CR name of a TaskAction that names a parent and has no
    ownerReference yet (the one the webhook would add); None for a root, an owned or incomplete one."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    parent_action = spec.get("parentActionName")
    identity = [spec.get(k) for k in ("project", "domain", "runName", "actionName")]
    if not parent_action or parent_action == identity[3] or meta.get("ownerReferences") or not all(identity):
        return None
    run = RunId(str(identity[0]), str(identity[1]), str(identity[2]))
    return run, cr_name(ActionId(run, str(parent_action)))


def admission_changes(
    body: Mapping[str, Any], namespace: str, *, guard: bool, parent: ParentLookup, shard_label: bool = False
) -> dict[str, Any]:
    """The metadata to set on a TaskAction being created (a merge into ``metadata``; empty: none).

    ``parent(namespace, name)`` answers the uid and run of a TaskAction the operator knows, or None.
    ``shard_label``: the operator records sharded, and the object gets its run's
    ``flyte.org/record-shard`` label (``crd/shards.py``) unless it has one.
    """
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    changes: dict[str, Any] = {}
    finalizers = list(meta.get("finalizers") or [])
    terminal = phase_from_conditions((body.get("status") or {}).get("conditions")).is_terminal()
    if guard and RECORD_GUARD_FINALIZER not in finalizers and not terminal and not is_recorded(body):
        changes["finalizers"] = [*finalizers, RECORD_GUARD_FINALIZER]
    wanted = parent_wanted(body)
    if wanted is not None:
        run, parent_name = wanted
        known = parent(namespace, parent_name)
        if known is not None and known[1] == run:
            changes["ownerReferences"] = [owner_reference(parent_name, known[0])]
    identity = [spec.get(k) for k in ("project", "domain", "runName")]
    if shard_label and all(identity) and SHARD_LABEL not in (meta.get("labels") or {}):
        changes["labels"] = {SHARD_LABEL: bucket_label(str(identity[0]), str(identity[1]), str(identity[2]))}
    return changes


def _added(changes: Mapping[str, Any]) -> str:
    parts = [p for p, key in (("guard", "finalizers"), ("owner", "ownerReferences")) if key in changes]
    return "+".join(parts) or "nothing"


async def admit_taskaction(
    body: kopf.Body, patch: kopf.Patch, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """kopf's ``on.mutate`` handler of TaskAction CREATE (registered by :func:`register`)."""
    runtime: Runtime | None = memo.get("runtime")
    config: Settings = memo["config"]
    ns = namespace or str((body.get("metadata") or {}).get("namespace") or "")
    if runtime is None or (config.namespaces and ns not in config.namespaces):
        metrics.ADMISSIONS.labels("nothing").inc()
        return
    sharded = config.shards > 1
    if sharded:
        await _read_parent(runtime, body, ns)
    changes = admission_changes(
        body, ns, guard=config.record_guard, parent=runtime.index.cached, shard_label=sharded
    )
    for key, value in changes.items():
        patch.metadata[key] = value
    metrics.ADMISSIONS.labels(_added(changes)).inc()


#: Seconds the webhook waits for a parent's GET (sharded: see :func:`_read_parent`).
PARENT_READ_TIMEOUT_S = 2.0


async def _read_parent(runtime: Runtime, body: Mapping[str, Any], namespace: str) -> None:
    """Sharded, the replica the API server asks may not watch the parent's shard, so a parent missing
    from its index is read once (into the index), bounded: the ownerReference is set at creation
    anyway, and the owner's first-sight patch stays unneeded. A failed read just leaves it out."""
    wanted = parent_wanted(body)
    if wanted is None:
        return
    parent_name = wanted[1]
    if runtime.index.cached(namespace, parent_name) is not None:
        return
    with contextlib.suppress(KubeError, TimeoutError):
        await asyncio.wait_for(runtime.index.read(namespace, parent_name), PARENT_READ_TIMEOUT_S)


def register(registry: kopf.OperatorRegistry | None = None) -> None:
    """Register the webhook's handler (only when it is on: kopf refuses to start with an admission
    handler and no server)."""
    kopf.on.mutate(
        GROUP,
        VERSION,
        PLURAL,
        id=HANDLER_ID,
        operations=["CREATE"],
        ignore_failures=True,
        side_effects=False,
        persistent=False,
        registry=registry,
    )(admit_taskaction)


# --- the server ---------------------------------------------------------------------------------
def self_signed_certificate(hostnames: Collection[str], password: str | None = None) -> tuple[bytes, bytes]:
    """A self-signed certificate (its own CA) for ``hostnames`` (DNS names and IP addresses as SANs),
    and its private key, both PEM: what kopf's WebhookServer makes with certbuilder, made with
    ``cryptography``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names: list[x509.GeneralName] = []
    dns: list[str] = []
    for host in dict.fromkeys(hostnames):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            names.append(x509.DNSName(host))
            dns.append(host)
            continue
        if not ip.is_unspecified:
            names.append(x509.IPAddress(ip))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0] if dns else "taskaction-operator")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


class WebhookServer(kopf.WebhookServer):
    """kopf's HTTPS server, its self-signed certificate made with ``cryptography`` (kopf's needs the
    certbuilder and oscrypto packages)."""

    build_certificate = staticmethod(self_signed_certificate)


class ConfiguringServer:
    """kopf's ``settings.admission.server``: the inner server's client configs, each written into this
    operator's MutatingWebhookConfiguration as it comes; written again every ``keep_interval`` seconds
    if it has gone (another replica that owned it exited); deleted at exit if it is still this one's."""

    def __init__(self, inner: Any, config: Settings, *, keep_interval: float = KEEP_INTERVAL_S) -> None:
        self.inner = inner
        self.config = config
        self.keep_interval = keep_interval

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        kube = await asyncio.to_thread(KubeOps.from_kubeconfig)
        name = configuration_name(self.config)
        ours: dict[str, Any] = {}
        keeper: asyncio.Task[None] | None = None
        try:
            async for client_config in self.inner(fn):
                body = webhook_configuration(name, client_config, self.config)
                if await _put(kube, body):
                    ours.clear()
                    ours.update(body)  # what the keeper writes again
                    log.info("admission webhook %s answers at %s", name, _where(body))
                if keeper is None:
                    keeper = asyncio.create_task(self._keep(kube, name, ours), name="webhook-config")
                yield client_config
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            if ours:
                ca_bundle = str(ours["webhooks"][0]["clientConfig"].get("caBundle") or "")
                with contextlib.suppress(KubeError, asyncio.CancelledError):
                    await kube.delete_mutating_webhook(name, if_ca_bundle=ca_bundle)
            kube.close()

    async def _keep(self, kube: KubeOps, name: str, ours: dict[str, Any]) -> None:
        while True:
            await asyncio.sleep(self.keep_interval)
            try:
                if ours and await kube.get_mutating_webhook(name) is None and await _put(kube, dict(ours)):
                    log.info("admission webhook %s written again (it had gone)", name)
            except KubeError as exc:
                log.warning("could not check the MutatingWebhookConfiguration %s: %s", name, exc)


async def _put(kube: KubeOps, body: dict[str, Any]) -> bool:
    try:
        await kube.put_mutating_webhook(body)
    except KubeError as exc:  # creations go on unchanged: the fallback patch path
        log.error("could not write the MutatingWebhookConfiguration %s: %s", body["metadata"]["name"], exc)
        return False
    return True


def build_server(config: Settings) -> ConfiguringServer:
    """The webhook server of ``config`` (``webhook_listen`` set), wrapped to keep its configuration."""
    address = config.webhook_address
    assert address is not None, "the webhook is off"
    host, port = address
    service = config.webhook_service_ref
    sans: list[str] = []
    if service is not None:
        svc_ns, svc_name, _ = service
        sans = [f"{svc_name}.{svc_ns}.svc", f"{svc_name}.{svc_ns}.svc.cluster.local"]
    cert_dir = config.webhook_cert_dir.rstrip("/")
    files: dict[str, Any] = {}
    if cert_dir:
        files = {"certfile": f"{cert_dir}/tls.crt", "pkeyfile": f"{cert_dir}/tls.key"}
        with contextlib.suppress(OSError), open(f"{cert_dir}/ca.crt", "rb") as ca:
            files["cadata"] = ca.read()
    inner = WebhookServer(addr=host, port=port, host=config.webhook_host or None, extra_sans=sans, **files)
    return ConfiguringServer(inner, config)


# --- the configuration --------------------------------------------------------------------------
def configuration_name(config: Settings) -> str:
    """``webhook_configuration``, else ``taskaction-operator`` for a cluster-wide operator,
    ``taskaction-operator.<namespace>`` for one namespace, a digest of several."""
    if config.webhook_configuration:
        return config.webhook_configuration
    if not config.namespaces:
        return "taskaction-operator"
    if len(config.namespaces) == 1:
        return f"taskaction-operator.{config.namespaces[0]}"
    digest = hashlib.sha256(",".join(sorted(config.namespaces)).encode()).hexdigest()[:12]
    return f"taskaction-operator.{digest}"


def webhook_configuration(name: str, client_config: Mapping[str, Any], config: Settings) -> dict[str, Any]:
    """The MutatingWebhookConfiguration: TaskAction CREATE in the operator's namespaces, not labelled
    recorded, to this server (its URL, or the Service), failurePolicy Ignore."""
    service = config.webhook_service_ref
    ca_bundle = client_config.get("caBundle")
    if service is not None:
        svc_ns, svc_name, svc_port = service
        target: dict[str, Any] = {
            "service": {"namespace": svc_ns, "name": svc_name, "port": svc_port, "path": f"/{HANDLER_ID}"}
        }
    else:
        target = {"url": f"{str(client_config['url']).rstrip('/')}/{HANDLER_ID}"}
    if ca_bundle:
        target["caBundle"] = ca_bundle
    webhook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "matchPolicy": "Equivalent",
        "reinvocationPolicy": "Never",
        "timeoutSeconds": TIMEOUT_S,
        "clientConfig": target,
        "rules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": [VERSION],
                "resources": [PLURAL],
                "operations": ["CREATE"],
                "scope": "Namespaced",
            }
        ],
        "objectSelector": {
            "matchExpressions": [{"key": RECORDED_LABEL, "operator": "NotIn", "values": ["true"]}]
        },
    }
    if config.namespaces:
        webhook["namespaceSelector"] = {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "In",
                    "values": sorted(config.namespaces),
                }
            ]
        }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "taskaction-operator"}},
        "webhooks": [webhook],
    }


def _where(body: Mapping[str, Any]) -> str:
    target = body["webhooks"][0]["clientConfig"]
    if "url" in target:
        return str(target["url"])
    svc = target["service"]
    return f"service {svc['namespace']}/{svc['name']}:{svc['port']}{svc['path']}"
