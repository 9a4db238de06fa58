"""The absolute score of boards on corpora without published reference points (synth).

Per task, the test primary metric maps linearly from the task's trivial answer (0) to the
metric's perfect value (1000): an empty transcript's 100 % PER = 0 and 0 % PER = 1000; the most
frequent class's accuracy = 0 and 100 % = 1000; a constant ASV score's 50 % EER = 0; the mixture
itself as every source = 0 SI-SDRi and the ideal ratio mask's SI-SDRi on the same test mixtures =
1000. The score is the mean over a fixed list of tasks named on the board; an upstream missing
one has no score. Both anchors come from the upstream's own runs (Metric.trivial or the run's
scored trivial answer; Metric.perfect or the run's oracle), so adding a run never changes
another run's score, and no task drops out because of the results.

Interval: each task's points carry the 95 % Student-t half-width of its seeds times the same
linear factor; the score's half-width is sqrt(sum of squared task half-widths) / K for K tasks
(tasks treated as independent), and is n/a when a task has a single seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

#: the tasks of the synth score: SUPERB's tasks that synth has (no IC, ER, QbE, SF)
SYNTH_SCORE_TASKS: Tuple[str, ...] = ("pr", "ks", "sid", "asr", "asv", "sd", "ss")


@dataclass
class Score:
    """One upstream's absolute score: value, 95 % half-width, and why either is missing."""

    value: float = math.nan
    ci: float = math.nan
    points: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # task -> (points, half-width)
    missing: List[str] = field(default_factory=list)  # tasks without a usable result
    one_seed: List[str] = field(default_factory=list)  # tasks whose points have no interval


def spec_of(row, metric: str) -> Optional[dict]:
    for s in row.get("metric_specs") or []:
        if isinstance(s, dict) and s.get("name") == metric:
            return s
    return None


def task_points(mean: float, half: float, trivial: float, perfect: float) -> Tuple[float, float]:
    """(points, half-width) of one task: 1000 (mean - trivial) / (perfect - trivial)."""
    a = 1000.0 / (perfect - trivial)
    return a * (mean - trivial), abs(a) * half


def absolute_scores(rows: Sequence[dict], tasks: Sequence[str] = SYNTH_SCORE_TASKS) -> Dict[str, Score]:
    """{upstream: Score} over `tasks` from select_best rows of one board (one corpus, profile)."""
    by_up: Dict[str, Dict[str, dict]] = {}
    for r in rows:
        by_up.setdefault(r["upstream"], {})[r["task"]] = r
    out = {}
    for up, mine in sorted(by_up.items()):
        s = Score()
        for task in tasks:
            r = mine.get(task)
            mean = r.get(f"test.{r['primary_metric']}.mean") if r else None
            if r is None or mean is None or not math.isfinite(mean):
                s.missing.append(task)
                continue
            trivial, perfect = metric_anchors(r, r["primary_metric"])
            if trivial is None:
                s.missing.append(task)
                continue
            half = r.get(f"test.{r['primary_metric']}.ci", math.nan)
            half = math.nan if half is None else float(half)
            s.points[task] = task_points(float(mean), half, trivial, perfect)
            if not math.isfinite(half):
                s.one_seed.append(task)
        if not s.missing:
            s.value = sum(p for p, _ in s.points.values()) / len(tasks)
            if not s.one_seed:
                s.ci = math.sqrt(sum(h * h for _, h in s.points.values())) / len(tasks)
        out[up] = s
    return out


def score_note(tasks: Sequence[str], scores: Dict[str, Score]) -> str:
    """The line under the summary table that says what the score is and what it lacks."""
    line = (f"Absolute score (0-1000): per task, the trivial answer's test primary metric scores 0 and the metric's "
            f"perfect value 1000 (0 % error, 100 % accuracy; for SS the ideal ratio mask's SI-SDRi on the same test "
            f"mixtures), linear in between; the score is the mean over the tasks {', '.join(tasks)} "
            "(an upstream missing one has none). ± is a 95 % interval from the probe seeds (each task's t-interval "
            "scaled like its points, combined as independent); n/a where a task has one seed. A run's anchors come "
            "from its own results, so adding runs never moves another upstream's score.")
    gaps = [f"{u}: no {', '.join(s.missing)}" for u, s in sorted(scores.items()) if s.missing]
    single = sorted({t for s in scores.values() if not s.missing for t in s.one_seed})
    if single:
        line += f" One seed (no interval) on: {', '.join(single)}."
    if gaps:
        line += " Without a score: " + "; ".join(gaps) + "."
    return line


def metric_anchors(row, metric: str) -> Tuple[Optional[float], Optional[float]]:
    """(trivial, perfect) of any declared metric of a board row (None, None when either is
    unknown or they coincide)."""
    spec = spec_of(row, metric)
    if spec is None:
        return None, None
    trivial = spec.get("trivial")
    if trivial is None:
        trivial = ((row.get("trivial") or {}).get("test") or {}).get(metric)
    perfect = spec.get("perfect")
    if perfect is None and metric == row.get("primary_metric"):
        perfect = row.get("oracle")
    ok = trivial is not None and perfect is not None and math.isfinite(trivial) and math.isfinite(perfect)
    return (float(trivial), float(perfect)) if ok and trivial != perfect else (None, None)


def mlsuperb_absolute(rows: Sequence[dict], budget: str):
    """The ML-SUPERB score of one budget on a corpus without reference points: the ML-SUPERB
    grouping (mono, multi, LID, ASR+LID; a group is the mean of its metrics) with every metric
    mapped from its trivial answer (0) to its perfect value (1000) instead of fbank -> the
    board's best. Returns harness.scores.BoardScores with `task_scores` {group: {upstream: v}}."""
    from harness import scores

    groups = scores.mlsuperb_metrics(budget)
    by = {(r["upstream"], r["task"]): r for r in rows}
    ups = sorted({r["upstream"] for r in rows})
    task_scores: Dict[str, Dict[str, float]] = {}
    used, skipped = [], {}
    for g, keys in groups.items():
        per_up = {}
        for u in ups:
            pts = []
            for task, m in keys:
                r = by.get((u, task))
                mean = r.get(f"test.{m}.mean") if r else None
                trivial, perfect = metric_anchors(r, m) if r else (None, None)
                if mean is None or trivial is None or not math.isfinite(mean):
                    pts = None
                    break
                pts.append(task_points(float(mean), 0.0, trivial, perfect)[0])
            if pts:
                per_up[u] = sum(pts) / len(pts)
        if per_up:
            task_scores[g] = per_up
            used.append(g)
        else:
            skipped[g] = "no upstream has every metric of it with its anchors"
    out = {u: (sum(task_scores[g][u] for g in groups) / len(groups)
               if all(u in task_scores.get(g, {}) for g in groups) else math.nan) for u in ups}
    s = scores.BoardScores(out, used, skipped, [k for g in used for k in groups[g]])
    s.task_scores = task_scores
    return s
