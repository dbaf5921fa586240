"""The admission webhook's pure parts: what it adds to a TaskAction being created, the configuration
it keeps, and the self-signed certificate its server presents."""

from __future__ import annotations

import ssl
import tempfile
from typing import Any

from taskaction_operator.config import Settings
from taskaction_operator.controller.admission import (
    HANDLER_ID,
    admission_changes,
    configuration_name,
    parent_wanted,
    self_signed_certificate,
    webhook_configuration,
)
from taskaction_operator.crd.names import RECORD_GUARD_FINALIZER, RECORDED_LABEL, owner_reference
from taskaction_operator.model import RunId
from tests.factories import taskaction_body

RUN = RunId("p", "d", "r1")
QUEUED = [{"type": "Progressing", "status": "True", "reason": "Queued"}]
DONE = [{"type": "Succeeded", "status": "True", "reason": "Completed"}]


def known(**parents: tuple[str, RunId]) -> Any:
    return lambda namespace, name: parents.get(name.replace("-", "_"))


def test_a_child_created_by_plain_create_gets_the_guard_and_its_owner_reference() -> None:
    body = taskaction_body("a1", "a0")
    changes = admission_changes(body, "ns", guard=True, parent=known(r1_a0=("u-a0", RUN)))
    assert changes == {
        "finalizers": [RECORD_GUARD_FINALIZER],
        "ownerReferences": [owner_reference("r1-a0", "u-a0")],
    }


def test_others_finalizers_are_kept_and_a_guard_or_owner_already_there_is_left_alone() -> None:
    body = taskaction_body("a1", "a0", finalizers=["flyte.org/plugin-finalizer"])
    changes = admission_changes(body, "ns", guard=True, parent=known())
    assert changes == {"finalizers": ["flyte.org/plugin-finalizer", RECORD_GUARD_FINALIZER]}
    ours = taskaction_body(
        "a1", "a0", finalizers=[RECORD_GUARD_FINALIZER], ownerReferences=[owner_reference("r1-a0", "u")]
    )
    assert admission_changes(ours, "ns", guard=True, parent=known(r1_a0=("u-a0", RUN))) == {}


def test_no_guard_when_it_is_off_or_the_object_is_born_finished() -> None:
    assert admission_changes(taskaction_body("a0", None), "ns", guard=False, parent=known()) == {}
    assert (
        admission_changes(taskaction_body("a0", None, conditions=DONE), "ns", guard=True, parent=known())
        == {}
    )
    labelled = taskaction_body("a0", None, labels={RECORDED_LABEL: "true"})
    assert admission_changes(labelled, "ns", guard=True, parent=known()) == {}
    assert admission_changes(taskaction_body("a0", None, conditions=QUEUED), "ns", guard=True, parent=known())


def test_no_owner_reference_to_an_unknown_parent_one_of_another_run_or_the_action_itself() -> None:
    child = taskaction_body("a1", "a0")
    assert "ownerReferences" not in admission_changes(child, "ns", guard=True, parent=known())
    other_run = known(r1_a0=("u-a0", RunId("p", "d", "r2")))
    assert "ownerReferences" not in admission_changes(child, "ns", guard=True, parent=other_run)
    selfish = taskaction_body("a1", "a1")
    assert "ownerReferences" not in admission_changes(
        selfish, "ns", guard=True, parent=known(r1_a1=("u-a1", RUN))
    )


def settings(**kw: Any) -> Settings:
    return Settings(database_url="postgresql://x", **kw)


def test_the_configuration_selects_the_operators_namespaces_and_never_blocks_a_creation() -> None:
    config = settings(namespaces=("team-a", "flyte"), webhook_listen="127.0.0.1:9443")
    body = webhook_configuration(
        configuration_name(config), {"url": "https://127.0.0.1:9443", "caBundle": "Q0E="}, config
    )
    (hook,) = body["webhooks"]
    assert hook["failurePolicy"] == "Ignore" and hook["sideEffects"] == "None"
    assert hook["clientConfig"] == {"url": f"https://127.0.0.1:9443/{HANDLER_ID}", "caBundle": "Q0E="}
    assert hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["flyte", "team-a"]
    assert hook["timeoutSeconds"] <= 10
    assert body["metadata"]["name"].startswith("taskaction-operator.")
    assert configuration_name(settings()) == "taskaction-operator"
    assert configuration_name(settings(namespaces=("flyte",))) == "taskaction-operator.flyte"


def test_in_a_cluster_the_api_server_calls_the_service() -> None:
    config = settings(webhook_listen="0.0.0.0:9443", webhook_service="taskaction-system/taskaction-webhook")
    hook = webhook_configuration("x", {"url": "https://ignored:9443", "caBundle": "Q0E="}, config)[
        "webhooks"
    ][0]
    assert hook["clientConfig"] == {
        "service": {
            "namespace": "taskaction-system",
            "name": "taskaction-webhook",
            "port": 443,
            "path": f"/{HANDLER_ID}",
        },
        "caBundle": "Q0E=",
    }
    assert "namespaceSelector" not in hook  # a cluster-wide operator


def test_the_self_signed_certificate_serves_tls_for_its_names() -> None:
    cert, key = self_signed_certificate(["127.0.0.1", "taskaction-webhook.taskaction-system.svc", "0.0.0.0"])
    with tempfile.NamedTemporaryFile() as c, tempfile.NamedTemporaryFile() as k:
        c.write(cert)
        k.write(key)
        c.flush()
        k.flush()
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(c.name, k.name)
        client = ssl.create_default_context(cadata=cert.decode())
        assert client.verify_mode == ssl.CERT_REQUIRED
    from cryptography import x509

    sans = x509.load_pem_x509_certificate(cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert [str(ip) for ip in sans.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.value.get_values_for_type(x509.DNSName) == ["taskaction-webhook.taskaction-system.svc"]


class ConfigKube:
    """``KubeOps``' MutatingWebhookConfiguration calls, on one stored object (None: absent)."""

    def __init__(self) -> None:
        self.stored: dict[str, Any] | None = None
        self.puts = 0
        self.deleted: list[str] = []

    async def put_mutating_webhook(self, body: dict[str, Any]) -> None:
        self.puts += 1
        self.stored = body

    async def get_mutating_webhook(self, name: str) -> dict[str, Any] | None:
        return self.stored

    async def delete_mutating_webhook(self, name: str, *, if_ca_bundle: str) -> bool:
        self.deleted.append(if_ca_bundle)
        self.stored = None
        return True

    def close(self) -> None:
        pass


async def test_the_configuration_is_written_kept_while_serving_and_deleted_at_exit(monkeypatch: Any) -> None:
    import asyncio

    from taskaction_operator.controller import admission

    kube = ConfigKube()
    monkeypatch.setattr(admission.KubeOps, "from_kubeconfig", staticmethod(lambda: kube))

    async def inner(fn: Any) -> Any:
        yield {"url": "https://127.0.0.1:9443", "caBundle": "Q0E="}
        await asyncio.Event().wait()

    server = admission.ConfiguringServer(inner, settings(namespaces=("flyte",)), keep_interval=0.01)
    stream = server(lambda *a, **k: None)
    assert (await anext(stream))["caBundle"] == "Q0E="
    assert kube.puts == 1 and kube.stored is not None
    waiting = asyncio.ensure_future(anext(stream))
    kube.stored = None  # the replica it pointed at deleted it on exit
    for _ in range(200):
        await asyncio.sleep(0.01)
        if kube.stored is not None:
            break
    assert kube.puts == 2 and kube.stored["metadata"]["name"] == "taskaction-operator.flyte"
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await stream.aclose()
    assert kube.deleted == ["Q0E="]


def test_sharded_every_creation_gets_its_runs_shard_label_unless_it_has_one() -> None:
    from taskaction_operator.crd.shards import SHARD_LABEL, bucket_label

    body = taskaction_body("a1", "a0")
    changes = admission_changes(body, "ns", guard=True, parent=known(), shard_label=True)
    assert changes["labels"] == {SHARD_LABEL: bucket_label("p", "d", "r1")}
    assert "labels" not in admission_changes(body, "ns", guard=True, parent=known())
    body["metadata"]["labels"] = {SHARD_LABEL: "3"}
    assert "labels" not in admission_changes(body, "ns", guard=True, parent=known(), shard_label=True)


def test_the_parent_wanted_is_read_only_for_a_child_that_still_needs_its_owner_reference() -> None:
    # Sharded, the webhook GETs this parent when its index lacks it: never for a root, a child that
    # is owned already, or one whose identity is incomplete (no ownerReference could be set).
    assert parent_wanted(taskaction_body("a1", "a0")) == (RUN, "r1-a0")
    assert parent_wanted(taskaction_body("a0", None)) is None
    assert parent_wanted(taskaction_body("a0", "a0")) is None
    owned = taskaction_body("a1", "a0", ownerReferences=[owner_reference("r1-a0", "u")])
    assert parent_wanted(owned) is None
    nameless = taskaction_body("a1", "a0")
    del nameless["spec"]["actionName"]
    assert parent_wanted(nameless) is None
