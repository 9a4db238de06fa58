"""Benchmark scores (docs/protocol.md section 4): pure functions, no I/O.

Metric dictionaries are keyed by ``(task, metric)``, e.g. ``("pr", "per")``, with values in the
units the protocol uses (percent for PER/WER/CER/EER/DER/accuracy/F1, dB for SI-SDRi).

One exception, handled explicitly: **QbE MTWV** is passed as the raw value the scoring tool
reports (a fraction <= 1, e.g. HuBERT Base 0.0736), while the SUPERB reference points are
"MTWV x100" (0.58 -> 7.36). ``superb_score`` and ``wavlm_paper_score`` multiply it by
``QBE_MTWV_SCALE`` = 100 themselves; a QbE value above 1 cannot be a raw MTWV, so it is refused
rather than silently scaled twice.

Scores:
- ``superb_score``: SUPERB paper collection (10 tasks, 11 metrics), FBANK -> SOTA reference scaling.
- ``wavlm_paper_score``: the WavLM paper's plain mean over the same 11 metrics.
- ``relative_score``: the same 0..1000 scaling with board references (the ``fbank`` run = 0, the
  best run on the board per metric = 1000), used by the ML-SUPERB score. SUPERB tasks on synth
  use the absolute score instead (harness.board.absolute: trivial answer = 0, perfect = 1000).
- ``mlsuperb_score``: the ML-SUPERB score of one training budget (10min / 1h): the same
  board-relative 0..1000 scaling over 7 metrics in 4 tasks.
- ``mean_ci95``: mean and Student-t 95% half-width over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

from harness.errors import HarnessError

Key = Tuple[str, str]  # (task, metric)

QBE_MTWV_SCALE = 100.0  # reference points are MTWV x100; inputs are raw MTWV (<= 1)


@dataclass(frozen=True)
class Reference:
    """A SUPERB reference pair: the FBANK value (score 0) and the SOTA value (score 1000)."""

    fbank: float
    sota: float
    higher_is_better: bool


# FBANK -> SOTA of the SUPERB paper (docs/protocol.md section 4). QbE MTWV is in x100 units.
SUPERB_REFERENCES: Dict[Key, Reference] = {
    ("pr", "per"): Reference(82.01, 3.53, False),
    ("ks", "acc"): Reference(41.3826674, 96.66, True),
    ("ic", "acc"): Reference(9.649354219, 98.76, True),
    ("sid", "acc"): Reference(20.058174, 90.3, True),
    ("er", "acc"): Reference(48.23672168, 67.62, True),
    ("asr", "wer"): Reference(23.18, 3.62, False),
    ("qbe", "mtwv"): Reference(0.58, 7.36, True),
    ("sf", "f1"): Reference(69.64, 89.81, True),
    ("sf", "cer"): Reference(52.94, 21.76, False),
    ("asv", "eer"): Reference(9.56, 5.11, False),
    ("sd", "der"): Reference(10.05, 5.62, False),
    ("ss", "si_sdri"): Reference(9.2341, 10.4514, True),
}

# The paper collection: 10 tasks (SS is not part of it). SF has two metrics, so each weighs half
# inside SF. The same 11 metrics make the WavLM-paper score.
SUPERB_PAPER_TASKS: Tuple[str, ...] = ("pr", "ks", "ic", "sid", "er", "asr", "qbe", "sf", "asv", "sd")
SUPERB_PAPER_METRICS: Tuple[Key, ...] = tuple(k for k in SUPERB_REFERENCES if k[0] in SUPERB_PAPER_TASKS)
WAVLM_PAPER_METRICS: Tuple[Key, ...] = (
    ("pr", "per"), ("asr", "wer"), ("ks", "acc"), ("qbe", "mtwv"), ("sid", "acc"), ("asv", "eer"),
    ("sd", "der"), ("er", "acc"), ("ic", "acc"), ("sf", "f1"), ("sf", "cer"),
)  # fmt: skip

# Direction of every metric name the tasks produce (for tables and board-relative scores).
METRIC_HIGHER_IS_BETTER: Dict[str, bool] = {
    "acc": True, "macro_acc": True, "f1": True, "mtwv": True, "si_sdri": True,
    "per": False, "wer": False, "cer": False, "eer": False, "mindcf": False, "der": False,
    "cer_normal": False, "cer_fewshot": False, "lid_acc": True, "der_dev_setting": False, "si_sdr": True,
}  # fmt: skip

# ML-SUPERB (docs/protocol.md section 4): score task -> [(task name without the budget suffix, metric)].
MLSUPERB_BUDGETS: Tuple[str, ...] = ("10min", "1h")
MLSUPERB_TASKS: Dict[str, Tuple[Key, ...]] = {
    "mono": (("mono_asr", "cer"),),
    "multi": (("ml_asr", "cer_normal"), ("ml_asr", "cer_fewshot")),
    "lid": (("lid_ctc", "acc"),),
    "asr_lid": (("asr_lid", "lid_acc"), ("asr_lid", "cer_normal"), ("asr_lid", "cer_fewshot")),
}


def mlsuperb_metrics(budget: str) -> Dict[str, List[Key]]:
    """{score task: [(task, metric)]} of one budget, e.g. "mono": [("mono_asr_10min", "cer")]."""
    if budget not in MLSUPERB_BUDGETS:
        raise HarnessError(f"unknown ML-SUPERB budget {budget!r}; expected one of {', '.join(MLSUPERB_BUDGETS)}")
    return {g: [(f"{t}_{budget}", m) for t, m in keys] for g, keys in MLSUPERB_TASKS.items()}


def _qbe_scaled(key: Key, value: float) -> float:
    if key == ("qbe", "mtwv"):
        if value > 1.0:
            raise HarnessError(
                f"QbE MTWV {value} is above 1: pass the raw MTWV (e.g. 0.0736); it is scaled x100 here"
            )
        return value * QBE_MTWV_SCALE
    return value


def _require(metrics: Mapping[Key, float], keys: Iterable[Key], what: str) -> None:
    missing = [f"{t} {m}" for t, m in keys if (t, m) not in metrics]
    if missing:
        raise HarnessError(f"{what} needs test metrics that are missing: {', '.join(missing)}")


def superb_score(metrics: Mapping[Key, float], tasks: Sequence[str] = SUPERB_PAPER_TASKS) -> float:
    """SUPERB score: per metric 1000 * (x - fbank) / (sota - fbank), mean over a task's metrics,
    then over ``tasks`` (default: the paper collection of 10 tasks). QbE MTWV is raw (x100 here)."""
    keys = [k for k in SUPERB_REFERENCES if k[0] in tasks]
    unknown = sorted(set(tasks) - {k[0] for k in keys})
    if unknown:
        raise HarnessError(f"no SUPERB reference points for task(s): {', '.join(unknown)}")
    _require(metrics, keys, "the SUPERB score")
    per_task: Dict[str, List[float]] = {}
    for key in keys:
        ref = SUPERB_REFERENCES[key]
        x = _qbe_scaled(key, float(metrics[key]))
        per_task.setdefault(key[0], []).append(1000.0 * (x - ref.fbank) / (ref.sota - ref.fbank))
    return float(np.mean([np.mean(v) for v in per_task.values()]))


def wavlm_paper_score(metrics: Mapping[Key, float]) -> float:
    """WavLM-paper score: plain mean over the 11 metrics of ``WAVLM_PAPER_METRICS``; accuracies
    and F1 as they are, 100 - x for PER/WER/EER/DER/SF-CER, raw QbE MTWV x 100."""
    _require(metrics, WAVLM_PAPER_METRICS, "the WavLM-paper score")
    vals = []
    for key in WAVLM_PAPER_METRICS:
        x = _qbe_scaled(key, float(metrics[key]))
        vals.append(x if SUPERB_REFERENCES[key].higher_is_better else 100.0 - x)
    return float(np.mean(vals))


def relative_score(values, zero: float, best: float, higher_is_better: bool):
    """Board-relative 0..1000 scaling: 1000 * (x - zero) / (best - zero).

    ``zero`` is the fbank run's value, ``best`` the best value on the board (fbank included), so
    ``best`` can never be worse than ``zero``; that is checked (ValueError). When ``best == zero``
    (fbank is the best run) the scale is undefined and NaN is returned. Works for scalars and
    array-likes (returns the same kind)."""
    zero, best = float(zero), float(best)
    if (best < zero) if higher_is_better else (best > zero):
        raise ValueError(f"best {best} is worse than the zero point {zero} (higher_is_better={higher_is_better})")
    arr = np.asarray(values, dtype=float)
    out = np.full(arr.shape, np.nan) if best == zero else 1000.0 * (arr - zero) / (best - zero)
    return float(out) if np.ndim(values) == 0 else out


class BoardScores(dict):
    """{upstream: score} (NaN for an upstream missing a task that was used) plus what was used.

    Attributes: ``tasks_used`` (tasks averaged), ``tasks_skipped`` ({task: reason}),
    ``metrics_used`` ([(task, metric)])."""

    def __init__(self, scores, tasks_used, tasks_skipped, metrics_used):
        super().__init__(scores)
        self.tasks_used: List[str] = list(tasks_used)
        self.tasks_skipped: Dict[str, str] = dict(tasks_skipped)
        self.metrics_used: List[Key] = list(metrics_used)


def mlsuperb_score(table, budget: str, zero_upstream: str = "fbank", require_all: bool = True) -> BoardScores:
    """ML-SUPERB score of one budget with board references (docs/protocol.md section 4).

    ``table``: long-form DataFrame with columns upstream, task, metric, value (e.g. mean test
    metrics of each upstream's selected run; percent). Per metric of ``mlsuperb_metrics(budget)``
    (7 metrics in 4 tasks): ``zero_upstream``'s value = 0, the best value over all upstreams on
    the board = 1000 (``relative_score``; CER lower is better, accuracy higher); mean over a
    task's metrics, then over the 4 tasks. An upstream without one of the used metrics gets NaN.

    Args:
        table: see above; other tasks and metrics in it are ignored.
        budget: "10min" or "1h".
        zero_upstream: the run that defines 0.
        require_all: raise when a metric cannot be scaled (absent from the board, no
            ``zero_upstream`` value, or ``zero_upstream`` itself best so no scale). With False such
            metrics are left out, and a task left without metrics is skipped; ``tasks_skipped``
            says why, and the score is then over fewer than 4 tasks.

    Returns:
        BoardScores {upstream: score}; ``tasks_used`` are ML-SUPERB task groups ("mono", "multi",
        "lid", "asr_lid"), ``metrics_used`` the (task, metric) keys, and the extra attribute
        ``task_scores`` {group: {upstream: mean of the group's metric scores}}.

    Raises:
        HarnessError: unknown budget, or (require_all) a metric that cannot be scaled.
    """
    groups = mlsuperb_metrics(budget)
    t = table[table["value"].notna()] if len(table) else table
    ups = sorted(t["upstream"].unique()) if len(t) else []
    per_task: Dict[str, Dict[str, List[float]]] = {}
    skipped: Dict[str, str] = {}
    used: List[Key] = []
    problems: List[str] = []
    for group, keys in groups.items():
        reasons = []
        for task, metric in keys:
            m = t[(t["task"] == task) & (t["metric"] == metric)] if len(t) else t
            zero_rows = m.loc[m["upstream"] == zero_upstream, "value"] if len(m) else []
            if len(m) == 0:
                reasons.append(f"{task} {metric}: no result on the board")
                continue
            if len(zero_rows) == 0:
                reasons.append(f"{task} {metric}: no {zero_upstream} result (the zero point)")
                continue
            hib = METRIC_HIGHER_IS_BETTER[metric]
            zero = float(zero_rows.iloc[0])
            best = float(m["value"].max() if hib else m["value"].min())
            if best == zero:
                reasons.append(f"{task} {metric}: {zero_upstream} is the best run (no scale)")
                continue
            used.append((task, metric))
            vals = dict(zip(m["upstream"], relative_score(m["value"].to_numpy(dtype=float), zero, best, hib)))
            for u in ups:
                per_task.setdefault(group, {}).setdefault(u, []).append(vals.get(u, math.nan))
        problems += reasons
        if group not in per_task:
            skipped[group] = "; ".join(reasons)
        elif reasons:
            skipped[f"{group} (partly)"] = "; ".join(reasons)
    if require_all and problems:
        raise HarnessError(f"the ML-SUPERB score ({budget}) cannot use: " + "; ".join(problems))
    task_scores = {g: {u: float(np.mean(v)) for u, v in per_u.items()} for g, per_u in per_task.items()}
    scores = {}
    for u in ups:
        task_means = [task_scores[g][u] for g in per_task]
        scores[u] = float(np.mean(task_means)) if task_means else math.nan
    out = BoardScores(scores, list(per_task), skipped, used)
    out.task_scores = task_scores
    return out


def mean_ci95(values: Iterable[float]) -> Tuple[float, float]:
    """(mean, half-width of the 95% Student-t interval): t_{0.975, n-1} * s / sqrt(n), s with
    ddof=1. n = 1 gives (x, NaN): one seed has no interval. n = 0 gives (NaN, NaN)."""
    from scipy import stats

    x = np.asarray(list(values), dtype=float)
    n = x.size
    if n == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half
