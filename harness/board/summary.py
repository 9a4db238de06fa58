"""The board's summary table: one row per upstream with its facts (parameters, layers, frame
rate, pre-training), each task's test primary metric with its rank, and the board's scores (on
synth the absolute score, harness.board.absolute; on a real corpus the published SUPERB and
WavLM-paper scores, for upstreams with all of their metrics)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Tuple

import pandas as pd

from harness import scores
from harness.board import absolute
from harness.board.flags import flags
from harness.board.markdown import arrow, fmt, fmt_params, fmt_score, md_table
from harness.board.ranks import fmt_rank, rank_ranges

#: the score column of a synth board (harness.board.absolute)
ABSOLUTE = "absolute score"


def board_scores(b: pd.DataFrame, kind: str) -> Tuple[Dict[str, Dict[str, float]], List[str]]:
    """({score name: {upstream: value}}, notes) for one board (one corpus and profile)."""
    ups = sorted(b["upstream"].unique())
    if kind == "synth":
        got = absolute.absolute_scores(b.to_dict("records"))
        note = absolute.score_note(absolute.SYNTH_SCORE_TASKS, got)
        return {ABSOLUTE: {u: (sc.value, sc.ci) for u, sc in got.items()}}, [note]
    mets = {u: {(r["task"], c.split(".")[1]): r[c] for _, r in b[b["upstream"] == u].iterrows()
                for c in b.columns if c.startswith("test.") and c.endswith(".mean") and pd.notna(r[c])}
            for u in ups}  # fmt: skip
    need = set(scores.SUPERB_PAPER_METRICS)
    have = [u for u in ups if need <= set(mets[u])]
    if not have:
        return {}, ["Published SUPERB / WavLM-paper scores not shown: they need the test metrics of the 10-task "
                    "paper collection (" + ", ".join(f"{t} {m}" for t, m in scores.SUPERB_PAPER_METRICS) + ")."]
    out = {"SUPERB score (paper refs)": {u: scores.superb_score(mets[u]) for u in have},
           "WavLM-paper score": {u: scores.wavlm_paper_score(mets[u]) for u in have}}
    return out, ["SUPERB score: FBANK -> SOTA reference points of the SUPERB paper, 10 tasks (SF F1 and CER "
                 "half each); WavLM-paper score: plain mean of the 11 metrics; QbE MTWV scaled x100."]


def _value(score) -> float:
    """A score cell's value: a float, or the mean of (mean, 95 % half-width)."""
    return float(score[0]) if isinstance(score, tuple) else float(score)


def score_rank(score) -> Tuple[int, float]:
    """Sort key of a score cell: the best score first, a missing (non-finite) one last."""
    v = _value(score)
    return (0, -v) if math.isfinite(v) else (1, 0.0)


def metric_ranks(t: pd.DataFrame, metric: str, hib: bool) -> Dict[str, Tuple[int, int]]:
    """{upstream: (best, worst) rank} on the test mean of `metric` over the rows of one task
    (harness.board.ranks: upstreams whose 95 % intervals overlap share a rank range); upstreams
    without a finite value have none."""
    col, ci = f"test.{metric}.mean", f"test.{metric}.ci"
    vals = {r["upstream"]: (float(r[col]), float(r[ci]) if ci in t and pd.notna(r[ci]) else math.nan)
            for _, r in t.iterrows() if col in t and pd.notna(r[col])}
    return rank_ranges(vals, hib)


def task_ranks(b: pd.DataFrame) -> Dict[Tuple[str, str], Tuple[int, int]]:
    """{(upstream, task): rank} on each task's test primary metric (``metric_ranks``)."""
    out = {}
    for task, t in b.groupby("task", sort=True):
        ranks = metric_ranks(t, t["primary_metric"].iloc[0], bool(t["higher_is_better"].iloc[0]))
        out.update({(u, task): k for u, k in ranks.items()})
    return out


def _pretraining(p) -> Tuple[str, str]:
    """(what, updates) of an upstream_facts["pretraining"] record (a fusion's: its members')."""
    if isinstance(p, dict) and isinstance(p.get("members"), list):
        parts = [_pretraining(m) for m in p["members"]]
        return " + ".join(w for w, _ in parts), " + ".join(n for _, n in parts)
    if not isinstance(p, dict):
        return "–", "–"
    hours = f"{p['hours']:g} h" if p.get("hours") is not None else None
    utts = f"{p['utterances']} utts" if p.get("utterances") is not None else None
    size = ", ".join(x for x in (hours, utts) if x)
    what = f"{p.get('corpus') or '?'}" + (f" ({size})" if size else "")
    return what, (str(p["updates"]) if p.get("updates") is not None else "–")


UPSTREAM_HEAD = ["params", "layers (L+1)", "frame rate", "pre-trained on", "updates"]


def upstream_cells(facts: dict) -> List[str]:
    """The summary's upstream columns (UPSTREAM_HEAD) from a result's upstream_facts."""
    f = facts or {}
    what, updates = _pretraining(f.get("pretraining"))
    if what == "–" and f.get("params") == 0:
        what = "none (no weights)"
    elif what == "–" and str(f.get("source") or "").startswith("random init"):
        what = "none (random init)"
    elif what == "–" and f.get("source"):
        what = Path(str(f["source"])).name
    rate = f.get("frame_rate_hz")
    return [fmt_params(f.get("params")), str(f["layers"]) if f.get("layers") else "–",
            f"{rate:g} Hz" if rate else "–", what, updates]


RANK_NOTE = ("Each task cell: test primary metric (mean over the seeds of the dev-best lr) and its rank on that task "
             "(1 = best): #a-b when the 95 % intervals allow any place from a to b (an upstream beats another "
             "only beyond both intervals; a one-seed mean has no interval and is compared by its mean); "
             "⚠: a seed of it is flagged in the task table. Layers: hidden states L+1; updates: "
             "pre-training optimiser updates behind the weights.")


def summary_table(b: pd.DataFrame, board: Dict[str, Dict[str, float]]) -> str:
    """One row per upstream (best score first): its facts (params, layers, frame rate, pre-training),
    the test primary metric of each task with its rank, then the scores."""
    tasks = sorted(b["task"].unique())
    prim = {t: b.loc[b["task"] == t, "primary_metric"].iloc[0] for t in tasks}
    hib = {t: bool(b.loc[b["task"] == t, "higher_is_better"].iloc[0]) for t in tasks}
    ranks = task_ranks(b)
    ups = sorted(b["upstream"].unique())
    if board:  # best score first, upstreams without a score last
        first = next(iter(board.values()))
        ups.sort(key=lambda u: score_rank(first.get(u, math.nan)))
    board_ranks = {k: rank_ranges({u: v if isinstance(v, tuple) else (v, math.nan) for u, v in s.items()}, True)
                   for k, s in board.items()}
    head = ["upstream"] + UPSTREAM_HEAD + [f"{t} {prim[t]}{arrow(prim[t], hib[t])}" for t in tasks] + list(board)
    rows = []
    for u in ups:
        mine = b[b["upstream"] == u]
        facts = next((f for f in mine["facts"] if isinstance(f, dict) and f), {}) if "facts" in mine else {}
        cells = [u] + upstream_cells(facts)
        for t in tasks:
            r = mine[mine["task"] == t]
            col = f"test.{prim[t]}.mean"
            if not len(r) or col not in r:
                cells.append("–")
                continue
            rank = f" {fmt_rank(ranks[(u, t)])}" if (u, t) in ranks else ""
            cells.append(fmt(r[col].iloc[0]) + rank + (" ⚠" if flags(r.iloc[0]) else ""))
        cells += [fmt_score(s.get(u, math.nan)) + (f" {fmt_rank(board_ranks[k][u])}" if u in board_ranks[k] else "")
                  for k, s in board.items()]
        rows.append(cells)
    return md_table(head, rows)
