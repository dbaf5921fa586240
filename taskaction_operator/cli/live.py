"""A block of lines redrawn in place on a terminal (the live tree of ``runs watch``).

The cursor goes back up as many lines as were drawn, so each drawn line must be exactly one screen
line: lines are clipped to the terminal's width (a wrapped line would leave its first half behind),
and the block to its height less one (the cursor cannot climb above the top of the screen: a taller
block would scroll and be drawn again below itself), the rest counted on a last line.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from os import terminal_size
from typing import IO

from taskaction_operator.cli.tables import clip


def fit(text: str, columns: int, rows: int) -> list[str]:
    """``text``'s lines as they fit a ``columns`` by ``rows`` terminal (one line kept free for the
    cursor): each clipped to ``columns - 1``, the first ``rows - 2`` then ``… N more``."""
    lines = text.rstrip("\n").split("\n")
    room = max(2, rows - 1)
    if len(lines) > room:
        hidden = len(lines) - (room - 1)
        lines = [*lines[: room - 1], f"… {hidden} more lines"]
    width = max(2, columns - 1)  # writing the last column leaves some terminals' cursor pending a wrap
    return [clip(line, width) for line in lines]


class LiveView:
    """Draws ``text`` over what it drew last."""

    def __init__(self, stream: IO[str], size: Callable[[], terminal_size] = shutil.get_terminal_size) -> None:
        self.stream = stream
        self.size = size
        self.drawn = 0

    def draw(self, text: str) -> None:
        columns, rows = self.size()
        lines = fit(text, columns, rows)
        up = f"\x1b[{self.drawn}F" if self.drawn else "\r"
        self.stream.write(up + "\x1b[J" + "\n".join(lines) + "\n")
        self.stream.flush()
        self.drawn = len(lines)
