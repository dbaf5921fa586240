"""A real network partition between a client and PostgreSQL: the client reaches the database over a
veth pair into a network namespace, and :meth:`NetPartition.cut` takes the namespace's end of the
pair down, so every packet on the path is dropped — nothing is closed, nothing is answered, no ACK
comes back (a userspace proxy that merely stops forwarding cannot do that: its kernel still ACKs).

    client ──► NS_IP:PORT (tcp_forward in the namespace) ──veth──► HOST_IP:PORT (tcp_forward) ──► PostgreSQL

Both forwarders are plain processes; the partition is the veth. Needs root and ``ip`` (iproute2).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from taskaction_operator.devtools.operator_process import free_port
from tests.conftest import ROOT

__all__ = ["NetPartition", "unavailable_reason"]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def unavailable_reason() -> str | None:
    """Why a partition cannot be made on this machine (None: it can)."""
    if os.geteuid() != 0:
        return "a network namespace and a veth pair need root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    probe = f"ta-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot create a network namespace: {exc}"
    _ip("netns", "del", probe)
    return None


class NetPartition:
    """A path to the PostgreSQL of ``dsn`` that :meth:`cut` partitions; :attr:`dsn` goes through it."""

    def __init__(self, dsn: str) -> None:
        tag = f"{random.randrange(16**4):04x}"
        self.netns = f"ta-part-{tag}"
        self._host_if, self._ns_if = f"tah{tag}", f"tan{tag}"
        subnet = random.randrange(256)
        self.host_ip, self.ns_ip = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
        self._target = urlsplit(dsn)
        self._procs: list[subprocess.Popen[str]] = []
        self.dsn = ""

    def __enter__(self) -> Self:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        _ip("netns", "add", self.netns)
        _ip("link", "add", self._host_if, "type", "veth", "peer", "name", self._ns_if)
        _ip("link", "set", self._ns_if, "netns", self.netns)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self._host_if)
        _ip("link", "set", self._host_if, "up")
        in_ns = ("netns", "exec", self.netns, "ip")
        _ip(*in_ns, "addr", "add", f"{self.ns_ip}/30", "dev", self._ns_if)
        _ip(*in_ns, "link", "set", self._ns_if, "up")
        _ip(*in_ns, "link", "set", "lo", "up")
        host_port, ns_port = free_port(), free_port()
        target_host = self._target.hostname or "127.0.0.1"
        target_port = str(self._target.port or 5432)
        self._forward([], self.host_ip, host_port, target_host, target_port)
        self._forward(["ip", "netns", "exec", self.netns], self.ns_ip, ns_port, self.host_ip, str(host_port))
        user, _, _ = self._target.netloc.rpartition("@")
        where = f"{self.ns_ip}:{ns_port}"
        self.dsn = urlunsplit(self._target._replace(netloc=f"{user}@{where}" if user else where))

    def _forward(self, prefix: list[str], host: str, port: int, target_host: str, target_port: str) -> None:
        argv = [*prefix, sys.executable, "-m", "tests.e2e.tcp_forward", host, str(port)]
        argv += [target_host, target_port]
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self._procs.append(proc)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"forwarder {host}:{port} did not start")

    def cut(self) -> None:
        """Drop every packet on the path from now on (both directions); nothing is closed."""
        _ip("netns", "exec", self.netns, "ip", "link", "set", self._ns_if, "down")

    def heal(self) -> None:
        _ip("netns", "exec", self.netns, "ip", "link", "set", self._ns_if, "up")

    def close(self) -> None:
        for proc in self._procs:
            proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self._host_if], capture_output=True, timeout=30)
