"""The board as a data file: one row per (corpus, profile, upstream, task), for pandas and scripts.

``board_rows`` flattens ``select_best`` rows (harness.leaderboard) into plain columns, and
``write_board`` writes them as ``board.json`` (always, beside the markdown pages) and optionally
as ``board.csv`` or ``board.parquet``. The columns (README, "Board data files"):

- ``corpus``, ``corpus_kind``, ``profile``, ``upstream``, ``task``: the row's key.
- ``task_version``, ``corpus_version``: the versions its runs were made with (runs of another
  version are never pooled with these).
- ``metric``, ``higher_is_better``: the task's primary metric and its direction.
- ``mean``, ``ci95``: the test primary metric's mean over the seeds of the selected lr and the
  95 % Student-t half-width (null with one seed); ``dev_mean``, ``dev_ci95`` the same on dev.
- ``n_seeds``, ``seeds`` (comma-separated), ``lr`` (the selected learning rate), ``selected_on``
  (``dev``, or ``test`` where the task has no dev set); ``lr_grid``: every lr searched with the
  mean over seeds of its primary metric on that split, as ``lr:value`` pairs (comma-separated).
- ``config_hash``, ``git_sha``, ``run_ids``: comma-separated, of the runs behind the row.
- ``score``, ``score_ci95``, ``score_name``: the upstream's board score on that (corpus, profile)
  (the synth absolute score of harness.board.absolute, with its 95 % half-width), repeated on each
  of the upstream's rows; null (and an empty name) where the upstream has none (a task missing, a
  real corpus: its published scores stay on the markdown page).

Lists are written as comma-separated strings so that the three formats hold the same table.
``DTYPES`` gives each column's pandas dtype (text ``str``, ``task_version`` / ``n_seeds`` ``int64``,
``higher_is_better`` ``bool``, the rest ``float64``): ``pandas.read_parquet`` gives them back as
written, ``pandas.read_json(path, dtype=DTYPES)`` too (an all-null column would otherwise load as
``object``). Parquet is written by pyarrow (in the lock).
This module imports nothing of harness.leaderboard: it reads the rows it is given.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import pandas as pd

from harness.board import absolute
from harness.errors import HarnessError

FORMATS = ("csv", "json", "parquet")
STEM = "board"
_STR, _INT, _FLOAT = "str", "int64", "float64"
#: column -> pandas dtype, in file order
DTYPES = {"corpus": _STR, "corpus_kind": _STR, "profile": _STR, "upstream": _STR, "task": _STR,
          "task_version": _INT, "corpus_version": _STR, "metric": _STR, "higher_is_better": "bool",
          "mean": _FLOAT, "ci95": _FLOAT, "dev_mean": _FLOAT, "dev_ci95": _FLOAT, "n_seeds": _INT, "seeds": _STR,
          "lr": _FLOAT, "selected_on": _STR, "lr_grid": _STR, "config_hash": _STR, "git_sha": _STR,
          "run_ids": _STR, "score": _FLOAT, "score_ci95": _FLOAT, "score_name": _STR}  # fmt: skip
COLUMNS = list(DTYPES)
SYNTH_SCORE = "absolute (synth: trivial answer = 0, perfect = 1000)"


def _num(x) -> float:
    """A float, NaN for None / missing / non-finite (null in JSON)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _joined(x) -> str:
    return ",".join(str(v) for v in (x or []))


def _grid(lr_scores) -> str:
    """'1e-05:61.2,0.0001:55.0' (lr: mean over seeds of the selection split's primary metric) of
    every lr searched, in lr order: the paper profile's grid search, as SUPERB searched it."""
    if not isinstance(lr_scores, dict):
        return ""
    return ",".join(f"{float(lr):g}:{float(v):.4g}" for lr, v in sorted(lr_scores.items()))


def _scores(best: pd.DataFrame) -> Dict[Tuple[str, str, str], Tuple[float, float]]:
    """{(corpus, profile, upstream): (score, 95 % half-width)} of the synth boards' absolute score."""
    out = {}
    for (corpus, profile), b in best.groupby(["corpus", "profile"], sort=True):
        if set(b["corpus_kind"]) != {"synth"}:
            continue
        for up, s in absolute.absolute_scores(b.to_dict("records")).items():
            out[(corpus, profile, up)] = (s.value, s.ci)
    return out


def board_rows(best: pd.DataFrame) -> pd.DataFrame:
    """The data-file table of ``select_best`` rows: the module docstring's columns, in that order,
    with the ``DTYPES`` dtypes (an empty board too), sorted by corpus, profile, task and upstream.

    Args:
        best: ``harness.leaderboard.select_best`` output (one row per corpus, profile, upstream,
            task; ``test.<metric>.mean`` / ``.ci`` columns).
    """
    if best.empty:
        return pd.DataFrame(columns=COLUMNS).astype(DTYPES)
    scores = _scores(best)
    rows: List[dict] = []
    for _, r in best.sort_values(["corpus", "profile", "task", "upstream"]).iterrows():
        pm = r["primary_metric"]
        score, score_ci = scores.get((r["corpus"], r["profile"], r["upstream"]), (math.nan, math.nan))
        rows.append({
            "corpus": str(r["corpus"]), "corpus_kind": str(r["corpus_kind"]), "profile": str(r["profile"]),
            "upstream": str(r["upstream"]), "task": str(r["task"]), "task_version": int(r.get("task_version", 1)),
            "corpus_version": str(r.get("corpus_version", "unversioned")), "metric": str(pm),
            "higher_is_better": bool(r["higher_is_better"]),
            "mean": _num(r.get(f"test.{pm}.mean")), "ci95": _num(r.get(f"test.{pm}.ci")),
            "dev_mean": _num(r.get(f"dev.{pm}.mean")), "dev_ci95": _num(r.get(f"dev.{pm}.ci")),
            "n_seeds": int(r["n_seeds"]), "seeds": _joined(r["seeds"]), "lr": float(r["lr"]),
            "selected_on": str(r["selected_on"]), "lr_grid": _grid(r.get("lr_scores")),
            "config_hash": _joined(r["config_hashes"]),
            "git_sha": _joined(r["git_shas"]), "run_ids": _joined(r["run_ids"]),
            "score": _num(score), "score_ci95": _num(score_ci),
            "score_name": SYNTH_SCORE if math.isfinite(_num(score)) else "",
        })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS).astype(DTYPES)


def write_table(table: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write ``table`` to ``path`` as ``fmt`` (csv | json | parquet); JSON is a list of records
    (``pandas.read_json(path, dtype=DTYPES)`` loads it back), NaN as null; parquet keeps the dtypes
    (``pandas.read_parquet(path)``)."""
    path = Path(path)
    if fmt == "json":
        table.to_json(path, orient="records", indent=1, double_precision=15)
    elif fmt == "csv":
        table.to_csv(path, index=False)
    elif fmt == "parquet":
        table.to_parquet(path, index=False, engine="pyarrow")
    else:
        raise HarnessError(f"unknown board format {fmt!r}: use {' | '.join(FORMATS)}")
    return path


def check_formats(formats: Sequence[str]) -> None:
    """Raise HarnessError naming the first unknown board format."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise HarnessError(f"unknown board format {bad[0]!r}: use {' | '.join(FORMATS)}")


def write_board(best: pd.DataFrame, out_dir: Path, formats: Sequence[str] = ()) -> List[Path]:
    """Write ``<out_dir>/board.json`` and ``board.<fmt>`` for each of ``formats``; returns the paths.

    Raises:
        HarnessError: an unknown format (checked before anything is written).
    """
    check_formats(formats)
    table = board_rows(best)
    out_dir = Path(out_dir)
    return [write_table(table, out_dir / f"{STEM}.{fmt}", fmt) for fmt in dict.fromkeys(["json", *formats])]
