"""Plain-text tables for command output (no dependencies, usable by the runtime too)."""

from __future__ import annotations

from typing import Iterable, Sequence

__all__ = ["format_table"]


def format_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """Columns separated by two spaces; the first left-aligned, the rest right-aligned."""
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])
