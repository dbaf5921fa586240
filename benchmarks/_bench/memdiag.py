#!/usr/bin/env python
"""What grew between two tracemalloc snapshots of the memory phase (``--memory-diag tracemalloc``):

    .venv/bin/python benchmarks/_bench/memdiag.py .local/bench/STAMP/memdiag-idle-traced \\
        .local/bench/STAMP/memdiag-restart-traced [--objects 10000]

Prints the growth by package (kopf, aiohttp, ours, …), by source line (top 25), and per live object.
"""

from __future__ import annotations

import argparse
import json
import tracemalloc
from collections import Counter
from pathlib import Path


def package(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("site-packages", "taskaction_operator"):
        if anchor in parts:
            i = parts.index(anchor)
            rest = parts[i + 1 :] if anchor == "site-packages" else parts[i:]
            return rest[0].removesuffix(".py") if rest else anchor
    if "python3.11" in parts:
        i = parts.index("python3.11")
        return "stdlib:" + (parts[i + 1].removesuffix(".py") if len(parts) > i + 1 else "")
    return filename


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--objects", type=int, default=0)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    before = tracemalloc.Snapshot.load(str(Path(args.before) / "tracemalloc.snap"))
    after = tracemalloc.Snapshot.load(str(Path(args.after) / "tracemalloc.snap"))
    drop = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen*")]
    before, after = before.filter_traces(drop), after.filter_traces(drop)
    total_b = sum(s.size for s in before.statistics("filename"))
    total_a = sum(s.size for s in after.statistics("filename"))
    n = args.objects
    print(f"traced: {total_b / 2**20:.1f} MB -> {total_a / 2**20:.1f} MB", end="")
    if n:
        print(f"  ({(total_a - total_b) / n:.0f} B per live object over {n})")
    else:
        print()
    by_pkg: Counter[str] = Counter()
    for st in after.compare_to(before, "filename"):
        by_pkg[package(st.traceback[0].filename)] += st.size_diff
    print("\ngrowth by package (MB, B/object):")
    for pkg, diff in by_pkg.most_common(15):
        print(f"  {pkg:<40} {diff / 2**20:7.2f}  {diff / n if n else 0:7.0f}")
    print(f"\ntop {args.top} lines:")
    for st in after.compare_to(before, "lineno")[: args.top]:
        fr = st.traceback[0]
        per = f"{st.size_diff / n:6.0f} B/obj" if n else ""
        print(
            f"  {st.size_diff / 2**20:7.2f} MB {st.count_diff:+8d} blocks {per}  "
            f"{package(fr.filename)}:{Path(fr.filename).name}:{fr.lineno}"
        )
    for side in (args.before, args.after):
        traced = Path(side) / "traced.json"
        if traced.exists():
            print(f"{side}: {json.loads(traced.read_text())}")


if __name__ == "__main__":
    main()
