"""The figures of one operator phase (:func:`_bench.phases.operator_run.run_phase`), from what it
observed: the generator's acknowledgements, the recorded rows and their lag, the operator's CPU, RSS and
metrics, the database's and the API server's counters, and the bare watch client's view."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _bench import apiserver, dbwatch
from _bench.generator import GenStats
from _bench.harness import r
from _bench.operator_proc import Metrics, ProcSample, metric_delta
from _bench.profile import top_frames
from _bench.stats import first_at_or_after, percentile, rate_from_times, steady_rate, summary
from _bench.workload import Node
from taskaction_operator.crd.names import GROUP, PLURAL

Acks = dict[tuple[str, str, int], float]


@dataclass
class Observed:
    """What one operator phase saw, before and after the generator's work."""

    gstats: GenStats
    poller: dbwatch.CountPoller
    listener: dbwatch.NotifyListener
    m0: Metrics
    m1: Metrics
    s0: ProcSample | None
    s1: ProcSample | None
    api0: Any
    api1: Any
    pg0: dbwatch.PgStats
    pg1: dbwatch.PgStats
    rows: list[tuple[str, str, int, int, float]]
    live: dict[str, Any] | None
    replayed: dict[str, Any] | None
    prof_path: Path | None
    #: the control plane's processes (kube-apiserver, etcd) before and after
    cp0: dict[str, ProcSample | None] | None = None
    cp1: dict[str, ProcSample | None] | None = None


def watch_lag(acks: Acks, live: dict[str, Any], runs: list[list[Node]]) -> Any:
    """The bare watch client's lag: from each status patch's acknowledgement to the event's arrival
    at a client that does nothing else; the floor under the operator's recording lag."""
    by_cr = {n.cr: (n.run, n.name) for run in runs for n in run}
    lags = []
    for name, phase, t in live.get("arrivals") or ():
        ack = acks.get((*by_cr.get(name, ("", "")), int(phase)))
        if ack is not None:
            lags.append(t - ack)
    return {k: r(v) if isinstance(v, float) else v for k, v in summary(lags).items()}


def lag_figures(
    rows: list[tuple[str, str, int, int, float]],
    acks: Acks,
    arrivals: dict[str, list[float]],
) -> dict[str, Any]:
    """Per recorded (action, phase): from the status patch's acknowledgement to (a) the NOTIFY of the
    committing transaction (commit time) and (b) the row's ``updated_at`` (the transaction's start)."""
    commit_lags: list[float] = []
    start_lags: list[float] = []
    by_phase: dict[int, list[float]] = {}
    commit_times: list[float] = []
    no_ack = no_notify = 0
    for run, action, _attempt, phase, updated in rows:
        ack = acks.get((run, action, phase))
        commit = first_at_or_after(arrivals.get(f"{run}/{action}", []), updated, slack=0.001)
        if commit is not None:
            commit_times.append(commit)
        else:
            no_notify += 1
        if ack is None:
            no_ack += 1
            continue
        start_lags.append(updated - ack)
        if commit is not None:
            commit_lags.append(commit - ack)
            by_phase.setdefault(phase, []).append(commit - ack)
    return {
        "commit": {k: r(v) if isinstance(v, float) else v for k, v in summary(commit_lags).items()},
        "txn_start": {k: r(v) if isinstance(v, float) else v for k, v in summary(start_lags).items()},
        "commit_by_phase": {
            str(ph): {"n": len(v), "p50": r(percentile(v, 50)), "p99": r(percentile(v, 99))}
            for ph, v in sorted(by_phase.items())
        },
        "rows_without_ack": no_ack,
        "rows_without_notify": no_notify,
        "commit_times": commit_times,
    }


def phase_figures(o: Observed, runs: list[list[Node]], *, watch: bool, concurrency: int) -> dict[str, Any]:
    """Every figure of the phase, in the order the report has always had them."""
    n = sum(len(run) for run in runs)
    expect = 4 * n
    gstats, live = o.gstats, o.live
    res: dict[str, Any] = {
        "disrupted": bool(
            gstats.errors
            or gstats.timed_out
            or len(o.rows) < expect
            or metric_delta(o.m0, o.m1, "taskaction_db_errors_total")
            or (live is not None and live.get("error"))
            or o.poller.reconnects
            or o.listener.reconnects
        ),
        "db_reconnects": {"poller": o.poller.reconnects, "listener": o.listener.reconnects},
        "generator": generator_figures(gstats, concurrency),
        "recorded": recorded_figures(o, expect),
    }
    if o.s0 and o.s1:
        res["operator"] = operator_figures(o, o.s0, o.s1)
    res["operator_metrics"] = metrics_figures(o.m0, o.m1, n)
    res["database"] = database_figures(o)
    res["apiserver"] = apiserver_figures(o, n, watch=watch)
    res["control_plane"] = control_plane_figures(o)
    if live is not None:
        times = live.get("times") or []
        res["bare_watch"] = {
            "transitions": live.get("transitions"),
            "events": live.get("events"),
            "per_s_steady": r(rate_from_times(times), 1),
            "lag_s": watch_lag(gstats.acks, live, runs),
            "error": live.get("error"),
        }
    if o.replayed is not None:
        res["bare_watch_replay"] = replay_figures(o.replayed)
    if o.prof_path is not None:
        res["profile"] = {"file": str(o.prof_path), **top_frames(o.prof_path)}
    return res


def generator_figures(gstats: GenStats, concurrency: int) -> dict[str, Any]:
    ack_times = sorted(gstats.acks.values())
    return {
        "transitions": gstats.patches,
        "creates": gstats.creates,
        "errors": gstats.errors,
        "error_samples": gstats.error_samples,
        "timed_out": gstats.timed_out,
        "seconds": r(gstats.finished - gstats.started, 2),
        "per_s_overall": r(gstats.patches / (gstats.finished - gstats.started), 1)
        if gstats.finished > gstats.started
        else None,
        "per_s_steady": r(rate_from_times(ack_times), 1),
        "concurrency": concurrency,
    }


def recorded_figures(o: Observed, expect: int) -> dict[str, Any]:
    gstats, rows = o.gstats, o.rows
    lags = lag_figures(rows, gstats.acks, o.listener.arrivals)
    commit_times = sorted(lags.pop("commit_times"))
    points = [(s.t, float(s.events)) for s in o.poller.samples]
    last_commit = commit_times[-1] if commit_times else None
    return {
        "rows": len(rows),
        "expected": expect,
        "complete": len(rows) >= expect,
        "per_s_steady": r(rate_from_times(commit_times), 1),
        "per_s_poll_slope": r(steady_rate(points, expect), 1),
        "per_s_overall": r(len(rows) / (last_commit - gstats.started), 1)
        if last_commit and last_commit > gstats.started
        else None,
        "last_commit_after_generator_s": r(last_commit - gstats.finished, 2) if last_commit else None,
        "notifications": o.listener.count,
        "lag_s": lags,
    }


def operator_figures(o: Observed, s0: ProcSample, s1: ProcSample) -> dict[str, Any]:
    cpu = s1.cpu_s - s0.cpu_s
    peak_live = max((x.extra.rss_mb for x in o.poller.samples if x.extra), default=s1.rss_mb)
    return {
        "cpu_s": r(cpu, 2),
        "cpu_ms_per_transition": r(1000 * cpu / max(1, len(o.rows)), 3),
        "cpu_share_of_wall": r(cpu / max(1e-9, s1.t - s0.t), 2),
        "rss_peak_mb": r(s1.hwm_mb, 1),
        "rss_end_mb": r(s1.rss_mb, 1),
        "rss_max_sampled_mb": r(peak_live, 1),
        "live_taskactions_at_end": o.gstats.creates,
    }


def metrics_figures(m0: Metrics, m1: Metrics, n: int) -> dict[str, Any]:
    """Deltas of the operator's own metrics over the phase."""

    def d(name: str, **labels: str) -> float:
        return metric_delta(m0, m1, name, **labels)

    kinds = sorted({dict(lb).get("kind", "") for (nm, lb) in m1 if nm == "taskaction_api_writes_total"})
    writes = d("taskaction_api_writes_total")
    return {
        "events_received": {
            t: d("taskaction_events_received_total", type=t)
            for t in ("LISTED", "ADDED", "MODIFIED", "DELETED")
        },
        "events_recorded": d("taskaction_events_recorded_total"),
        "api_writes_by_kind": {k: d("taskaction_api_writes_total", kind=k) for k in kinds},
        "api_writes": writes,
        "api_writes_per_action": r(writes / n, 3),
        "api_writes_rejected": d("taskaction_api_writes_rejected_total"),
        "api_writes_rejected_per_action": r(d("taskaction_api_writes_rejected_total") / n, 3),
        "admissions_by_added": {
            a: d("taskaction_admissions_total", added=a) for a in ("guard", "owner", "guard+owner", "nothing")
        },
        "batches": d("taskaction_batch_rows_count"),
        "rows_per_batch": r(d("taskaction_batch_rows_sum") / max(1, d("taskaction_batch_rows_count")), 1),
        "db_errors": d("taskaction_db_errors_total"),
        "kubeops_reads": d("bench_kubeops_reads_total"),
        "kubeops_writes": d("bench_kubeops_writes_total"),
    }


def database_figures(o: Observed) -> dict[str, Any]:
    stmts = metric_delta(o.m0, o.m1, "bench_repo_statements_total")
    txns = metric_delta(o.m0, o.m1, "bench_repo_transactions_total")
    rows = len(o.rows)
    pgd = dbwatch.pg_delta(o.pg0, o.pg1)
    return {
        "statements": stmts,
        "transactions": txns,
        "statements_per_transition": r(stmts / max(1, rows), 3) if stmts else None,
        "transactions_per_transition": r(txns / max(1, rows), 4) if txns else None,
        "pg_stat_delta": pgd,
        "pg_xact_commit_per_transition": r(pgd["xact_commit"] / max(1, rows), 3),
        "pg_tuples_written_per_transition": r(
            (pgd["actions.ins"] + pgd["actions.upd"] + pgd["action_events.ins"]) / max(1, rows), 3
        ),
    }


def apiserver_figures(o: Observed, n: int, *, watch: bool) -> dict[str, Any]:
    """The API server's view: its request counters' deltas minus the generator's own calls, the
    TaskAction PATCHes split into accepted (2xx) and rejected (any other code: 409, 422)."""
    api = apiserver.delta(o.api0, o.api1)
    by_request: dict[tuple[str, str, str, str], int] = {}
    patches_ok = patches_rejected = 0
    for (v, g, res_, sub, code), c in api.items():
        key = (v, g, res_, sub)
        by_request[key] = by_request.get(key, 0) + c
        if v == "PATCH" and res_ == PLURAL and sub == "":
            if code.startswith("2"):
                patches_ok += c
            else:
                patches_rejected += c
    own = {
        ("POST", GROUP, PLURAL, ""): o.gstats.creates,
        ("PATCH", GROUP, PLURAL, "status"): o.gstats.patches,
    }
    if watch:
        own[("LIST", GROUP, PLURAL, "")] = 1
    op_req = {
        f"{v} {res_}{'/' + sub if sub else ''}": c - own.get((v, g, res_, sub), 0)
        for (v, g, res_, sub), c in by_request.items()
    }
    relevant = (PLURAL, "events", "leases", "mutatingwebhookconfigurations")
    op_req = {k: c for k, c in op_req.items() if c > 0 and k.split()[1].split("/")[0] in relevant}
    op_writes = sum(c for k, c in op_req.items() if k.split()[0] in {"POST", "PUT", "PATCH", "DELETE"})
    op_reads = sum(c for k, c in op_req.items() if k.split()[0] in {"GET", "LIST"})
    return {
        "requests_not_by_generator": op_req,
        "taskaction_patches_per_action": r(op_req.get(f"PATCH {PLURAL}", 0) / n, 3),
        "taskaction_patches_accepted_per_action": r(patches_ok / n, 3),
        "taskaction_patches_rejected_per_action": r(patches_rejected / n, 3),
        "taskaction_patches_rejected": patches_rejected,
        "writes_per_action": r(op_writes / n, 3),
        "reads_per_action": r(op_reads / n, 3),
        "note": "deltas of apiserver_request_total minus the generator's own calls; WATCH requests are "
        "counted when they end; other clients of the shared API server would show up here too",
    }


def control_plane_figures(o: Observed, per: int | None = None) -> dict[str, Any]:
    """CPU seconds of kube-apiserver, etcd and PostgreSQL over the phase, and per recorded transition
    (or per ``per``)."""
    out: dict[str, Any] = {}
    rows = max(1, len(o.rows) if per is None else per)
    for name in sorted(set(o.cp0 or {}) & set(o.cp1 or {})):
        a, b = (o.cp0 or {}).get(name), (o.cp1 or {}).get(name)
        if a is None or b is None:
            continue
        cpu = b.cpu_s - a.cpu_s
        out[name] = {"cpu_s": r(cpu, 2), "cpu_ms_per_transition": r(1000 * cpu / rows, 3)}
    return out


def replay_figures(replayed: dict[str, Any]) -> dict[str, Any]:
    times = replayed.get("times") or []
    span = (replayed.get("last_event", 0) - replayed.get("first_event", 0)) or None
    return {
        "transitions": replayed.get("transitions"),
        "events": replayed.get("events"),
        "per_s_steady": r(rate_from_times(times), 1),
        "events_per_s": r(replayed.get("events", 0) / span, 1) if span else None,
        "error": replayed.get("error"),
    }
