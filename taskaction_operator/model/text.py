"""Messages as one short line: what an error line on stderr or a log line per retry can hold.
Standard library only (a command line's usage error imports it)."""

from __future__ import annotations

import re

__all__ = ["MAX_ERROR", "one_line"]

#: What libraries append to an error that a one-line message has no room for.
_NOISE = re.compile(r"\s*\(Background on this error at: \S+\)|\((?:psycopg|sqlalchemy)[\w.]*Error\)\s*")
MAX_ERROR = 300


def one_line(message: object) -> str:
    """A message as one short line: whitespace folded, library links dropped, length capped."""
    text = " ".join(_NOISE.sub(" ", str(message)).split()) or "failed"
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1].rstrip() + "…"
