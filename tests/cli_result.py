"""What a run of the command line as a subprocess gave: exit code, stdout, stderr."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Result"]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def yaml(self) -> Any:
        return yaml.safe_load(self.stdout)
