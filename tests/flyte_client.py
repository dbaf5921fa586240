"""Flyte's own CLI and SDK (``flyte`` from PyPI, in ``.local/flyte-venv``: the ``flyte_venv`` fixture)
as subprocesses, for the suites that point them at our server. Nothing of either is mocked."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

__all__ = ["CLIENT_TIMEOUT", "FlyteClients", "flyte_clients"]

SDK_CLIENT = Path(__file__).with_name("flyte_sdk_client.py")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: The CLI and the SDK start in a few seconds; a busy machine makes it more.
CLIENT_TIMEOUT = 120.0


class FlyteClients:
    """``flyte --endpoint SERVER --insecure …`` and the SDK script, with a home of their own (no
    user config), no colour and no line wrapping in what they print."""

    def __init__(self, venv: Path, server: str, home: Path) -> None:
        self.venv, self.server = venv, server
        self.env = {**os.environ, "HOME": str(home), "NO_COLOR": "1", "COLUMNS": "100000", "TERM": "dumb"}
        self.started: list[asyncio.subprocess.Process] = []

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """The CLI's exit code, stdout (without terminal escapes) and stderr."""
        proc = await asyncio.create_subprocess_exec(
            str(self.venv / "bin" / "flyte"),
            "--endpoint",
            self.server,
            "--insecure",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), CLIENT_TIMEOUT)
        return int(proc.returncode or 0), _ANSI.sub("", out.decode()), _ANSI.sub("", err.decode())

    async def ok(self, *args: str) -> str:
        """The CLI's stdout; fails the test when it exits non-zero."""
        code, out, err = await self.cli(*args)
        assert code == 0, f"flyte {' '.join(args)} exited {code}: {err.strip()[-2000:]}"
        return out

    async def sdk(self, project: str, domain: str, *args: str) -> asyncio.subprocess.Process:
        """``flyte_sdk_client.py SERVER PROJECT DOMAIN ARGS…`` under the venv's interpreter."""
        proc = await asyncio.create_subprocess_exec(
            str(self.venv / "bin" / "python"),
            str(SDK_CLIENT),
            self.server,
            project,
            domain,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        self.started.append(proc)
        return proc

    @staticmethod
    async def line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
        """The SDK script's next JSON line; fails with its stderr if it ended instead."""
        assert proc.stdout is not None and proc.stderr is not None
        raw = await asyncio.wait_for(proc.stdout.readline(), CLIENT_TIMEOUT)
        if not raw:
            err = (await proc.stderr.read()).decode()
            raise AssertionError(f"the SDK client ended early: {err[-2000:]}")
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    async def close(self) -> None:
        for proc in self.started:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def flyte_clients(venv: Path, server: str, home: Path) -> AsyncIterator[FlyteClients]:
    """For a fixture: the clients, and any SDK process still running ended afterwards."""
    clients = FlyteClients(venv, server, home)
    try:
        yield clients
    finally:
        await clients.close()
