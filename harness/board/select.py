"""The board's selection: per (corpus, profile, upstream, task) the runs it pools and the learning
rate it reads them at (docs/design.md section 8).

- ``select_lr``: THE best-lr rule, used by the board (``select_best``), by the sweep's summary
  line (harness.sweep) and so by ``harness compare`` and ``harness report`` (both read
  ``select_board``):

  1. the split: dev where any run has a dev value, else test (SUPERB ASV has no dev set);
  2. per lr, the mean of that split's primary metric over its seeds; an lr with a seed that has
     no value (None or NaN: a diverged seed) has no mean (NaN) and is never chosen: it is not
     ranked on its surviving seeds;
  3. the best mean in the metric's direction; ties (equal means): the smaller lr;
  4. where no lr has a mean, the smallest lr (its cells then read n/a).

- ``newest_config``: runs of different config hashes are never pooled as seeds; the newest
  config's runs are kept and the others counted (``set_aside``).
- ``select_best``: one row per group: the chosen lr, ``<split>.<metric>.mean`` / ``.ci`` / ``.n``
  over its seeds, and what the pages show of its runs.
- ``select_board``: ``select_best`` over the runs a board may pool (harness.board.versions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from harness import scores
from harness.board import versions
from harness.environment import machine_labels
from harness.errors import HarnessError

GROUP = ["corpus", "profile", "upstream", "task"]
#: a transcription probe whose test output holds fewer tokens than this fraction of the references'
#: is flagged "near-empty output": it never left the CTC blank plateau for most items, whatever its
#: error rate says (at 0.2 the error rate is at least 80%)
NEAR_EMPTY = 0.2


def _missing(v) -> bool:
    """True for a value a run does not have: None or NaN."""
    return v is None or math.isnan(float(v))


def seed_mean(values: Sequence[Optional[float]]) -> float:
    """Mean over the seeds of one lr; NaN when any seed has no value (None or NaN)."""
    if any(_missing(v) for v in values):
        return math.nan
    return float(np.mean(np.asarray(values, dtype=float)))


@dataclass(frozen=True)
class LrChoice:
    """The learning rate one experiment (runs of one config, several lrs x seeds) is read at.

    Attributes:
        lr: the chosen learning rate.
        split: "dev", or "test" where no run has a dev value.
        means: {lr: ``seed_mean`` of the split's values}, every lr of the runs, by increasing lr.
    """

    lr: float
    split: str
    means: Dict[float, float]


def select_lr(runs: Iterable[Tuple[float, Optional[float], Optional[float]]], higher_is_better: bool) -> LrChoice:
    """The best-lr rule of the module docstring (the one rule of the board, the sweep and compare).

    Args:
        runs: one (lr, dev value, test value) per run (seed) of the primary metric; a value is
            None or NaN where the run has none.
        higher_is_better: the primary metric's direction.

    Returns:
        The chosen lr, the split it was chosen on and the mean per lr.

    Raises:
        HarnessError: no runs.
    """
    runs = [(float(lr), dev, test) for lr, dev, test in runs]
    if not runs:
        raise HarnessError("no runs to choose a learning rate from")
    split = "dev" if any(not _missing(d) for _, d, _ in runs) else "test"
    by_lr: Dict[float, List[Optional[float]]] = {}
    for lr, dev, test in runs:
        by_lr.setdefault(lr, []).append(dev if split == "dev" else test)
    means = {lr: seed_mean(vs) for lr, vs in sorted(by_lr.items())}
    valid = {lr: m for lr, m in means.items() if not math.isnan(m)}
    if not valid:
        return LrChoice(min(means), split, means)
    best = max(valid.values()) if higher_is_better else min(valid.values())
    return LrChoice(min(lr for lr, m in valid.items() if m == best), split, means)


def _mean_lists(lists) -> List[float] | None:
    arrs = [np.asarray(x, dtype=float) for x in lists if x]
    if not arrs or len({a.shape for a in arrs}) != 1:
        return None
    return np.mean(arrs, axis=0).tolist()


def _mean_dicts(dicts) -> Dict[str, float] | None:
    """{key: mean over the dicts that have it} of {key: number} dicts (None entries skipped)."""
    ds = [d for d in dicts if isinstance(d, dict) and d]
    if not ds:
        return None
    keys = sorted({k for d in ds for k in d})
    return {k: float(np.mean([float(d[k]) for d in ds if k in d and d[k] is not None])) for k in keys
            if any(k in d and d[k] is not None for d in ds)}  # fmt: skip


def _mean_list_dicts(dicts) -> Dict[str, List[float]] | None:
    """{key: element-wise mean list} of {key: [numbers]} dicts (keys whose lists disagree in length dropped)."""
    ds = [d for d in dicts if isinstance(d, dict) and d]
    if not ds:
        return None
    out = {k: _mean_lists([d.get(k) for d in ds]) for k in sorted({k for d in ds for k in d})}
    return {k: v for k, v in out.items() if v is not None} or None


def newest_config(g: pd.DataFrame) -> Tuple[pd.DataFrame, Dict[str, int]]:
    """The runs of one (corpus, profile, upstream, task) group made with its newest config, and
    {config hash: runs} of the older configs set aside.

    Runs of different config hashes (different steps, batch, head, upstream weights, ...) are not
    seeds of one experiment and are never pooled; the config whose latest run finished last wins.
    The lr and the seed are not in the hash: the lr grid is searched within the winning config.
    """
    hashes = g["config_hash"].astype(str)
    if hashes.nunique() <= 1:
        return g, {}
    latest = g.assign(_h=hashes, _t=g["finished_at"].fillna("").astype(str)).groupby("_h")["_t"].max()
    newest = max(latest.index, key=lambda h: (latest[h], h))
    older = hashes[hashes != newest].value_counts()
    return g[hashes == newest], {str(h): int(n) for h, n in sorted(older.items())}


def select_best(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (corpus, profile, upstream, task), from its newest config's runs only
    (``newest_config``; older configs are counted in ``set_aside``): the lr of ``select_lr`` and
    ``<split>.<metric>.mean`` / ``.ci`` over its seeds, the runs' ids, hashes, shas, versions."""
    metric_cols = [c for c in df.columns if c.startswith(("dev.", "test."))]
    out = []
    for key, g in df.groupby(GROUP, sort=True):
        g, set_aside = newest_config(g)
        primary = g["primary_metric"].iloc[0]
        hib = bool(g["higher_is_better"].iloc[0])
        if g["primary_metric"].nunique() != 1 or g["higher_is_better"].nunique() != 1:
            raise HarnessError(f"runs of {'/'.join(map(str, key))} disagree on the primary metric or its direction")
        dev, test = (g[f"{s}.{primary}"] if f"{s}.{primary}" in g else [None] * len(g) for s in ("dev", "test"))
        choice = select_lr(zip(g["lr"], dev, test), hib)
        lr, split = choice.lr, choice.split
        c = g[g["lr"] == lr].sort_values("seed")
        row = dict(zip(GROUP, key))
        row.update(corpus_kind=c["corpus_kind"].iloc[0], upstream_family=c["upstream_family"].iloc[0],
                   primary_metric=primary, higher_is_better=hib, lr=lr, selected_on=split,
                   n_seeds=len(c), seeds=c["seed"].tolist(), run_ids=c["run_id"].tolist(),
                   config_hashes=sorted(set(c["config_hash"].astype(str))), set_aside=set_aside,
                   git_shas=sorted(set(c["git_sha"].astype(str))), versions=sorted(set(c["versions"].astype(str))),
                   lr_scores=choice.means,
                   lw_softmax=_mean_lists(c["lw_softmax"]), lw_corrected=_mean_lists(c["lw_corrected"]),
                   per_language_cer=_mean_dicts(c["per_language_cer"]) if "per_language_cer" in c else None,
                   per_language_acc=_mean_dicts(c["per_language_acc"]) if "per_language_acc" in c else None,
                   language_classes=next((x for x in c["language_classes"] if isinstance(x, dict) and x), None)
                   if "language_classes" in c else None,
                   per_language_lw=_mean_list_dicts(c["per_language_lw"]) if "per_language_lw" in c else None,
                   trivial=next((x for x in c["trivial"] if x), None) if "trivial" in c else None,
                   ctc_floor=next((x for x in c["ctc_floor"] if x), None) if "ctc_floor" in c else None,
                   learned_nothing=int(c["learned_nothing"].sum()) if "learned_nothing" in c else 0,
                   departures=sorted({d for ds in c["departures"] for d in ds}) if "departures" in c else [],
                   substitute_phones=int((c["phones_source"] == "espeak").sum()) if "phones_source" in c else 0,
                   empty_output=int((c["output_ratio"] < NEAR_EMPTY).sum()) if "output_ratio" in c else 0,
                   output_ratio=float(c["output_ratio"].mean()) if "output_ratio" in c else math.nan,
                   nan_runs=int(c["nan"].sum()) if "nan" in c else 0,
                   facts=next((f for f in c["facts"] if isinstance(f, dict)), {}) if "facts" in c else {},
                   machines=machine_labels(c["environment"]) if "environment" in c else ["unknown"],
                   train_s=float(c["train_s"].mean()) if c["train_s"].notna().any() else None,
                   probe_steps=sorted({int(x) for x in c["probe_steps"].dropna()}) if "probe_steps" in c else [],
                   corpus_sizes=sorted({str(x) for x in c["corpus_size"].dropna()}) if "corpus_size" in c else [],
                   task_version=int(c["task_version"].iloc[0]) if "task_version" in c else 1,
                   corpus_version=str(c["corpus_version"].iloc[0]) if "corpus_version" in c else "unversioned",
                   metric_specs=next((m for m in c["metric_specs"] if m), None) if "metric_specs" in c else None,
                   oracle=float(c["oracle"].mean()) if "oracle" in c and c["oracle"].notna().any() else math.nan)  # fmt: skip
        for mc in metric_cols:
            vals = c[mc].dropna()
            if len(vals):
                row[f"{mc}.mean"], row[f"{mc}.ci"] = scores.mean_ci95(vals)
                row[f"{mc}.n"] = len(vals)
        out.append(row)
    return pd.DataFrame(out)


def select_board(runs: pd.DataFrame) -> Tuple[pd.DataFrame, List[str]]:
    """``select_best`` over the runs a board may pool (``versions.split_by_version``), and one
    line per set-aside group: what every page, report and comparison reads."""
    kept, notes = versions.split_by_version(runs)
    return select_best(kept), notes
