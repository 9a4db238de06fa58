"""Compare two run stores (a base and a new one) metric by metric: the regression gate of CI.

Both stores are read the way the leaderboard reads them (result.json files only; per
(corpus, profile, upstream, task) the lr of the board's one best-lr rule,
harness.board.select.select_lr, and the mean and 95% interval over its seeds).
For every test metric present in either store the comparison gives both values, the difference
and a verdict:

- both sides have an interval (>= 2 seeds): the change counts when the two 95% intervals do not
  overlap (the rule the board's multi-seed comparisons use);
- otherwise (a single seed on either side): the change counts when it exceeds `threshold`, in the
  metric's own units (percentage points for PER/WER/accuracy/EER/DER, dB for SI-SDRi).

A counted change in the better direction is an improvement (▲), in the worse direction a
regression (▼); anything else is within noise (=). A (corpus, profile, upstream, task) present on
only one side is listed as missing, never crashed on. The gate fails when a primary metric
regresses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pandas as pd

from harness import scores
from harness.board.loader import scan
from harness.board.markdown import fmt, md_table
from harness.board.select import select_board
from harness.errors import HarnessError

#: the threshold applied where a side has a single seed (metric units)
DEFAULT_THRESHOLD = 2.0
KEY = ["corpus", "profile", "upstream", "task"]
UP, DOWN, SAME = "▲", "▼", "="


@dataclass(frozen=True)
class Cell:
    """One (corpus, profile, upstream, task, metric) in both stores.

    Attributes:
        base, new: test means (NaN when that side lacks the metric).
        base_ci, new_ci: 95% half-widths (NaN with a single seed).
        base_seeds, new_seeds: probe seeds behind each mean.
        higher_is_better: the metric's direction (None when unknown: never a regression).
        primary: whether it is the task's primary metric (only those fail the gate).
        verdict: UP (improved), DOWN (regressed), SAME (within the rule) or "missing in base/new".
        rule: "intervals" or "threshold 2" (how the verdict was reached).
    """

    corpus: str
    profile: str
    upstream: str
    task: str
    metric: str
    base: float
    base_ci: float
    base_seeds: int
    new: float
    new_ci: float
    new_seeds: int
    higher_is_better: Optional[bool]
    primary: bool
    verdict: str
    rule: str

    @property
    def diff(self) -> float:
        return self.new - self.base

    @property
    def regressed(self) -> bool:
        return self.verdict == DOWN


def _best(runs_root) -> pd.DataFrame:
    s = scan(runs_root)
    if s.runs.empty:
        where = "" if Path(runs_root).is_dir() else " (the folder does not exist)"
        raise HarnessError(f"no finished runs were found under {runs_root}{where}")
    return select_board(s.runs)[0]


def _identity(row) -> str:
    """What a row's number means: task version and corpus version."""
    return f"task v{row.get('task_version', 1)}, corpus {row.get('corpus_version', 'unversioned')}"


def verdict(base: float, base_ci: float, new: float, new_ci: float, higher_is_better: Optional[bool],
            threshold: float) -> tuple:
    """(verdict, rule) for one metric; see the module docstring."""
    if math.isnan(base):
        return "missing in base", ""
    if math.isnan(new):
        return "missing in new", ""
    if not (math.isnan(base_ci) or math.isnan(new_ci)):
        rule = "intervals"
        counted = (new - new_ci > base + base_ci) or (new + new_ci < base - base_ci)
    else:
        rule = f"threshold {threshold:g}"
        counted = abs(new - base) > threshold
    if not counted or higher_is_better is None:
        return SAME, rule
    return (UP if (new > base) == higher_is_better else DOWN), rule


def compare(base_runs, new_runs, threshold: Optional[float] = None) -> List[Cell]:
    """Every test metric of both stores, keyed by (corpus, profile, upstream, task, metric).

    Raises:
        HarnessError: a store without finished runs, or a negative/non-finite threshold
            (None means DEFAULT_THRESHOLD).
    """
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if not (math.isfinite(threshold) and threshold >= 0):
        raise HarnessError(f"--threshold must be a finite number >= 0, got {threshold}")
    sides = {"base": _best(base_runs), "new": _best(new_runs)}
    rows = {}
    for side, b in sides.items():
        for _, r in b.iterrows():
            rows.setdefault(tuple(r[k] for k in KEY), {})[side] = r
    cells = []
    for key in sorted(rows, key=lambda k: tuple(map(str, k))):
        both = rows[key]
        ref = both.get("new", both.get("base"))
        primary, hib = ref["primary_metric"], bool(ref["higher_is_better"])
        if len(both) == 2 and _identity(both["base"]) != _identity(both["new"]):
            # another task or corpus version measures something else: never a regression
            b, n = both["base"], both["new"]
            cells.append(Cell(*map(str, key), primary, math.nan, math.nan, int(b["n_seeds"]), math.nan, math.nan,
                              int(n["n_seeds"]), hib, True,
                              f"not comparable: base {_identity(b)}, new {_identity(n)}", ""))
            continue
        metrics = sorted({c.split(".")[1] for r in both.values() for c in r.index
                          if c.startswith("test.") and c.endswith(".mean") and pd.notna(r[c])})
        for m in metrics:
            val = {s: (float(both[s].get(f"test.{m}.mean", math.nan)) if s in both else math.nan) for s in sides}
            ci = {s: (float(both[s].get(f"test.{m}.ci", math.nan)) if s in both else math.nan) for s in sides}
            n = {s: (int(both[s]["n_seeds"]) if s in both else 0) for s in sides}
            direction = hib if m == primary else scores.METRIC_HIGHER_IS_BETTER.get(m)
            v, rule = verdict(val["base"], ci["base"], val["new"], ci["new"], direction, threshold)
            cells.append(Cell(*map(str, key), m, val["base"], ci["base"], n["base"], val["new"], ci["new"],
                              n["new"], direction, m == primary, v, rule))
    return cells


def regressions(cells: List[Cell]) -> List[Cell]:
    """The primary metrics that regressed (what fails the gate)."""
    return [c for c in cells if c.primary and c.regressed]


def _num(mean: float, ci: float, n: int) -> str:
    if math.isnan(mean):
        return "–"
    return fmt(mean) + ("" if math.isnan(ci) else f" ± {fmt(ci)}") + f" ({n})"


def to_markdown(cells: List[Cell], base_label: str = "base", new_label: str = "new") -> str:
    """A markdown table, one row per metric, ▲/▼ in the verdict column; regressed primaries first."""
    if not cells:
        return "_Nothing to compare: neither store has a test metric._"
    order = sorted(cells, key=lambda c: (not (c.primary and c.regressed), c.corpus, c.profile, c.task,
                                         c.upstream, not c.primary, c.metric))
    head = ["corpus", "profile", "task", "upstream", "metric", f"{base_label} (seeds)", f"{new_label} (seeds)",
            "Δ", "", "rule"]
    rows = []
    for c in order:
        arrow = "" if c.higher_is_better is None else (" ↑" if c.higher_is_better else " ↓")
        delta = "–" if math.isnan(c.diff) else f"{c.diff:+.2f}"
        mark = f"**{c.verdict}**" if c.verdict in (UP, DOWN) else c.verdict
        rows.append([c.corpus, c.profile, c.task, c.upstream, f"{c.metric}{arrow}" + (" (primary)" if c.primary else ""),
                     _num(c.base, c.base_ci, c.base_seeds), _num(c.new, c.new_ci, c.new_seeds), delta, mark, c.rule])
    reg = regressions(cells)
    up = sum(c.primary and c.verdict == UP for c in cells)
    missing = sum(c.verdict.startswith("missing") for c in cells)
    lines = [f"{len(reg)} primary metric(s) regressed {DOWN}, {up} improved {UP}, {missing} metric(s) missing on "
             f"one side. A change counts when the 95% intervals do not overlap (>= 2 seeds on both sides) or, with "
             f"one seed, when it exceeds the stated threshold.", "", md_table(head, rows)]
    return "\n".join(lines)
