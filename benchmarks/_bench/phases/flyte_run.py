"""Flyte's own recording path in the operator's place (``--flyte-recorder CMD_TEMPLATE``): the same
generator and workload as :func:`_bench.phases.operator_run.run_phase`, on a fresh namespace, with
Flyte's Go service (the runs service and the actions service's TaskAction informer, no executor)
recording into a database of its own on the same PostgreSQL server.

Flyte's recorder writes no ``action_events`` rows from the informer: ``UpdateActionStatus`` updates the
``actions`` row in place (phase guard in SQL) and then sends ``pg_notify('action_updates',
'project/domain/run/action')`` from another connection. So the lag here is measured on that table: a
listener re-reads the row on every notification and keeps the first time each (action, phase) was
seen, with the row's ``updated_at`` (``now()`` of the updating statement). Phases the informer
coalesces (it re-reads the latest object) are never seen; ``recorded.transitions_visible`` says how
many of the 4N were. The per-transition figures divide by the status patches the generator sent (4N
when nothing failed), which is what the operator's figures divide by when all its rows are there."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg

from _bench import apiserver, dbwatch
from _bench.generator import LoadGenerator
from _bench.harness import (
    Ctx,
    cleanup_namespace,
    finish_watcher,
    free_port,
    log,
    r,
    start_watcher,
    wait_recorded,
    watcher_ready,
)
from _bench.operator_proc import ProcSample, proc_sample
from _bench.phases.figures import Observed, control_plane_figures, phase_figures
from _bench.phases.operator_run import until_labelled
from _bench.workload import TERMINAL, Node

PLACEHOLDERS = ("config", "kubeconfig", "dsn", "namespace", "port")


def flyte_dsn(dsn: str, explicit: str = "") -> str:
    """The DSN of Flyte's database: ``explicit``, or the same server as ``dsn`` with the database
    name suffixed ``_flyte``; created when missing."""
    if not explicit:
        parts = urlsplit(dsn)
        explicit = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_flyte"))
    parts = urlsplit(explicit)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return explicit


def recorder_config(dsn: str, kubeconfig: str, namespace: str, port: int) -> str:
    """Flyte's configuration for one phase: server on 127.0.0.1:``port``, its database with the
    connection pool its Helm chart renders under ``runs.database`` (10 idle, 100 open, 1 h; the
    section's own defaults keep no idle connection at all), the namespace its informer watches,
    in-memory storage, no seeded projects, its default log level (warnings)."""
    p = urlsplit(dsn)
    q = dict(kv.split("=", 1) for kv in p.query.split("&") if "=" in kv)
    options = " ".join(f"{k}={v}" for k, v in {"sslmode": "disable", **q}.items())
    return f"""runs:
  server:
    host: "127.0.0.1"
    port: {port}
  storagePrefix: "s3://bench"
  seedProjects: []
  database:
    maxIdleConnections: 10
    maxOpenConnections: 100
    connMaxLifeTime: 1h
    postgres:
      host: "{p.hostname or "127.0.0.1"}"
      port: {p.port or 5432}
      dbname: "{p.path.lstrip("/")}"
      username: "{unquote(p.username or "postgres")}"
      password: "{unquote(p.password or "")}"
      options: "{options}"
actions:
  kubernetes:
    namespace: "{namespace}"
    kubeconfig: "{kubeconfig}"
storage:
  type: mem
logger:
  level: 3
"""


class FlyteRecorder:
    """Flyte's recorder as a process of its own, started from ``template`` with ``{config}``,
    ``{kubeconfig}``, ``{dsn}``, ``{namespace}`` and ``{port}`` filled in; the command must be the
    service itself (no shell or wrapper), since its pid is the one sampled."""

    def __init__(self, template: str, *, dsn: str, kubeconfig: str, namespace: str, out_dir: Path) -> None:
        self.port = free_port()
        self.config = out_dir / f"flyte-{namespace}.yaml"
        self.config.write_text(recorder_config(dsn, kubeconfig, namespace, self.port))
        self.log_path = out_dir / f"flyte-{namespace}.log"
        values = {
            "config": str(self.config),
            "kubeconfig": kubeconfig,
            "dsn": dsn,
            "namespace": namespace,
            "port": str(self.port),
        }
        self.argv = [arg.format(**values) for arg in shlex.split(template)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120) -> None:
        """Start it and wait until ``/readyz`` answers 200 (its informer is registered by then; what it
        lists first arrives as ADDED events, so nothing created later is missed)."""
        log_file = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Flyte's recorder exited ({self.proc.returncode}); see {self.log_path}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"Flyte's recorder not ready within {timeout:.0f} s; see {self.log_path}")

    def sample(self) -> ProcSample | None:
        return proc_sample(self.pid) if self.proc is not None else None

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


class TerminalPoller(dbwatch.CountPoller):
    """Every ``interval`` s: how many ``actions`` rows of ``project`` are terminal (``events``) and how
    many there are (``actions``), and ``also()`` (the recorder's /proc)."""

    def _session(self, conn: psycopg.Connection[Any], deadline: float) -> None:
        while not self._halt.is_set() and time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE phase = ANY(%s)), count(*) FROM actions WHERE project = %s",
                (list(TERMINAL), self.project),
            ).fetchone()
            assert row is not None
            extra = self.also() if self.also else None
            self.samples.append(dbwatch.CountSample(time.time(), int(row[0]), int(row[1]), extra))
            self._halt.wait(self.interval)


class RowStateListener(dbwatch.NotifyListener):
    """LISTEN on ``action_updates`` (Flyte notifies after the update, from another connection); on each
    notification of ``project``, re-read the row and keep the first sight of each (action, phase)."""

    def __init__(self, dsn: str, project: str, *, max_s: float = 3600) -> None:
        super().__init__(dsn, project, max_s=max_s)
        self.project = project
        #: (run, action, phase) -> (attempts, updated_at epoch, first seen)
        self.seen: dict[tuple[str, str, int], tuple[int, float, float]] = {}
        #: rows re-read (one transaction each on Flyte's database, the benchmark's not Flyte's)
        self.reads = 0

    def _session(self, conn: psycopg.Connection[Any], deadline: float) -> None:
        conn.execute("LISTEN action_updates")
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as reader:
            self.ready.set()
            while not self._halt.is_set() and time.monotonic() < deadline:
                for n in conn.notifies(timeout=0.5):
                    now = time.time()
                    if n.payload.startswith(self.prefix):
                        _, domain, run, action = n.payload.split("/", 3)
                        self.arrivals.setdefault(f"{run}/{action}", []).append(now)
                        self.count += 1
                        self._read(reader, domain, run, action, now)
                    if self._halt.is_set():
                        break

    def _read(self, reader: psycopg.Connection[Any], domain: str, run: str, action: str, now: float) -> None:
        row = reader.execute(
            "SELECT phase, attempts, extract(epoch FROM updated_at)::float8 FROM actions"
            " WHERE project = %s AND domain = %s AND run_name = %s AND name = %s",
            (self.project, domain, run, action),
        ).fetchone()
        self.reads += 1
        if row is not None:
            self.seen.setdefault((run, action, int(row[0])), (int(row[1]), float(row[2]), now))

    def rows(self) -> list[tuple[str, str, int, int, float]]:
        """(run, action, attempt, phase, updated_at) of each (action, phase) seen: the shape of
        :func:`_bench.dbwatch.event_rows`."""
        return [(run, a, att, ph, upd) for (run, a, ph), (att, upd, _) in self.seen.items()]


async def cpu_quiet(rec: FlyteRecorder, timeout: float = 30) -> bool:
    """Until the recorder uses less than 20 ms of CPU per 0.5 s, three times running (bounded)."""
    deadline = time.monotonic() + timeout
    last = rec.sample()
    stable = 0
    while time.monotonic() < deadline and last is not None:
        await asyncio.sleep(0.5)
        now = rec.sample()
        if now is None:
            return False
        stable = stable + 1 if now.cpu_s - last.cpu_s < 0.02 else 0
        if stable >= 3:
            return True
        last = now
    return False


def pg_settled(
    dsn: str, before: dbwatch.PgStats, min_inserts: int, max_wait: float = 12.0
) -> dbwatch.PgStats:
    """PostgreSQL's counters of Flyte's database once they cover ``min_inserts`` ``actions`` inserts
    and stop moving (bounded)."""
    deadline = time.monotonic() + max_wait
    prev: dict[str, int] | None = None
    while True:
        now = dbwatch.pg_stats(dsn)
        # the table counters only: this loop's own connections and statements move the others
        d = {k: v for k, v in dbwatch.pg_delta(before, now).items() if "." in k}
        if (d["actions.ins"] >= min_inserts and d == prev) or time.monotonic() > deadline:
            return now
        prev = d
        time.sleep(1.0)


async def flyte_phase(
    ctx: Ctx, label: str, runs: list[list[Node]], *, rate: float | None, dsn: str, watch: bool = True
) -> dict[str, Any]:
    """One phase with Flyte's recorder in the operator's place; the figures of ``run_phase`` where
    they apply, per status patch sent."""
    ns = f"bench-{ctx.stamp}-{label}"
    n = sum(len(run) for run in runs)
    expect = 4 * n
    res: dict[str, Any] = {
        "phase": label,
        "recorder": "flyte",
        "namespace": ns,
        "project": ns,
        "actions": n,
        "runs": len(runs),
        "offered_rate": rate,
        "database": urlsplit(dsn).path.lstrip("/"),
    }
    log(f"phase {label}: Flyte's recorder, {n} actions in {len(runs)} runs, rate {rate or 'full speed'}")
    await ctx.kube.ensure_namespace(ns)
    rec = FlyteRecorder(
        ctx.args.flyte_recorder, dsn=dsn, kubeconfig=ctx.kubeconfig, namespace=ns, out_dir=ctx.out_dir
    )
    gen_timeout = ctx.args.gen_timeout or ((expect / rate * 3 + 60) if rate else max(120.0, expect / 40))
    rec_timeout = max(60.0, expect / 40)
    watcher: Any = None
    poller = TerminalPoller(dsn, ns, also=rec.sample)
    listener = RowStateListener(dsn, ns)
    try:
        t0 = time.monotonic()
        await asyncio.to_thread(rec.start)
        res["recorder_pid"], res["recorder_ready_s"] = rec.pid, r(time.monotonic() - t0, 2)
        res["recorder_argv"] = rec.argv
        if watch:
            watcher = start_watcher(ctx, ns, expect, gen_timeout + rec_timeout, "live")
            await watcher_ready(watcher)
        listener.start()
        listener.ready.wait(30)
        pg0 = await asyncio.to_thread(dbwatch.pg_stats, dsn)
        cp_pids = apiserver.control_plane_pids()
        cp0 = apiserver.control_plane_samples(cp_pids)
        api0 = await asyncio.to_thread(apiserver.request_counts, ctx.kubeconfig)
        s0 = rec.sample()
        poller.start()
        gen = LoadGenerator(ctx.api, ns, ns, runs, rate=rate, concurrency=ctx.args.concurrency)
        gstats = await gen.run(gen_timeout)
        log(
            f"  generator done: {gstats.patches} patches, {gstats.creates} creates, {gstats.errors} errors "
            f"in {gstats.finished - gstats.started:.1f} s"
        )
        t_rec = await wait_recorded(poller, n, rec_timeout)
        labelled = await until_labelled(ctx, ns, rec_timeout)
        quiet = await cpu_quiet(rec)
        if not labelled:
            ctx.notes.append(f"{ns}: TaskActions still unlabelled after {rec_timeout:.0f} s")
        latest = poller.latest()
        log(
            f"  terminal rows: {latest.events if latest else 0}/{n}{'' if t_rec else ' (TIMED OUT)'}; "
            f"(action, phase) seen: {len(listener.seen)}/{expect}; recorder quiet: {quiet}"
        )
        poller.stop()
        listener.stop()
        s1 = rec.sample()
        cp1 = apiserver.control_plane_samples(cp_pids)
        api1 = await asyncio.to_thread(apiserver.request_counts, ctx.kubeconfig)
        live = finish_watcher(watcher[0], watcher[1], 30) if watcher is not None else None
        rows = listener.rows()
        pg1 = await asyncio.to_thread(pg_settled, dsn, pg0, n)
    finally:
        for t in (poller, listener):
            with contextlib.suppress(Exception):
                if t.is_alive():
                    t.stop()
        if watcher is not None and watcher[0].poll() is None:
            watcher[0].kill()
        res["recorder_exit"] = await asyncio.to_thread(rec.stop)
        res["cleanup_s"] = r(await cleanup_namespace(ctx, ns), 1)
    o = Observed(
        gstats, poller, listener, {}, {}, s0, s1, api0, api1, pg0, pg1, rows, live, None, None, cp0, cp1
    )
    figs = phase_figures(o, runs, watch=watch, concurrency=ctx.args.concurrency)
    figs.pop("operator_metrics", None)
    per = max(1, gstats.patches)
    terminal = latest.events if latest else 0
    figs["disrupted"] = bool(
        gstats.errors
        or gstats.timed_out
        or terminal < n
        or (live is not None and live.get("error"))
        or poller.reconnects
        or listener.reconnects
    )
    figs["recorded"].update(
        {
            "complete": terminal >= n,
            "actions_terminal": terminal,
            "actions_rows": latest.actions if latest else 0,
            "transitions_visible": len(rows),
            "transitions_visible_share": r(len(rows) / expect, 3),
            "note": "rows = (action, phase) first seen in the actions table on a notification; "
            "per_s_steady = their rate",
        }
    )
    if s0 and s1:
        figs["operator"]["cpu_ms_per_transition"] = r(1000 * (s1.cpu_s - s0.cpu_s) / per, 3)
    figs["control_plane"] = control_plane_figures(o, per=per)
    db = figs["database"]
    pgd = db["pg_stat_delta"]
    db["bench_reads"] = listener.reads
    db["pg_xact_commit_per_transition"] = r((pgd["xact_commit"] - listener.reads) / per, 3)
    db["pg_xact_commit_note"] = "less the benchmark's own re-reads of the row on each notification"
    db["pg_tuples_written_per_transition"] = r(
        (pgd["actions.ins"] + pgd["actions.upd"] + pgd["action_events.ins"]) / per, 3
    )
    figs["per_transition_of"] = "status patches sent"
    res.update(figs)
    return res


# --------------------------------------------------------------------------------------------------
# The side-by-side report
# --------------------------------------------------------------------------------------------------
def _get(d: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _ratio(a: Any, b: Any) -> float | None:
    return r(a / b, 3) if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def side_by_side(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compared figures of one size: lag from the rate phase, costs from the full phase, peak RSS
    over both, each for the operator (``ours``) and Flyte's recorder (``flyte``)."""
    out: dict[str, dict[str, Any]] = {}
    for who, rate_key, full_key in (("ours", "rate", "full"), ("flyte", "rate_flyte", "full_flyte")):
        rate, full = entry.get(rate_key) or {}, entry.get(full_key) or {}
        if not rate and not full:
            continue
        cp = full.get("control_plane") or {}
        out[who] = {
            "lag_p50_s": _get(rate, "recorded", "lag_s", "commit", "p50"),
            "lag_p99_s": _get(rate, "recorded", "lag_s", "commit", "p99"),
            "lag_p99_by_phase_s": {
                ph: _get(rate, "recorded", "lag_s", "commit_by_phase", ph, "p99")
                for ph in ("1", "3", "4", "5", "6")
            },
            "rate_achieved_per_s": _get(rate, "generator", "per_s_steady"),
            "recorder_cpu_ms_per_transition": _get(full, "operator", "cpu_ms_per_transition"),
            "recorder_rss_peak_mb": max(
                (
                    x
                    for x in (_get(rate, "operator", "rss_peak_mb"), _get(full, "operator", "rss_peak_mb"))
                    if x
                ),
                default=None,
            ),
            "apiserver_cpu_ms_per_transition": _get(cp, "kube-apiserver", "cpu_ms_per_transition"),
            "etcd_cpu_ms_per_transition": _get(cp, "etcd", "cpu_ms_per_transition"),
            "postgres_cpu_ms_per_transition": _get(cp, "postgres", "cpu_ms_per_transition"),
            "taskaction_writes_per_action": _get(full, "apiserver", "writes_per_action"),
            "pg_xact_commit_per_transition": _get(full, "database", "pg_xact_commit_per_transition"),
            "pg_sessions_started": _get(full, "database", "pg_stat_delta", "sessions"),
            "recorded_vs_watch": _ratio(
                _get(full, "recorded", "per_s_steady"), _get(full, "bare_watch", "per_s_steady")
            ),
            "transitions_recorded": _get(full, "recorded", "transitions_visible")
            or _get(full, "recorded", "rows"),
            "disrupted": bool(rate.get("disrupted") or full.get("disrupted")),
        }
    return out


_LABELS = (
    ("lag p99 status patch → row, rate phase (s)", "lag_p99_s"),
    ("lag p50 status patch → row, rate phase (s)", "lag_p50_s"),
    ("  p99 QUEUED (1) (s)", "lag_p99_by_phase_s.1"),
    ("  p99 INITIALIZING (3) (s)", "lag_p99_by_phase_s.3"),
    ("  p99 RUNNING (4) (s)", "lag_p99_by_phase_s.4"),
    ("  p99 SUCCEEDED (5) (s)", "lag_p99_by_phase_s.5"),
    ("  p99 FAILED (6) (s)", "lag_p99_by_phase_s.6"),
    ("offered rate achieved, rate phase (/s)", "rate_achieved_per_s"),
    ("recorder CPU per transition, full speed (ms)", "recorder_cpu_ms_per_transition"),
    ("recorder peak RSS (MB)", "recorder_rss_peak_mb"),
    ("kube-apiserver CPU per transition (ms)", "apiserver_cpu_ms_per_transition"),
    ("etcd CPU per transition (ms)", "etcd_cpu_ms_per_transition"),
    ("PostgreSQL CPU per transition (ms)", "postgres_cpu_ms_per_transition"),
    ("TaskAction writes per action", "taskaction_writes_per_action"),
    ("PostgreSQL commits per transition", "pg_xact_commit_per_transition"),
    ("PostgreSQL sessions started, full speed", "pg_sessions_started"),
    ("recorded / bare watch, full speed", "recorded_vs_watch"),
    ("transitions recorded, full speed", "transitions_recorded"),
    ("disrupted", "disrupted"),
)


def print_side_by_side(report: dict[str, Any]) -> None:
    """Print the operator's and Flyte's figures side by side, per size that has both."""
    for size, entry in (report.get("sizes") or {}).items():
        cols = side_by_side(entry)
        if "flyte" not in cols:
            continue
        ours, flyte = cols.get("ours", {}), cols["flyte"]
        w = max(len(label) for label, _ in _LABELS)
        print(f"\n{size} actions: taskaction-operator vs Flyte's recorder")
        print(f"  {'':{w}}  {'ours':>10}  {'flyte':>10}")
        for label, key in _LABELS:
            print(f"  {label:{w}}  {_get(ours, *key.split('.'))!s:>10}  {_get(flyte, *key.split('.'))!s:>10}")
