"""Markdown cells and tables of the board pages: numbers, intervals, arrows, tables.

A leaf: it imports nothing of harness.board, so every section renderer (and harness.ablation,
harness.diagnostics, harness.compare) can use it without an import cycle.
"""

from __future__ import annotations

import math
from typing import List

from harness import scores


def fmt(x) -> str:
    """A number in a cell: 2 decimals from 1 up (and 0), 3 significant digits below; "n/a" for
    None, NaN and infinities."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.2f}" if abs(x) >= 1 or x == 0 else f"{x:.3g}"


def fmt_ci(mean, ci) -> str:
    """"mean ± ci"; the bare mean where there is no interval (one seed)."""
    if ci is None or (isinstance(ci, float) and not math.isfinite(ci)):
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt(ci)}"


def md_table(headers: List[str], rows: List[List[str]]) -> str:
    """A markdown table; a "|" inside a cell is escaped."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def arrow(metric: str, hib: bool | None = None) -> str:
    """" ↑" / " ↓" after a metric name (its direction: `hib`, else the metric's registered one);
    "" when the direction is unknown."""
    hib = scores.METRIC_HIGHER_IS_BETTER.get(metric) if hib is None else hib
    return "" if hib is None else (" ↑" if hib else " ↓")


def fmt_score(score) -> str:
    """A score cell: a float, or "mean ± half-width" of a (mean, 95 % half-width) pair."""
    return fmt_ci(*score) if isinstance(score, tuple) else fmt(score)


def fmt_params(n) -> str:
    """Parameter count as 0, 12.3k, 1.21M, 94.4M, 1.2G ("–" when unknown)."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    n = int(n)
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)
