"""Faults at the worst moment: the operator killed inside a recorder transaction while 200 actions
move, and a sweep leader whose Lease renewals hang on a silent network while a second replica waits.

Each fault is made to happen for real (a real process, the real PostgreSQL, the real API server) and
the test proves it did (the transaction seen open, then rolled back; the proxy seen to hold A's
traffic) before checking the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml

from taskaction_operator.crd.names import RECORDED_LABEL
from taskaction_operator.devtools.executor import StandInExecutor
from taskaction_operator.k8s import KubeOps
from tests.e2e.operator import ON_KIND, Db, until
from tests.e2e.proxy import HangableProxy
from tests.e2e.test_operator_faults import EVENT_PHASE
from tests.e2e.test_operator_recording import create

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


# --- 1. SIGKILL inside a recorder transaction ---------------------------------------------------

MIDS = [f"m{i}" for i in range(10)]
LEAVES = [f"l{i:03d}" for i in range(189)]
PARENT = {"a0": None, **dict.fromkeys(MIDS, "a0"), **{leaf: MIDS[i % 10] for i, leaf in enumerate(LEAVES)}}


def ending(action: str) -> str:
    """Most leaves complete; some fail, some time out. Parents complete."""
    if action.startswith("l"):
        return {7: "PermanentFailure", 9: "TimedOut"}.get(int(action[1:]) % 10, "Completed")
    return "Completed"


class WideRun:
    """A 200-action, three-level run (a0, ten m*, 189 l*) moved level by level, every action of a
    level concurrently; the executor path of each action is recorded as it is written."""

    def __init__(self, kube: KubeOps, namespace: str, name: str) -> None:
        self.kube, self.ns, self.project, self.name = kube, namespace, namespace, name
        self.ex = StandInExecutor(kube)
        self.path: dict[str, list[str]] = {a: [] for a in PARENT}
        self.moves = 0
        self._slots = asyncio.Semaphore(32)

    async def create(self) -> None:
        for level in (["a0"], MIDS, LEAVES):
            await asyncio.gather(
                *(create(self.kube, self.ns, self.project, self.name, a, PARENT[a]) for a in level)
            )

    async def _move(self, action: str, phase: str) -> None:
        async with self._slots:
            await self.ex.move(self.ns, f"{self.name}-{action}", phase)
            self.path[action].append(phase)
            self.moves += 1

    async def step(self, actions: list[str], phase: str | None = None) -> None:
        await asyncio.gather(*(self._move(a, phase or ending(a)) for a in actions))

    async def drive(self) -> None:
        """Parents ahead of their children at every phase, children ending before their parents."""
        for phase in ("Queued", "Initializing", "Executing"):
            for level in (["a0"], MIDS, LEAVES):
                await self.step(level, phase)
        for level in (LEAVES, MIDS, ["a0"]):
            await self.step(level)

    def expected_phase(self, action: str) -> int:
        return EVENT_PHASE[self.path[action][-1]]

    def expected_events(self, action: str) -> list[tuple[int, int, int]]:
        return sorted({(1, EVENT_PHASE[p], 0) for p in self.path[action]})


@dataclass
class Kill:
    """Where the operator was killed: the PostgreSQL backend and transaction id of its open write
    transaction, its state, wait event and last statement as pg_stat_activity showed them while the
    process was frozen, the tables it had written (its row-exclusive locks); ``seen`` open
    transactions, ``misses`` of them committed before the freeze."""

    backend: int = 0
    xid: str = ""
    state: str = ""
    wait_event: str = ""
    query: str = ""
    written: tuple[str, ...] = ()
    seen: int = 0
    misses: int = 0


#: The operator's open write transactions (an xid is assigned at the first write).
OPEN_WRITES = """
SELECT pid, backend_xid::text AS xid, state, wait_event, query FROM pg_stat_activity
WHERE application_name = %s AND backend_xid IS NOT NULL
"""
#: The tables a backend's open transaction has written.
WRITTEN_TABLES = """
SELECT DISTINCT relation::regclass::text AS t FROM pg_locks
WHERE pid = %s AND relation IS NOT NULL AND mode = 'RowExclusiveLock' ORDER BY t
"""


def kill_inside_a_transaction(
    op: Any, dsn: str, app: str, deadline: float, moving: Callable[[], bool]
) -> Kill:
    """Wait for the operator's connection to hold an open write transaction, freeze the process
    (SIGSTOP) and, if that transaction is still open with its backend waiting to read from the frozen
    client (ClientRead: everything the client sent is consumed, COMMIT included if it was sent, and
    nothing more can come), SIGKILL it. Otherwise (its COMMIT was on its way) let the process go on
    (SIGCONT) and wait for the next one. ``backend`` stays 0 if none was caught before ``deadline``
    or while ``moving()``."""
    kill = Kill()
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline and moving():
            row = conn.execute(OPEN_WRITES, (app,)).fetchone()
            if row is None:
                time.sleep(0.005)
                continue
            kill.seen += 1
            op.signal(signal.SIGSTOP)
            held = None
            settle = time.monotonic() + 1
            while time.monotonic() < settle:
                time.sleep(0.05)
                now = conn.execute(OPEN_WRITES + " AND pid = %s", (app, row[0])).fetchone()
                if now is None or now[1] != row[1]:
                    break
                if now[3] == "ClientRead":
                    held = now
                    break
            if held is None:
                kill.misses += 1
                op.signal(signal.SIGCONT)
                continue
            written = tuple(r[0] for r in conn.execute(WRITTEN_TABLES, (row[0],)).fetchall())
            op.signal(signal.SIGKILL)
            op.wait(30)
            kill.backend, kill.xid, kill.state, kill.wait_event, kill.query = held
            kill.written = written
            break
    return kill


async def test_operator_killed_inside_a_recorder_transaction_while_200_actions_move_loses_nothing(
    kube: KubeOps, db: Db, namespace: str, database_url: str, start_operator: Any
) -> None:
    app = f"taskaction-{namespace}"
    dsn = f"{database_url}{'&' if '?' in database_url else '?'}application_name={app}"
    op = start_operator(TASKACTION_DATABASE_URL=dsn)
    run = WideRun(kube, namespace, "rinflight")
    await run.create()
    driving = asyncio.create_task(run.drive())
    kill = await asyncio.to_thread(
        kill_inside_a_transaction, op, database_url, app, time.monotonic() + 240, lambda: not driving.done()
    )
    moves_at_kill = run.moves
    assert kill.backend, f"never caught the operator inside a write transaction while the run moved: {kill}"
    # The transaction the process was killed in is rolled back, so it was still open at the kill.

    def ended() -> str | None:
        status = db.query("SELECT pg_xact_status(%s::xid8) AS s", kill.xid)[0]["s"]
        return None if status == "in progress" else str(status)

    status = await until(ended, what=f"transaction {kill.xid} to end")
    assert status == "aborted", f"the kill did not land inside transaction {kill.xid}: it {status}"
    # A recorder batch (it wrote actions / action_events), not another write. Its last statement may
    # be any of the batch's, its NOTIFY included, so the statement alone does not tell.
    assert {"actions", "action_events"} & set(kill.written), kill
    # Keep driving while it is down.
    await until(
        lambda: run.moves >= moves_at_kill + 100 or driving.done(), timeout=120, what="moves while down"
    )
    moves_while_down = run.moves - moves_at_kill
    assert moves_while_down > 0, "the run did not move while the operator was down"
    await asyncio.to_thread(start_operator, TASKACTION_DATABASE_URL=dsn)
    await driving
    await assert_wide_record_matches(run, db)
    print(
        f"killed in xid {kill.xid} ({kill.state}: {kill.query[:60]!r}) after {kill.misses} misses;"
        f" {moves_while_down} moves while down"
    )


async def assert_wide_record_matches(run: WideRun, db: Db) -> None:
    """Every action's row and events equal the path the executor wrote; every CR labelled."""
    expected = {a: run.expected_phase(a) for a in PARENT}
    await until(
        lambda: db.phases(run.project, run.name) == expected,
        timeout=120,
        what=f"the phases of {len(expected)} actions",
    )
    rows = db.query(
        "SELECT name, attempt, phase, version FROM action_events WHERE project = %s AND run_name = %s"
        " ORDER BY name, attempt, phase, version",
        run.project,
        run.name,
    )
    have: dict[str, list[tuple[int, int, int]]] = {}
    for r in rows:
        have.setdefault(r["name"], []).append((r["attempt"], r["phase"], r["version"]))
    want = {a: run.expected_events(a) for a in PARENT}
    wrong = {a: (have.get(a), want[a]) for a in PARENT if have.get(a) != want[a]}
    assert not wrong, f"events (have, want) differ for {len(wrong)} actions: {dict(list(wrong.items())[:5])}"
    assert set(have) == set(PARENT)

    async def all_labelled() -> bool:
        objs = await run.kube.list_taskactions(run.ns)
        labels = [o["metadata"].get("labels", {}).get(RECORDED_LABEL) for o in objs]
        return len(objs) == len(PARENT) and all(v == "true" for v in labels)

    await until(all_labelled, timeout=120, what="every terminal TaskAction labelled")


# --- 2. Two replicas, the leader's Lease renewals hung ------------------------------------------

LEASE = "taskaction-operator-sweep"
#: Short lease settings, in the proportion of the defaults (15 s lease, 10 s sweep interval).
#: Between A's step-down and B's takeover there is a third of the lease (3 s): far more than a
#: sampling round takes, so one round cannot straddle the hand-over.
LEASE_DURATION = 9.0
SWEEP_INTERVAL = 6.0
RENEW_DEADLINE = LEASE_DURATION * 2 / 3  # leadership lasts this long from the last renewal sent
RETRY_PERIOD = LEASE_DURATION / 3  # each replica tries to acquire or renew this often
CALL_TIMEOUT = max(1.0, LEASE_DURATION / 3)  # each Lease call is bounded by this
#: From the hang, B leads at the latest once it has seen the Lease unchanged for a whole duration
#: (A's last renewal was at most at the hang), at its next try, whose calls each take up to the
#: timeout; plus room for a loaded machine.
TAKEOVER_BOUND = LEASE_DURATION + RETRY_PERIOD + 2 * CALL_TIMEOUT + 10


UNREAD = "(unread)"


@dataclass(frozen=True)
class Sample:
    """One round: each replica's own view (its gauge; None when unreadable) and the Lease's holder
    (``UNREAD`` when unreadable),
    read concurrently; ``at`` and ``took`` are the round's start and duration (monotonic)."""

    at: float
    took: float
    a: float | None
    b: float | None
    holder: str | None


@dataclass
class Sampler:
    """Samples every ~100 ms, for the whole test, in a background task."""

    kube: KubeOps
    namespace: str
    ops: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    @staticmethod
    def gauge(op: Any) -> float | None:
        if op is None:
            return None
        try:
            text = op.metrics(timeout=2)
        except Exception:  # not started, stopped, or slow: this round does not know
            return None
        lines = [ln for ln in text.splitlines() if ln.startswith("taskaction_sweep_leader ")]
        # A process starting or stopping can answer without the gauge: this round does not know
        # (raising here ended the sampler, and every later wait read its last sample for ever).
        return float(lines[0].split()[1]) if len(lines) == 1 else None

    def holder(self) -> str | None:
        from kubernetes.client.exceptions import ApiException

        try:
            lease = self.kube.coordination.read_namespaced_lease(LEASE, self.namespace, _request_timeout=2)
        except ApiException as exc:
            return None if exc.status == 404 else UNREAD
        except Exception:  # a slow answer on a loaded machine: this round does not know
            return UNREAD
        return lease.spec.holder_identity if lease.spec else None

    async def run(self) -> None:
        while True:
            at = time.monotonic()
            a, b, holder = await asyncio.gather(
                asyncio.to_thread(self.gauge, self.ops.get("a")),
                asyncio.to_thread(self.gauge, self.ops.get("b")),
                asyncio.to_thread(self.holder),
            )
            self.samples.append(Sample(at, time.monotonic() - at, a, b, holder))
            await asyncio.sleep(0.1)

    def since(self, t: float) -> list[Sample]:
        return [s for s in self.samples if s.at >= t]

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def both_leading(self) -> list[Sample]:
        return [s for s in self.samples if s.a == 1 and s.b == 1]


def proxied_kubeconfig(kubeconfig: str, port: int, into: Path) -> str:
    """A copy of ``kubeconfig`` whose API server is ``https://127.0.0.1:port`` (the cluster's serving
    certificate names IP 127.0.0.1, so TLS verification passes through the proxy unchanged)."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    into.write_text(yaml.safe_dump(config))
    into.chmod(0o600)
    return str(into)


@pytest.fixture
def proxy(kubeconfig: str) -> Iterator[HangableProxy]:
    config = yaml.safe_load(Path(kubeconfig).read_text())
    server = urlsplit(config["clusters"][0]["cluster"]["server"])
    assert server.hostname and server.port
    p = HangableProxy(server.hostname, server.port).start()
    yield p
    p.close()


@pytest.mark.skipif(
    ON_KIND,
    reason="replica A reaches the API server through a proxy on this host; a Pod reaches it in the cluster",
)
async def test_a_leader_whose_lease_renewals_hang_steps_down_before_the_other_replica_takes_over(
    kube: KubeOps, namespace: str, kubeconfig: str, start_operator: Any, proxy: HangableProxy, tmp_path: Path
) -> None:
    settings = {
        "TASKACTION_LEASE_DURATION": str(LEASE_DURATION),
        "TASKACTION_SWEEP_INTERVAL": str(SWEEP_INTERVAL),
    }
    sampler = Sampler(kube, namespace)
    sampling = asyncio.create_task(sampler.run())
    try:
        via_proxy = proxied_kubeconfig(kubeconfig, proxy.port, tmp_path / "kubeconfig-a")
        sampler.ops["a"] = await asyncio.to_thread(
            start_operator, KUBECONFIG=via_proxy, TASKACTION_IDENTITY="replica-a", **settings
        )
        await until(
            lambda: (s := sampler.latest()) and s.a == 1 and s.holder == "replica-a",
            timeout=60,
            what="replica A leading",
        )
        sampler.ops["b"] = await asyncio.to_thread(
            start_operator, TASKACTION_IDENTITY="replica-b", **settings
        )
        b_started = time.monotonic()
        # B sees a held Lease and waits: a whole duration and a retry period of A renewing.
        await asyncio.sleep(LEASE_DURATION + RETRY_PERIOD)
        calm = sampler.since(b_started)
        assert calm and all(s.holder in ("replica-a", UNREAD) and s.b != 1 for s in calm), calm[-5:]
        assert any(s.b == 0 for s in calm), "B's gauge was never read"

        forwarded = proxy.stats.forwarded
        hung_at = time.monotonic()
        proxy.hang()
        took_over = await until(
            lambda: next((s for s in sampler.since(hung_at) if s.b == 1 and s.holder == "replica-b"), None),
            timeout=TAKEOVER_BOUND + 30,
            what="replica B leading",
        )
        assert took_over.at - hung_at <= TAKEOVER_BOUND, (
            f"B took over {took_over.at - hung_at:.1f} s after the hang (bound {TAKEOVER_BOUND:.0f} s)"
        )
        # A's last renewal was sent before the hang, so A's leadership ended at the latest
        # RENEW_DEADLINE after it: every round started later reads A after that.
        stepped_down = next((s for s in sampler.since(hung_at) if s.a == 0), None)
        assert stepped_down is not None and stepped_down.at <= took_over.at, "A never reported stepping down"
        late = [s for s in sampler.since(hung_at + RENEW_DEADLINE) if s.a == 1]
        assert not late, f"A reported leading {late[-1].at - hung_at:.1f} s after the hang: {late[:3]}"
        # Still hung a while longer: A's calls time out one after the other; nothing came through.
        await asyncio.sleep(LEASE_DURATION)
        assert proxy.stats.forwarded - forwarded < 64 * 1024, "the proxy kept forwarding while hung"

        resumed_at = time.monotonic()
        proxy.resume()
        forwarded = proxy.stats.forwarded
        await asyncio.sleep(2 * LEASE_DURATION)
        assert proxy.stats.forwarded > forwarded, "A did not talk to the API server again after the hang"
        assert not [s for s in sampler.since(hung_at + RENEW_DEADLINE) if s.a == 1]
        after = sampler.since(resumed_at)
        assert after and all(s.a != 1 and s.holder in ("replica-b", UNREAD) for s in after), [
            s for s in after if s.a == 1 or s.holder not in ("replica-b", UNREAD)
        ][:5]
        assert any(s.b == 1 for s in after)

        # A's elector works again: once B is gone (its Lease released on SIGTERM), A takes over.
        b = sampler.ops["b"]
        assert await asyncio.to_thread(b.stop) == 0
        await until(
            lambda: (s := sampler.latest()) and s.a == 1 and s.holder == "replica-a",
            timeout=TAKEOVER_BOUND + 30,
            what="replica A leading again once B stopped",
        )
        assert sampler.ops["a"].running()
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
        proxy.resume()
    overlap = sampler.both_leading()
    assert not overlap, f"both replicas reported leading in {len(overlap)} samples, first {overlap[:3]}"
    slow = max(s.took for s in sampler.samples)
    print(
        f"{len(sampler.samples)} samples (slowest round {slow:.2f} s); B led {took_over.at - hung_at:.1f} s"
        f" after the hang, A reported stepping down {stepped_down.at - hung_at:.1f} s after it"
    )
