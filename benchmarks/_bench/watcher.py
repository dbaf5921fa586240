"""A bare watch client: the official kubernetes client's ``watch.Watch`` on the TaskActions of one
namespace, nothing else. It counts events and *transitions* (a new (object, phase) pair, the phase read
from ``status.conditions`` the way the executor writes them) with their arrival times (per object and
phase, so that the API server's own delivery lag can be set against the operator's), and writes them
as JSON when it has seen ``--expect`` transitions, or at ``--timeout``, or on SIGTERM.

Run as a separate process (``python watcher.py …``) so that it shares no interpreter with the load
generator or the operator.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

GROUP, VERSION, PLURAL = "flyte.org", "v1", "taskactions"
PHASES = {"Queued": 1, "Initializing": 3, "Executing": 4}


def phase_of(obj: dict[str, Any]) -> int:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Succeeded":
            return 5
        if cond.get("type") == "Failed":
            return 6
        if cond.get("type") == "Progressing" and cond.get("reason") in PHASES:
            return PHASES[cond["reason"]]
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--expect", type=int, required=True, help="transitions to see before stopping")
    ap.add_argument("--timeout", type=float, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--from-rv", default="", help="replay from this resourceVersion (else LIST first)")
    ap.add_argument("--ready", default="", help="file written once the watch is about to start")
    a = ap.parse_args()

    cfg = client.Configuration()
    config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    api = client.CustomObjectsApi(client.ApiClient(cfg))
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))

    rv = a.from_rv
    if not rv:
        listed: Any = api.list_namespaced_custom_object(GROUP, VERSION, a.namespace, PLURAL, limit=1)
        rv = listed["metadata"]["resourceVersion"]
    start_rv = rv
    if a.ready:
        Path(a.ready).write_text(rv)
    seen: set[tuple[str, int]] = set()
    arrivals: list[tuple[str, int, float]] = []  # (object name, phase, first arrival)
    events = 0
    first_event = last_event = 0.0
    error = ""
    t0 = time.time()
    deadline = t0 + a.timeout
    streams = 0
    while not stop["flag"] and len(seen) < a.expect and time.time() < deadline and streams < 1000:
        streams += 1
        w = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            for ev in w.stream(  # type: ignore[no-untyped-call]
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                a.namespace,
                PLURAL,
                resource_version=rv,
                timeout_seconds=max(1, min(60, int(deadline - time.time()) + 1)),
                _request_timeout=(10, 90),
            ):
                now = time.time()
                obj = ev["object"]
                if ev["type"] == "ERROR":
                    error = str(obj)[:300]
                    stop["flag"] = True
                    break
                rv = obj["metadata"]["resourceVersion"]
                events += 1
                first_event = first_event or now
                last_event = now
                key = (obj["metadata"]["name"], phase_of(obj))
                if key[1] and key not in seen:
                    seen.add(key)
                    arrivals.append((key[0], key[1], now))
                if stop["flag"] or len(seen) >= a.expect or now > deadline:
                    break
        except Exception as exc:  # e.g. 410 Gone on a replay from an evicted resourceVersion
            error = repr(exc)[:300]
            break
        finally:
            w.stop()  # type: ignore[no-untyped-call]
    Path(a.out).write_text(
        json.dumps(
            {
                "start_rv": start_rv,
                "events": events,
                "transitions": len(seen),
                "first_event": first_event,
                "last_event": last_event,
                "times": [t for _, _, t in arrivals],
                "arrivals": arrivals,
                "error": error,
                "streams": streams,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
