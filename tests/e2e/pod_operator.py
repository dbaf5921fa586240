"""The operator of one e2e test as a Pod of the locally built image under the real kubelet, for the
kind path (``TASKACTION_KIND=1``, hack/kind/e2e.sh): the interface the tests use of
:class:`tests.e2e.operator.OperatorProcess` (start, stop with a signal and an exit code, kill, other
signals, metrics, logs), so each test runs unchanged against the shipped artifact.

The Pod is the container of ``manifests/base``'s Deployment (its securityContext, read-only root
filesystem, probes, ports, resources and /tmp volume) with the image ``taskaction-operator:dev``
(``kind load``ed, never pulled; ``TASKACTION_KIND_IMAGE`` overrides it), ``restartPolicy: Never`` so
that the exit code of the one process is the container's, and the e2e settings in its environment
(only the test namespace watched, a 3 s Lease there, a 2 s sweep). Like the deployed replicas it runs
in ``taskaction-system`` as the deployed ServiceAccount (the ClusterRoleBinding of manifests/base),
not in the namespace it watches: deleting that namespace must not stop its operator. The sweep Lease
is in the test namespace, through the base's leader-election Role and RoleBinding created there
(deleted with it).

Signals come from the host: PID 1 of a container ignores SIGKILL and SIGSTOP sent from inside its
own PID namespace, not from an ancestor one. A kind node is a Docker container on this host, so the
Pod's process is a host process too; it is found by the container id in its /proc/PID/cgroup (the
test runner must share the Docker engine's PID namespace, as on Linux). Metrics are read through the
API server's pod proxy, logs with the pod log API (saved to ``log_path`` when the Pod is stopped, for
the failure diagnostics of tests/e2e/conftest.py). The harness itself (creating the Pod, reading its
state) uses the session's kubeconfig (``KUBECONFIG``).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import signal as signals
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from taskaction_operator.devtools.operator_process import OperatorNotReady

IMAGE = os.environ.get("TASKACTION_KIND_IMAGE", "taskaction-operator:dev")
#: Where the kind overlay runs the operator and PostgreSQL and keeps the in-cluster DSN
#: (manifests/overlays/kind); the Pods of the tests run there too.
SYSTEM_NAMESPACE = "taskaction-system"
DB_SECRET = "taskaction-db"
ACCOUNT = "taskaction-operator"
LIVENESS_PORT, METRICS_PORT = 8080, 9090
#: The admission component: its container patch (the webhook's listener, URL host and port) and its
#: ClusterRole and binding for the deployed ServiceAccount.
ADMISSION = Path(__file__).resolve().parents[2] / "manifests/components/admission"
#: The API server as a Pod reaches it: the ``kubernetes`` Service (KUBERNETES_SERVICE_PORT).
API_SERVICE_PORT = 443
#: The label of the tests' operator Pods (hack/kind/e2e.sh deletes any left behind).
COMPONENT = "e2e-operator"


@functools.cache
def _base(kubeconfig: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The base's Deployment and its documents (rendered once per session)."""
    from tests.e2e.conftest import Kubectl
    from tests.e2e.test_manifests import _one, render

    docs = render(Kubectl(kubeconfig), "manifests/base")
    return _one(docs, "Deployment", ACCOUNT), docs


@functools.cache
def _admission_patch() -> dict[str, Any]:
    """The admission component's patch of the operator's Deployment."""
    patch: dict[str, Any] = yaml.safe_load((ADMISSION / "deployment-patch.yaml").read_text())
    return patch


@functools.cache
def _api(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def in_cluster_dsn(dsn: str, session_dsn: str, cluster_dsn: str) -> str:
    """``dsn`` with the host and port of ``session_dsn`` (the host's port-forward to the in-cluster
    PostgreSQL) replaced by those of ``cluster_dsn`` (its Service); user, database and parameters
    stay. A DSN pointing anywhere else is not reachable from a Pod."""
    given, session, cluster = urlsplit(dsn), urlsplit(session_dsn), urlsplit(cluster_dsn)
    if (given.hostname, given.port) != (session.hostname, session.port):
        raise ValueError(
            f"{given.hostname}:{given.port} is not the port-forward to the in-cluster PostgreSQL"
            f" ({session.hostname}:{session.port}): a Pod cannot reach it"
        )
    auth = given.netloc.rpartition("@")[0]
    host = f"{cluster.hostname}:{cluster.port or 5432}"
    netloc = f"{auth}@{host}" if auth else host
    return urlunsplit(given._replace(netloc=netloc))


def _signed(code: int) -> int:
    """A container's exit code as Popen reports a process's: 128+N (killed by signal N) as -N."""
    return -(code - 128) if 128 < code < 128 + 65 else code


class PodOperator:
    """One operator Pod watching ``namespace`` (its sweep Lease there too), recording to ``dsn``
    (translated to the in-cluster Service); ``env`` over the e2e settings."""

    def __init__(
        self,
        *,
        kubeconfig: str,
        dsn: str,
        namespace: str,
        log_dir: Path,
        args: Sequence[str] = (),
        **env: str,
    ) -> None:
        if "KUBECONFIG" in env:
            raise ValueError("a Pod talks to the API server as its ServiceAccount, not through a kubeconfig")
        # ``kubeconfig`` is the identity a process would take; a Pod always runs as the deployed
        # ServiceAccount, so the harness works with the session's (admin) kubeconfig.
        self.kubeconfig = os.environ.get("KUBECONFIG", kubeconfig)
        self.watched = namespace
        self.namespace = SYSTEM_NAMESPACE
        self.name = f"taskaction-{namespace}-{uuid.uuid4().hex[:6]}"
        self.log_path = log_dir / f"operator-{self.name}.log"
        self.port, self.metrics_port, self.api_port = LIVENESS_PORT, METRICS_PORT, API_SERVICE_PORT
        self.core = client.CoreV1Api(_api(self.kubeconfig))
        self.env: dict[str, str] = {
            "TASKACTION_NAMESPACES": namespace,
            "TASKACTION_LEASE_NAMESPACE": namespace,
            "TASKACTION_LIVENESS": f"http://0.0.0.0:{LIVENESS_PORT}/healthz",
            "TASKACTION_METRICS_PORT": str(METRICS_PORT),
            "TASKACTION_LEASE_DURATION": "3",
            "TASKACTION_SWEEP_INTERVAL": "2",
            **env,
        }
        #: A webhook asked for (its listener on the host's loopback for a process) is served the way
        #: manifests/components/admission serves it: on the Pod's IP, which the API server reaches.
        self.webhook = self.env.pop("TASKACTION_WEBHOOK_LISTEN", None) is not None
        self.env["TASKACTION_DATABASE_URL"] = in_cluster_dsn(
            self.env.get("TASKACTION_DATABASE_URL", dsn), dsn, self._cluster_dsn()
        )
        #: Arguments after the image's entrypoint (``taskaction-operator run``).
        self.args = list(args)
        self._pid: int | None = None
        self._code: int | None = None
        self._started = False

    # --- the objects

    def _cluster_dsn(self) -> str:
        secret = self.core.read_namespaced_secret(DB_SECRET, SYSTEM_NAMESPACE)
        return base64.b64decode(secret.data["url"]).decode()

    def objects(self) -> list[dict[str, Any]]:
        """The base's leader-election Role and RoleBinding moved into the watched namespace (the
        binding's subject stays the deployed ServiceAccount), with a webhook the admission
        component's ClusterRole and binding, and the Pod."""
        from tests.e2e.test_manifests import _one

        deployment, docs = _base(self.kubeconfig)
        rbac = []
        for kind in ("Role", "RoleBinding"):
            doc = json.loads(json.dumps(_one(docs, kind, f"{ACCOUNT}-leader-election")))
            doc["metadata"]["namespace"] = self.watched
            rbac.append(doc)
        template = deployment["spec"]["template"]["spec"]
        (container,) = template["containers"]
        ports = list(container.get("ports") or [])
        env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in self.env.items()]
        if self.webhook:
            rbac.extend(d for d in yaml.safe_load_all((ADMISSION / "rbac.yaml").read_text()) if d)
            (webhook,) = _admission_patch()["spec"]["template"]["spec"]["containers"]
            env += webhook["env"]  # POD_IP first, then the settings naming $(POD_IP)
            ports += webhook["ports"]
        container = {
            **container,
            "image": IMAGE,
            "imagePullPolicy": "Never",
            "env": env,
            "ports": ports,
            **({"args": self.args} if self.args else {}),
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/name": ACCOUNT, "app.kubernetes.io/component": COMPONENT},
            },
            "spec": {
                **{k: v for k, v in template.items() if k not in {"containers", "topologySpreadConstraints"}},
                "serviceAccountName": ACCOUNT,
                "restartPolicy": "Never",
                "containers": [container],
            },
        }
        return [*rbac, pod]

    # --- the Pod's state

    def _pod(self) -> Any | None:
        try:
            return self.core.read_namespaced_pod(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _state(self) -> tuple[Any | None, Any | None]:
        """The Pod and its container's status (None until the kubelet reports it)."""
        pod = self._pod()
        statuses = (pod.status.container_statuses if pod and pod.status else None) or []
        return pod, (statuses[0] if statuses else None)

    def _terminated(self) -> int | None:
        if self._code is not None:
            return self._code
        _, status = self._state()
        term = status.state.terminated if status and status.state else None
        if term is not None:
            self._code = _signed(int(term.exit_code))
        return self._code

    def running(self) -> bool:
        return self._started and self._terminated() is None

    # --- start, signals, stop

    def start(self, timeout: float = 90, poll: float = 0.2) -> PodOperator:
        """Create the Pod; return once it is Ready (its readiness probe on ``/healthz``); on failure
        save its log, delete it and raise."""
        subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, "apply", "-f", "-"],
            input=yaml.safe_dump_all(self.objects()),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        self._started = True
        deadline = time.monotonic() + timeout
        while True:
            pod, status = self._state()
            if status is not None and status.state and status.state.terminated:
                self._code = _signed(int(status.state.terminated.exit_code))
                self._save_log()
                self._delete()
                raise OperatorNotReady(f"operator Pod {self.name} exited with {self._code}{self._see_log()}")
            if status is not None and status.ready:
                self._pid = self._host_pid(status.container_id)
                return self
            if time.monotonic() > deadline:
                waiting = status.state.waiting if status and status.state else None
                why = f" ({waiting.reason}: {waiting.message})" if waiting else ""
                phase = pod.status.phase if pod and pod.status else None
                self.stop(signals.SIGKILL)
                raise OperatorNotReady(
                    f"operator Pod {self.name} not Ready within {timeout} s, {phase}{why}{self._see_log()}"
                )
            time.sleep(poll)

    @staticmethod
    def _host_pid(container_id: str, timeout: float = 10) -> int:
        """The host pid of the container's PID 1 (its cgroup path names the container id)."""
        cid = container_id.split("://", 1)[-1]
        deadline = time.monotonic() + timeout
        while True:
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/cgroup", encoding="utf-8") as f:
                        if cid not in f.read():
                            continue
                    with open(f"/proc/{entry}/status", encoding="utf-8") as f:
                        nspid = next(line for line in f if line.startswith("NSpid:")).split()
                except (OSError, StopIteration):
                    continue
                if nspid[-1] == "1":
                    return int(entry)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no host process of container {cid}: the Docker engine's processes are not visible here"
                )
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        """The operator's pid on this host."""
        if self._pid is None:
            raise RuntimeError("the operator Pod is not started")
        return self._pid

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for the container to end; its exit code."""
        deadline = time.monotonic() + timeout
        while (code := self._terminated()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"operator Pod {self.name} still running after {timeout} s")
            time.sleep(0.2)
        return code

    def stop(self, sig: int = signals.SIGTERM, timeout: float = 30) -> int:
        """Send ``sig``, wait up to ``timeout`` s, then SIGKILL; the exit code (0 if never started).
        The Pod's log is saved to ``log_path`` and the Pod deleted."""
        if not self._started:
            return 0
        if self._terminated() is None and self._pid is not None:
            try:
                with contextlib.suppress(ProcessLookupError):  # it ended on its own just now
                    self.signal(sig)
                code = self.wait(timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.signal(signals.SIGKILL)
                code = self.wait(30)
        else:
            code = self._code if self._code is not None else 0
        self._save_log()
        self._delete()
        return code

    def kill(self) -> None:
        self.stop(signals.SIGKILL)

    def _delete(self) -> None:
        try:
            self.core.delete_namespaced_pod(self.name, self.namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # --- metrics and logs

    def metrics(self, timeout: float = 5) -> str:
        """The Prometheus text of the metrics endpoint, through the API server's pod proxy."""
        resp = self.core.connect_get_namespaced_pod_proxy_with_path(
            f"{self.name}:{METRICS_PORT}",
            self.namespace,
            "metrics",
            _preload_content=False,
            _request_timeout=timeout,
        )
        return str(resp.data.decode())

    def _save_log(self) -> None:
        try:  # raw: the client would parse a log of one JSON line as an object
            resp = self.core.read_namespaced_pod_log(self.name, self.namespace, _preload_content=False)
            text = resp.data.decode(errors="replace")
        except ApiException as exc:
            if exc.status not in (400, 404):  # gone, or never started
                raise
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text(text)

    def log_text(self) -> str:
        """Everything the operator wrote so far (read from the Pod while it exists)."""
        if self._started and self._pod() is not None:
            self._save_log()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_text()
        return "\n".join(text.splitlines()[-lines:]) if text else "(no log)"

    def _see_log(self) -> str:
        return f"; log {self.log_path}:\n{self.log_tail()}"
