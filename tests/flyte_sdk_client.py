"""Flyte's own SDK (``flyte`` from PyPI) as a client of our server. Run with the interpreter of
``.local/flyte-venv`` (hack/flyte-client.sh), never ours: it imports nothing of this project.

    python flyte_sdk_client.py ENDPOINT PROJECT DOMAIN follow RUN   one JSON line per update of the
                                                                    run (the SDK's watch), then exit
    python flyte_sdk_client.py ENDPOINT PROJECT DOMAIN abort RUN REASON
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import flyte
import flyte.remote as remote


async def main(endpoint: str, project: str, domain: str, command: str, run_name: str, *rest: str) -> int:
    await flyte.init.aio(endpoint=endpoint, insecure=True, project=project, domain=domain)
    run = await remote.Run.get.aio(name=run_name)
    if command == "follow":
        async for details in run.watch():
            print(json.dumps({"phase": details.phase.value, "done": details.done()}), flush=True)
        print(json.dumps({"end": run.phase.value}), flush=True)
        return 0
    if command == "abort":
        await run.abort.aio(reason=rest[0])
        print(json.dumps({"aborted": run_name}), flush=True)
        return 0
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    code = asyncio.run(main(*sys.argv[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip the interpreter's teardown: the SDK's native HTTP client now and then aborts there (SIGABRT
    # after every answer was printed), which would read as this script failing.
    os._exit(code)
