"""The report of the end-to-end benchmark: the headline figures of the largest size, the printed table
(figure, value, target, PASS/MISS) with a line per size and phase, and the JSON written to ``--out``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _bench.harness import ROOT, r

TARGETS = {
    "recorded_vs_watch": 0.9,
    "lag_p99_s": 1.0,
    "rss_peak_mb": 250.0,
    "api_writes_per_action_no_guard": 2.0,
    "api_writes_per_action": 3.0,
    "abort_1000_s": 30.0,
}


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout

    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    untracked = [
        line[3:]
        for line in git("status", "--porcelain").splitlines()
        if line.startswith("??") and line[3:].startswith("taskaction_operator/")
    ]
    return {
        "commit": git("rev-parse", "HEAD").strip(),
        "dirty": bool(dirty or untracked),
        "dirty_paths": dirty + untracked,
    }


def verdict(value: float | None, target: float, *, at_least: bool = False) -> str:
    if value is None:
        return "n/a"
    return "PASS" if (value >= target if at_least else value < target) else "MISS"


def headline(report: dict[str, Any]) -> dict[str, Any]:
    sizes: dict[str, Any] = report["sizes"]
    measured = sorted(int(k) for k, v in sizes.items() if v.get("full") or v.get("rate"))
    big = str(measured[-1]) if measured else None
    full = sizes[big].get("full") or {} if big else {}
    ratep = sizes[big].get("rate", {}) if big else {}
    rec = (full.get("recorded") or {}).get("per_s_steady")
    watch = (full.get("bare_watch") or {}).get("per_s_steady")
    replay = (full.get("bare_watch_replay") or {}).get("per_s_steady")
    bdb = (sizes[big].get("bare_db") or {}).get("per_s") if big else None
    lag = ((ratep.get("recorded") or {}).get("lag_s") or {}).get("commit", {})
    rss = (
        max(
            (p.get("operator", {}).get("rss_peak_mb") or 0)
            for p in (sizes[big].get("full", {}), sizes[big].get("rate", {}))
        )
        if big
        else None
    )
    noguard = report.get("noguard") or {}
    abort = report.get("abort") or {}
    restart = (sizes[big].get("restart") or {}).get("second") or {} if big else {}
    ceiling = sizes[big].get("ceiling") or {} if big else {}
    return {
        "size": int(big) if big else None,
        "recorded_per_s": rec,
        "bare_watch_per_s": watch,
        "bare_watch_replay_per_s": replay,
        "bare_db_per_s": bdb,
        "recorded_vs_watch": r(rec / watch, 3) if rec and watch else None,
        "recorded_vs_watch_replay": r(rec / replay, 3) if rec and replay else None,
        "recorded_vs_db": r(rec / bdb, 3) if rec and bdb else None,
        "generator_per_s": (full.get("generator") or {}).get("per_s_steady"),
        "lag_p50_s": lag.get("p50"),
        "lag_p99_s": lag.get("p99"),
        "lag_max_s": lag.get("max"),
        "watch_lag_p50_s": ((ratep.get("bare_watch") or {}).get("lag_s") or {}).get("p50"),
        "watch_lag_p99_s": ((ratep.get("bare_watch") or {}).get("lag_s") or {}).get("p99"),
        "ceiling_achieved_per_s": ceiling.get("generator_per_s_steady"),
        "ceiling_watch_lag_p50_s": (ceiling.get("bare_watch_lag_s") or {}).get("p50"),
        "ceiling_watch_lag_p99_s": (ceiling.get("bare_watch_lag_s") or {}).get("p99"),
        "restart_rss_peak_mb": restart.get("rss_peak_mb"),
        "restart_quiet_s": restart.get("quiet_s"),
        "restart_records_unchanged": restart.get("records_unchanged"),
        "rate_achieved_per_s": (ratep.get("generator") or {}).get("per_s_steady"),
        "rss_peak_mb": rss or None,
        "cpu_ms_per_transition": (full.get("operator") or {}).get("cpu_ms_per_transition"),
        "api_writes_per_action": (full.get("operator_metrics") or {}).get("api_writes_per_action"),
        "api_writes_per_action_no_guard": (noguard.get("operator_metrics") or {}).get(
            "api_writes_per_action"
        ),
        "apiserver_patches_per_action": (full.get("apiserver") or {}).get("taskaction_patches_per_action"),
        "apiserver_patches_per_action_no_guard": (noguard.get("apiserver") or {}).get(
            "taskaction_patches_per_action"
        ),
        "api_writes_rejected_per_action": (full.get("operator_metrics") or {}).get(
            "api_writes_rejected_per_action"
        ),
        "apiserver_patches_rejected_per_action": (full.get("apiserver") or {}).get(
            "taskaction_patches_rejected_per_action"
        ),
        "apiserver_cpu_ms_per_transition": (
            (full.get("control_plane") or {}).get("kube-apiserver") or {}
        ).get("cpu_ms_per_transition"),
        "etcd_cpu_ms_per_transition": ((full.get("control_plane") or {}).get("etcd") or {}).get(
            "cpu_ms_per_transition"
        ),
        "webhook": full.get("webhook"),
        "statements_per_transition": (full.get("database") or {}).get("statements_per_transition"),
        "abort_1000_s": abort.get("abort_s") if abort.get("actions") == 1000 else None,
        "abort_s": abort.get("abort_s"),
        "abort_size": abort.get("actions"),
        **machine_figures(sizes[big] if big else {}),
        **sharded_figures(report.get("sharded") or {}),
    }


def _machine_ms(side: dict[str, Any]) -> float | None:
    """Recorder + kube-apiserver + etcd + PostgreSQL CPU per transition (one side of side_by_side)."""
    parts = [
        side.get(k)
        for k in (
            "recorder_cpu_ms_per_transition",
            "apiserver_cpu_ms_per_transition",
            "etcd_cpu_ms_per_transition",
            "postgres_cpu_ms_per_transition",
        )
    ]
    return r(sum(parts), 3) if all(isinstance(x, (int, float)) for x in parts) else None  # type: ignore[arg-type]


def machine_figures(size: dict[str, Any]) -> dict[str, Any]:
    """The whole machine's CPU per transition at full speed (ours, and Flyte's recorder in the same
    run when it ran), and the lag at the offered rate beside Flyte's."""
    full = size.get("full") or {}
    cp = full.get("control_plane") or {}
    ours = {
        "recorder_cpu_ms_per_transition": (full.get("operator") or {}).get("cpu_ms_per_transition"),
        "apiserver_cpu_ms_per_transition": (cp.get("kube-apiserver") or {}).get("cpu_ms_per_transition"),
        "etcd_cpu_ms_per_transition": (cp.get("etcd") or {}).get("cpu_ms_per_transition"),
        "postgres_cpu_ms_per_transition": (cp.get("postgres") or {}).get("cpu_ms_per_transition"),
    }
    side = size.get("side_by_side") or {}
    flyte = side.get("flyte") or {}
    mine, theirs = _machine_ms(ours), _machine_ms(flyte)
    return {
        "postgres_cpu_ms_per_transition": ours["postgres_cpu_ms_per_transition"],
        "machine_cpu_ms_per_transition": mine,
        "flyte_machine_cpu_ms_per_transition": theirs,
        "machine_cpu_vs_flyte": r(mine / theirs, 3) if mine and theirs else None,
        "flyte_recorder_cpu_ms_per_transition": flyte.get("recorder_cpu_ms_per_transition"),
        "flyte_rss_peak_mb": flyte.get("recorder_rss_peak_mb"),
        "flyte_lag_p99_s": flyte.get("lag_p99_s"),
        "lag_p99_vs_flyte": (
            r(side["ours"]["lag_p99_s"] / flyte["lag_p99_s"], 3)
            if flyte.get("lag_p99_s") and (side.get("ours") or {}).get("lag_p99_s")
            else None
        ),
    }


def sharded_figures(sharded: dict[str, Any]) -> dict[str, Any]:
    """Per sharded phase: the largest replica's share of the CPU, and the takeover after a kill."""
    out: dict[str, Any] = {}
    for key, p in sharded.items():
        name = key.replace("-", "_")
        out[f"sharded_{name}_largest_cpu_share"] = p.get("largest_cpu_share")
        out[f"sharded_{name}_recorded_per_s"] = (p.get("recorded") or {}).get("recorded_per_s")
        if p.get("kill"):
            out[f"sharded_{name}_takeover_s"] = p.get("takeover_s")
            out[f"sharded_{name}_lost"] = (p.get("recorded") or {}).get("expected", 0) - (
                p.get("recorded") or {}
            ).get("events", 0)
            out[f"sharded_{name}_recorded_twice"] = (p.get("recorded") or {}).get("recorded_twice")
    return out


def _pair(a: Any, b: Any) -> str | None:
    return None if a is None and b is None else f"{a} / {b}"


def print_table(report: dict[str, Any]) -> None:
    h = report["headline"]
    size = h["size"]
    ten_k = size is not None and size >= 10000
    rows = _throughput_rows(h, report["args"]["rate"], ten_k) + _cost_rows(h, size, ten_k)
    w = max(len(x[0]) for x in rows)
    print(
        f"\ntaskaction-operator benchmark — commit {report['git']['commit'][:12]}"
        f"{' (dirty)' if report['git']['dirty'] else ''}, {report['started']}"
    )
    print(f"{'figure'.ljust(w)}  {'value':>10}  {'target':<24} result")
    for name, value, target, res in rows:
        v = (
            "—"
            if value is None
            else (f"{value:.3f}" if isinstance(value, float) and value < 10 else f"{value}")
        )
        print(f"{name.ljust(w)}  {v:>10}  {target:<24} {res}")
    _print_sizes(report)
    print(
        f"whole machine CPU per transition (recorder + kube-apiserver + etcd + PostgreSQL), full speed: "
        f"ours {h.get('machine_cpu_ms_per_transition')} ms, "
        f"Flyte's {h.get('flyte_machine_cpu_ms_per_transition')} ms "
        f"(ratio {h.get('machine_cpu_vs_flyte')}, goal <= 0.8); lag p99 at the offered rate: ours "
        f"{h.get('lag_p99_s')} s, Flyte's {h.get('flyte_lag_p99_s')} s"
    )
    _print_sharded(report)
    for note in report.get("notes", []):
        print(f"note: {note}")


Row = tuple[str, Any, str, str]


def _throughput_rows(h: dict[str, Any], rate: Any, ten_k: bool) -> list[Row]:
    """Rows of the table: rates, their ratios and the lag at the offered rate."""
    size = h["size"]
    return [
        ("size (actions) of the headline figures", size, "", ""),
        ("generator achieved, full speed (transitions/s)", h["generator_per_s"], "", ""),
        ("recorded, full speed (transitions/s)", h["recorded_per_s"], "", ""),
        ("bare watch, same run (transitions/s)", h["bare_watch_per_s"], "", ""),
        ("bare watch, replay alone (transitions/s)", h["bare_watch_replay_per_s"], "", ""),
        ("bare psycopg loop (transitions/s)", h["bare_db_per_s"], "", ""),
        (
            "recorded / bare watch",
            h["recorded_vs_watch"],
            ">= 0.9 at 10,000",
            verdict(h["recorded_vs_watch"], 0.9, at_least=True) if ten_k else "n/a (<10,000)",
        ),
        ("recorded / bare watch replay", h["recorded_vs_watch_replay"], "", ""),
        ("recorded / bare db", h["recorded_vs_db"], "", ""),
        (f"offered {rate}/s: achieved (transitions/s)", h["rate_achieved_per_s"], "", ""),
        ("lag p50 at offered rate (s)", h["lag_p50_s"], "", ""),
        ("lag p99 at offered rate (s)", h["lag_p99_s"], "< 1 s", verdict(h["lag_p99_s"], 1.0)),
        ("lag max at offered rate (s)", h["lag_max_s"], "", ""),
        (
            "  bare watch client's lag p50 / p99, same run (s)",
            _pair(h["watch_lag_p50_s"], h["watch_lag_p99_s"]),
            "",
            "",
        ),
        (
            f"  no operator at all, offered {rate}/s: achieved (transitions/s)",
            h["ceiling_achieved_per_s"],
            "",
            "",
        ),
        (
            "  no operator at all: bare watch client's lag p50 / p99 (s)",
            _pair(h["ceiling_watch_lag_p50_s"], h["ceiling_watch_lag_p99_s"]),
            "",
            "",
        ),
    ]


def _cost_rows(h: dict[str, Any], size: Any, ten_k: bool) -> list[Row]:
    """Rows of the table: memory, CPU, statements, API writes and the abort."""
    return [
        (
            "operator peak RSS (MB)",
            h["rss_peak_mb"],
            "< 250 MB at 10,000 live",
            verdict(h["rss_peak_mb"], 250.0) if ten_k else "n/a (<10,000)",
        ),
        (
            f"restart over {size} live unfinished: peak RSS (MB)",
            h["restart_rss_peak_mb"],
            "< 250 MB at 10,000 live",
            verdict(h["restart_rss_peak_mb"], 250.0) if ten_k else "n/a (<10,000)",
        ),
        (
            "  restart: all re-checked and quiet after (s); records unchanged",
            _pair(h["restart_quiet_s"], h["restart_records_unchanged"]),
            "",
            "",
        ),
        ("operator CPU per transition, full speed (ms)", h["cpu_ms_per_transition"], "", ""),
        ("DB statements per transition, full speed", h["statements_per_transition"], "", ""),
        (
            "operator API writes per action (guard on)",
            h["api_writes_per_action"],
            "<= 3",
            verdict(h["api_writes_per_action"], 3.0001),
        ),
        (
            "operator API writes per action (guard off)",
            h["api_writes_per_action_no_guard"],
            "<= 2",
            verdict(h["api_writes_per_action_no_guard"], 2.0001),
        ),
        ("  TaskAction PATCHes at the API server / action (on)", h["apiserver_patches_per_action"], "", ""),
        ("  of them rejected (409/422) / action (on)", h["apiserver_patches_rejected_per_action"], "0", ""),
        ("  operator's rejected patches / action (on)", h["api_writes_rejected_per_action"], "", ""),
        ("kube-apiserver CPU per transition, full speed (ms)", h["apiserver_cpu_ms_per_transition"], "", ""),
        ("etcd CPU per transition, full speed (ms)", h["etcd_cpu_ms_per_transition"], "", ""),
        ("  operator phases with the admission webhook", h["webhook"], "", ""),
        (
            "  TaskAction PATCHes at the API server / action (off)",
            h["apiserver_patches_per_action_no_guard"],
            "",
            "",
        ),
        (
            f"abort of a {h['abort_size']}-action run fully recorded (s)",
            h["abort_s"],
            "< 30 s",
            verdict(h["abort_s"], 30.0) if h["abort_size"] == 1000 else "n/a (not 1,000)",
        ),
    ]


def _print_sizes(report: dict[str, Any]) -> None:
    print("\nper size:")
    for size_s, phases in report["sizes"].items():
        for ph in ("rate", "full"):
            p = phases.get(ph)
            if not p:
                continue
            g, rec, op = p["generator"], p["recorded"], p.get("operator", {})
            print(
                f"  {size_s:>6} {ph:<5} gen {g['per_s_steady']}/s  recorded {rec['per_s_steady']}/s "
                f"({rec['rows']}/{rec['expected']})  lag p50/p99/max {rec['lag_s']['commit']['p50']}/"
                f"{rec['lag_s']['commit']['p99']}/{rec['lag_s']['commit']['max']} s  "
                f"cpu {op.get('cpu_s')} s  rss {op.get('rss_peak_mb')} MB  "
                f"writes/action {p['operator_metrics']['api_writes_per_action']}  "
                f"watch {(p.get('bare_watch') or {}).get('per_s_steady')}/s "
                f"watch lag p99 {((p.get('bare_watch') or {}).get('lag_s') or {}).get('p99')} s"
            )
        c = phases.get("ceiling")
        if c:
            print(
                f"  {size_s:>6} ceiling (no operator) gen {c['generator_per_s_steady']}/s  "
                f"watch {c['bare_watch_per_s_steady']}/s  watch lag p50/p99/max "
                f"{c['bare_watch_lag_s'].get('p50')}/{c['bare_watch_lag_s'].get('p99')}/"
                f"{c['bare_watch_lag_s'].get('max')} s"
            )
        rs = (phases.get("restart") or {}).get("second")
        if rs:
            print(
                f"  {size_s:>6} restart  listed {rs['listed']} quiet after {rs['quiet_s']} s  "
                f"rss {rs['rss_peak_mb']} MB  cpu {rs['cpu_s']} s  writes {rs['api_writes']}  "
                f"records unchanged {rs['records_unchanged']}"
            )
        if phases.get("bare_db"):
            print(
                f"  {size_s:>6} bare-db {phases['bare_db']['per_s']}/s (batch {phases['bare_db']['batch']})"
            )


def report_start(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """What the report says before the first phase: when, on which commit and host, with which flags."""
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": os.getloadavg(),
        },
        "args": {k: v for k, v in vars(args).items()},
        "artifacts": str(out_dir),
        "sizes": {},
    }


def report_finish(report: dict[str, Any], notes: list[str]) -> None:
    """The notes, the end, the headline figures (also at the top level) and the targets."""
    report["notes"] = notes
    report["host"]["loadavg_end"] = os.getloadavg()
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["headline"] = headline(report)
    report.update({k: v for k, v in report["headline"].items() if k != "size"})
    report["commit"] = report["git"]["commit"]
    report["dirty"] = report["git"]["dirty"]
    report["targets"] = TARGETS


def write_json(report: dict[str, Any], out: Path) -> None:
    """The report as JSON to ``out`` and to ``report.json`` among the run's artifacts."""
    text = json.dumps(report, indent=2, default=str)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    Path(report["artifacts"], "report.json").write_text(text)


def _print_sharded(report: dict[str, Any]) -> None:
    """One line per sharded phase: per-replica CPU, the largest share, rate, takeover, completeness."""
    for key, p in (report.get("sharded") or {}).items():
        per = ", ".join(str(x["cpu_ms_per_transition"]) for x in p["replicas_figures"])
        rec = p["recorded"]
        print(
            f"sharded {key}: CPU ms/transition per replica [{per}] "
            f"(total {p['cpu_ms_per_transition_total']}), "
            f"largest share {p['largest_cpu_share']} (1/R = {1 / p['replicas']:.2f}), "
            f"{rec['recorded_per_s']} recorded/s, {rec['events']}/{rec['expected']} recorded, "
            f"{rec['recorded_twice']} twice"
            + (f", takeover {p.get('takeover_s')} s" if p.get("kill") else "")
        )
