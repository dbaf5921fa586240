"""Top frames of a py-spy ``--format raw`` (collapsed stacks) profile."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py:123)"; site-packages paths shortened
    if " (" in frame and frame.endswith(")"):
        func, where = frame[:-1].split(" (", 1)
        for marker in ("site-packages/", "/work/main/"):
            if marker in where:
                where = where.split(marker, 1)[1]
        return f"{func} ({where})"
    return frame


def top_frames(path: Path, n: int = 25) -> dict[str, Any]:
    """Self and inclusive sample counts by frame (line numbers dropped for inclusive: by function)."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        stack, _, count_s = line.rpartition(" ")
        try:
            count = int(count_s)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_c[_short(frames[-1])] += count
        seen: set[str] = set()
        seen_files: set[str] = set()
        for f in frames:
            fn = _short(f).rsplit(":", 1)[0] + ")" if ":" in f else _short(f)
            if fn not in seen:
                seen.add(fn)
                incl[fn] += count
            where = _short(f).split(" (", 1)[-1].rsplit(":", 1)[0]
            top = "/".join(where.split("/")[:2])
            if top not in seen_files:
                seen_files.add(top)
        for top in seen_files:
            files[top] += count

    def pct(c: int) -> float:
        return round(100 * c / total, 1) if total else 0.0

    return {
        "samples": total,
        "self": [(f, c, pct(c)) for f, c in self_c.most_common(n)],
        "inclusive": [(f, c, pct(c)) for f, c in incl.most_common(n)],
        "packages": [(f, c, pct(c)) for f, c in files.most_common(n)],
    }
