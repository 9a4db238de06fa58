"""Which runs a board may pool: one task version (with its metric versions) per task and one
corpus version per corpus; everything else is set aside, counted and named.

A run's identity on a board is everything that made its number. The config hash already
separates configs of one (upstream, task); versions are what the *code* and the *data* mean by a
task and a corpus, so they must agree across upstreams too, or two rows of one table would
measure different things (the v1 boards mixed un-normalised and normalised minDCF, macro and
pooled CER). The board keeps, per corpus, the corpus version of its most recently finished run,
and per (corpus, task) the task identity (task version + metric versions) of its most recently
finished run; runs of other versions are set aside.
"""

from __future__ import annotations

from typing import List, Tuple

import pandas as pd

#: what a result without the field was made with
UNVERSIONED_TASK = 1
UNVERSIONED_CORPUS = "unversioned"


def metric_signature(specs) -> str:
    """'eer:2,mindcf:2' from a result's metric_specs ('' when it has none: an unversioned run)."""
    if not isinstance(specs, list):
        return ""
    return ",".join(f"{s.get('name')}:{s.get('version')}" for s in specs if isinstance(s, dict))


def task_identity(row) -> str:
    return f"v{row['task_version']}" + (f" ({row['metric_versions']})" if row["metric_versions"] else "")


def _newest(g: pd.DataFrame, col: str):
    latest = g.assign(_t=g["finished_at"].fillna("").astype(str)).groupby(col)["_t"].max()
    return max(latest.index, key=lambda v: (latest[v], str(v)))


def split_by_version(runs: pd.DataFrame) -> Tuple[pd.DataFrame, List[str]]:
    """(the runs a board may pool, one line per set-aside group naming what and how many).

    Args:
        runs: rows of `leaderboard.scan` with columns corpus, task, finished_at, task_version,
            metric_versions, corpus_version.
    """
    if runs.empty:
        return runs, []
    keep = pd.Series(True, index=runs.index)
    notes: List[str] = []
    ident = runs.apply(task_identity, axis=1)
    for corpus, g in runs.groupby("corpus", sort=True):
        cv = _newest(g, "corpus_version")
        other = g[g["corpus_version"] != cv]
        for v, n in other["corpus_version"].value_counts().sort_index().items():
            notes.append(f"{corpus}: {n} run(s) of corpus version {v} set aside (this board: {cv}).")
        keep[other.index] = False
        g = g[g["corpus_version"] == cv]
        for task, t in g.groupby("task", sort=True):
            tid = ident[t.index]
            newest = _newest(t.assign(_id=tid), "_id")
            off = tid[tid != newest]
            for v, n in off.value_counts().sort_index().items():
                ups = sorted(set(t.loc[off[off == v].index, "upstream"]))
                notes.append(f"{corpus} / {task}: {n} run(s) of task {v} set aside (this board: task {newest}; "
                             f"upstreams {', '.join(ups)}).")
            keep[off.index] = False
    return runs[keep], notes
