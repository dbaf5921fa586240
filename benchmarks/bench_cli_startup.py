"""How long the command line takes to refuse bad usage: the wall time of the console script for a
usage error (the target is about 0.1 s; most of it is the interpreter starting), and what it imports.

    .venv/bin/python benchmarks/bench_cli_startup.py [--runs 20]

Prints the median and the worst wall time of each case, the interpreter's own start-up beside them,
and the slowest imports of one run (``-X importtime``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = Path(sys.executable).with_name("taskaction-operator")
CASES = {
    "interpreter alone (python -c pass)": [sys.executable, "-c", "pass"],
    "runs watch r1 --timeout 0": [str(CLI), "runs", "watch", "r1", "--timeout", "0"],
    "runs list --limit -1": [str(CLI), "runs", "list", "--limit", "-1"],
    "events r1 a0 --attempt 0": [str(CLI), "events", "r1", "a0", "--attempt", "0"],
    "runs get r1 --database-url mysql://x": [str(CLI), "runs", "get", "r1", "--database-url", "mysql://x"],
    "runs get Bad_Run": [str(CLI), "runs", "get", "Bad_Run"],
}


def wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    opts = parser.parse_args()
    env = {**os.environ, "TASKACTION_PROJECT": "p", "TASKACTION_DOMAIN": "d",
           "TASKACTION_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}  # fmt: skip
    print(f"{'case':<42} {'median':>8} {'max':>8}")
    for name, argv in CASES.items():
        times = [wall(argv, env) for _ in range(opts.runs)]
        print(f"{name:<42} {statistics.median(times) * 1000:>6.0f}ms {max(times) * 1000:>6.0f}ms")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "taskaction_operator", "runs", "list", "--limit", "-1"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, module = (part.strip() for part in line.removeprefix("import time:").split("|"))
            if cumulative.isdigit():
                rows.append((int(cumulative), module))
    print("\nslowest imports of a usage error (cumulative):")
    for cumulative, module in sorted(rows, reverse=True)[:8]:
        print(f"  {cumulative / 1000:>6.1f}ms  {module}")


if __name__ == "__main__":
    main()
