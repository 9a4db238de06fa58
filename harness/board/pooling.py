"""One interval over pre-training seeds and probe seeds together (the ablation tables).

A variant of an ablation is pre-trained R times (pre-training seeds, harness.pretrain.seeds) and
each run's export is probed with n seeds. Its board number is pooled in two levels:

- each pre-training run i gives m_i, the mean of its probe seeds' test metric, and c_i, the
  half-width of its 95 % Student-t interval over those probe seeds (the board's usual cell);
- the variant's value is mean_i m_i, and its interval is the 95 % Student-t interval over the R
  run means: t_{0.975, R-1} * sd(m_1..m_R, ddof=1) / sqrt(R). Each m_i already averages its
  probe seeds, so the spread of the m_i holds both the pre-training draw and what is left of
  the probe-seed noise: one interval covers the two;
- beside it, the probe-seed spread: the mean of the c_i, so a reader sees how much of the width
  the probes alone would give.

With R = 1 there is no interval over pre-training runs: the value and interval are that run's
probe-seed ones (the table says so), as on every board made before pre-training seeds.

Two variants differ only when their intervals do not overlap (`apart`), as in harness.board.ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from harness.scores import mean_ci95


@dataclass(frozen=True)
class Pooled:
    """A variant's pooled test metric.

    Attributes:
        mean: mean over pre-training runs of each run's probe-seed mean (metric units).
        ci: 95 % half-width: over pre-training runs when runs >= 2; the one run's probe-seed
            half-width when runs == 1 (NaN when that run has one probe seed).
        probe_ci: mean over runs of each run's probe-seed 95 % half-width (NaN where none has one).
        runs: pre-training runs pooled (R).
        probe_seeds: probe seeds of each run, in the order given.
    """

    mean: float
    ci: float
    probe_ci: float
    runs: int
    probe_seeds: Tuple[int, ...]

    @property
    def over_pretraining(self) -> bool:
        """True when `ci` is an interval over pre-training runs (R >= 2)."""
        return self.runs >= 2


def pool_runs(run_means: Sequence[float], run_cis: Sequence[float], probe_seeds: Sequence[int]) -> Pooled:
    """Pool R pre-training runs of one variant on one task (module docstring).

    Args:
        run_means: (R,) each run's mean test metric over its probe seeds.
        run_cis: (R,) each run's 95 % half-width over its probe seeds (NaN: one probe seed).
        probe_seeds: (R,) each run's number of probe seeds.

    Returns:
        The pooled value; runs whose mean is NaN (a diverged probe) are left out, and R = 0
        gives NaN mean and interval.
    """
    if not len(run_means) == len(run_cis) == len(probe_seeds):
        raise ValueError(f"pool_runs: {len(run_means)} means, {len(run_cis)} intervals, "
                         f"{len(probe_seeds)} seed counts: one of each per pre-training run")
    keep = [i for i, m in enumerate(run_means) if m is not None and math.isfinite(float(m))]
    means = [float(run_means[i]) for i in keep]
    cis = [float(run_cis[i]) for i in keep if run_cis[i] is not None and math.isfinite(float(run_cis[i]))]
    probe_ci = sum(cis) / len(cis) if cis else math.nan
    seeds = tuple(int(probe_seeds[i]) for i in keep)
    if len(means) == 1:
        return Pooled(means[0], probe_ci, probe_ci, 1, seeds)
    mean, ci = mean_ci95(means)
    return Pooled(mean, ci, probe_ci, len(means), seeds)


def apart(a: Pooled, b: Pooled) -> Optional[bool]:
    """True when the 95 % intervals of a and b do not overlap; None when either has no value or
    no interval (nothing can be said)."""
    vals = (a.mean, a.ci, b.mean, b.ci)
    if any(v is None or not math.isfinite(v) for v in vals):
        return None
    return abs(a.mean - b.mean) > a.ci + b.ci
