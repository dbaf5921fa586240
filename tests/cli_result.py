"""The command line as a subprocess, and what a run of it gave: exit code, stdout, stderr."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

__all__ = ["CLI", "CliProcess", "Result"]

CLI = ROOT / ".venv" / "bin" / "taskaction-operator"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def yaml(self) -> Any:
        return yaml.safe_load(self.stdout)


class CliProcess:
    """``.venv/bin/taskaction-operator`` as a subprocess with ``env``, run in ``tmp``."""

    env: dict[str, str]
    tmp: Path

    def run(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 120
    ) -> Result:
        proc = subprocess.run(
            [str(CLI), *args], input=input, capture_output=True, text=True, timeout=timeout,
            env={**self.env, **(env or {})}, cwd=self.tmp, check=False,
        )  # fmt: skip
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(CLI), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
            cwd=self.tmp,
        )  # fmt: skip
