"""Play Flyte's executor for a whole run, so its phases move: ``python -m taskaction_operator.devtools.play``.

Every action starts (Queued → Initializing → Executing) parents first, and finishes (Completed)
children first, like a real run whose parents wait for their children. ``--retry ACTION`` makes that
action fail once with a retryable error and succeed on its second attempt; ``--fail ACTION`` makes it
fail permanently (its ancestors still complete, as a parent that tolerates a failed child would).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from taskaction_operator.crd.names import LABEL_RUN
from taskaction_operator.devtools.executor import StandInExecutor
from taskaction_operator.k8s import KubeOps


def _order(items: list[dict[str, Any]]) -> list[str]:
    """Action names parents first (breadth-first from the root)."""
    children: dict[str | None, list[str]] = {}
    for item in items:
        spec = item["spec"]
        children.setdefault(spec.get("parentActionName"), []).append(spec["actionName"])
    names = {i["spec"]["actionName"] for i in items}
    roots = [n for p, kids in children.items() if p is None or p not in names for n in kids]
    out: list[str] = []
    queue = sorted(roots)
    while queue:
        name = queue.pop(0)
        out.append(name)
        queue.extend(sorted(children.get(name, [])))
    return out


async def play(
    kube: KubeOps, namespace: str, run: str, *, step: float, fail: set[str], retry: set[str]
) -> int:
    items = await kube.list_taskactions(namespace, f"{LABEL_RUN}={run}")
    if not items:
        print(f"play: no TaskActions of run {run} in namespace {namespace}", file=sys.stderr)
        return 1
    by_action = {i["spec"]["actionName"]: i["metadata"]["name"] for i in items}
    order = _order(items)
    ex = StandInExecutor(kube)
    for name in order:
        for phase in ("Queued", "Initializing", "Executing"):
            await ex.move(namespace, by_action[name], phase)
            await asyncio.sleep(step)
        if name in retry:
            await ex.move(namespace, by_action[name], "RetryableFailure", message="worker lost; retrying")
            await asyncio.sleep(step)
            for phase in ("Queued", "Executing"):
                await ex.move(namespace, by_action[name], phase)
                await asyncio.sleep(step)
    for name in reversed(order):
        final = "PermanentFailure" if name in fail else "Completed"
        await ex.move(namespace, by_action[name], final, message="exit code 1" if name in fail else "")
        await asyncio.sleep(step)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m taskaction_operator.devtools.play", description=__doc__)
    ap.add_argument("-n", "--namespace", default="flyte")
    ap.add_argument("--run", required=True)
    ap.add_argument("--step", type=float, default=0.2, help="seconds between status writes")
    ap.add_argument("--fail", action="append", default=[], help="an action that fails permanently")
    ap.add_argument("--retry", action="append", default=[], help="an action that needs a second attempt")
    ap.add_argument("--kubeconfig")
    args = ap.parse_args(argv)
    kube = KubeOps.from_kubeconfig(args.kubeconfig)
    try:
        return asyncio.run(
            play(kube, args.namespace, args.run, step=args.step, fail=set(args.fail), retry=set(args.retry))
        )
    finally:
        kube.close()


if __name__ == "__main__":
    sys.exit(main())
