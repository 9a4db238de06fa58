"""The ML-SUPERB sections of a board page, one per train budget: the ML-SUPERB score (on synth the
absolute one, harness.board.absolute; on a real corpus fbank = 0 and the board's best = 1000)
with its 7 metrics, per-language tables (CER; accuracy for lid_ctc) with the spread across
languages and, with more than ``WORST_K`` languages, the worst-k mean, and the languages x
layers heatmaps of the mono_asr runs."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from harness import plots, scores
from harness.board import absolute
from harness.board.markdown import arrow, fmt, md_table
from harness.board.ranks import fmt_rank
from harness.board.summary import UPSTREAM_HEAD, metric_ranks, score_rank, upstream_cells

MLSUPERB_TASK = re.compile(r"^(mono_asr|ml_asr|lid_ctc|asr_lid)_(10min|1h)$")
MLSUPERB_SYNTH_HEADER = ("ML-SUPERB-style score on synth: per metric the trivial answer = 0, the perfect value = 1000 "
                         "(not comparable with published ML-SUPERB scores)")  # fmt: skip
MLSUPERB_REAL_HEADER = ("ML-SUPERB score: fbank = 0, best run per metric on this board = 1000 (the benchmark's "
                        "\"SOTA\" is the best value on the current leaderboard)")  # fmt: skip
MLSUPERB_GROUP_NAMES = {"mono": "mono", "multi": "multi", "lid": "LID", "asr_lid": "ASR+LID"}
WORST_K = 5


def is_mlsuperb_task(task: str) -> bool:
    """True for an ML-SUPERB task (``<mono_asr|ml_asr|lid_ctc|asr_lid>_<10min|1h>``)."""
    return bool(MLSUPERB_TASK.match(str(task)))


def long_test_table(b: pd.DataFrame) -> pd.DataFrame:
    """Every test metric mean of a board in long form (upstream, task, metric, value, higher_is_better)."""
    rows = []
    for _, r in b.iterrows():
        for c in b.columns:
            if c.startswith("test.") and c.endswith(".mean") and pd.notna(r[c]):
                m = c.split(".")[1]
                rows.append((r["upstream"], r["task"], m, float(r[c]), scores.METRIC_HIGHER_IS_BETTER.get(m)))
    return pd.DataFrame(rows, columns=["upstream", "task", "metric", "value", "higher_is_better"])


def language_spread(per_lang: Dict[str, float], k: int = WORST_K, higher_is_better: bool = False) -> Dict[str, object]:
    """Macro mean, worst-k mean (the k highest CERs, or lowest accuracies; all when fewer), their
    languages, population std (ddof 0) and max - min of per-language values."""
    vals = {lg: float(v) for lg, v in per_lang.items() if v is not None and math.isfinite(float(v))}
    if not vals:
        return {"mean": math.nan, "worst_mean": math.nan, "worst": [], "std": math.nan, "range": math.nan}
    x = np.array(list(vals.values()))
    sign = 1.0 if higher_is_better else -1.0
    worst = sorted(vals, key=lambda lg: (sign * vals[lg], lg))[:k]
    return {"mean": float(x.mean()), "worst_mean": float(np.mean([vals[lg] for lg in worst])), "worst": worst,
            "std": float(x.std()), "range": float(x.max() - x.min())}  # fmt: skip


#: the per-language table of each ML-SUPERB task: (result extra, metric name, higher is better).
#: lid_ctc is a language decision, so its table is accuracy; its extra["per_language_cer"] is the
#: tag sequence's token error rate, which counts insertions and so runs past 100%.
PER_LANGUAGE = {"lid_ctc": ("per_language_acc", "accuracy", True)}
PER_LANGUAGE_DEFAULT = ("per_language_cer", "CER", False)


def per_language_kind(task: str) -> Tuple[str, str, bool]:
    """(row column, metric name, higher is better) of a task's per-language table."""
    return PER_LANGUAGE.get(str(task).rsplit("_", 1)[0], PER_LANGUAGE_DEFAULT)


def _per_language_table(t: pd.DataFrame) -> Tuple[str, str]:
    """(note, table) of one task: rows upstreams (best macro mean first), columns languages, then
    the spread columns; the worst-k columns only with more than k languages."""
    key, metric, hib = per_language_kind(t["task"].iloc[0])
    per_up = {r["upstream"]: r[key] for _, r in t.iterrows() if isinstance(r.get(key), dict)}
    langs = sorted({lg for d in per_up.values() for lg in d})
    spread = {u: language_spread(d, higher_is_better=hib) for u, d in per_up.items()}
    ups = sorted(per_up, key=lambda u: (not math.isfinite(spread[u]["mean"]),
                                        -spread[u]["mean"] if hib else spread[u]["mean"], u))
    worst = len(langs) > WORST_K
    head = ["upstream"] + langs + ["mean"] + ([f"worst-{WORST_K} mean", f"worst {WORST_K}"] if worst else [])
    rows = []
    for u in ups:
        d, sp = per_up[u], spread[u]
        rows.append([u] + [fmt(d[lg]) if lg in d and d[lg] is not None else "–" for lg in langs] + [fmt(sp["mean"])]
                    + ([fmt(sp["worst_mean"]), ", ".join(sp["worst"])] if worst else [])
                    + [fmt(sp["std"]), fmt(sp["range"])])  # fmt: skip
    extreme = "lowest accuracy" if hib else "highest CER"
    note = ((f"Worst-{WORST_K} mean: mean {metric} of the {WORST_K} languages with the {extreme}; " if worst else "")
            + f"std: population standard deviation of the per-language {metric}; max−min: their range.")
    return note, md_table(head + ["std", "max−min"], rows)


def _mlsuperb_score(bb: pd.DataFrame, budget: str, kind: str):
    """The absolute ML-SUPERB score on synth (trivial answer 0, perfect 1000 per metric), the
    board-relative one (fbank 0, best 1000) on real corpora."""
    if kind == "synth":
        return absolute.mlsuperb_absolute(bb.to_dict("records"), budget)
    return scores.mlsuperb_score(long_test_table(bb), budget, require_all=False)


def mlsuperb_board_scores(b: pd.DataFrame) -> Dict[str, Dict[str, float]]:
    """{"ML-SUPERB score (<budget>)": {upstream: score}} of the budgets of a board's ML-SUPERB
    tasks that have a score (at least one metric with fbank and the best run apart), for a summary
    table; "(partial: k/4 tasks)" when some tasks are left out."""
    out = {}
    for budget in scores.MLSUPERB_BUDGETS:
        bb = b[b["task"].astype(str).str.endswith("_" + budget) & b["task"].map(is_mlsuperb_task)]
        if bb.empty:
            continue
        s = _mlsuperb_score(bb, budget, str(bb["corpus_kind"].iloc[0]))
        n, total = len(s.tasks_used), len(scores.mlsuperb_metrics(budget))
        if n:
            out[f"ML-SUPERB score ({budget}" + ("" if n == total else f", partial: {n}/{total} tasks") + ")"] = dict(s)
    return out


def mlsuperb_sections(b: pd.DataFrame, kind: str, out_dir: Path, hdir: Path) -> Tuple[List[str], List[Path]]:
    """Markdown lines of the ML-SUPERB sections of one board (its ML-SUPERB tasks only), one per
    budget present, and the language heatmaps written into ``hdir``."""
    md: List[str] = []
    paths: List[Path] = []
    header = MLSUPERB_SYNTH_HEADER if kind == "synth" else MLSUPERB_REAL_HEADER
    for budget in scores.MLSUPERB_BUDGETS:
        bb = b[b["task"].astype(str).str.endswith("_" + budget)]
        if bb.empty:
            continue
        groups = scores.mlsuperb_metrics(budget)
        s = _mlsuperb_score(bb, budget, kind)
        task_scores = getattr(s, "task_scores", {})
        keys = [k for ks in groups.values() for k in ks]
        n_used = len(s.tasks_used)
        score_col = "ML-SUPERB score" + ("" if n_used == len(groups) else f" (partial: {n_used}/{len(groups)} tasks)")
        ups = sorted(bb["upstream"].unique(), key=lambda u: (score_rank(s.get(u, math.nan)), u))
        head = ["upstream"] + UPSTREAM_HEAD + [f"{t} {m}{arrow(m)}" for t, m in keys]
        if n_used:  # without a single scaled metric the score columns would be all dashes
            head += [MLSUPERB_GROUP_NAMES[g] for g in groups] + [score_col]
        ranks = {(t, m): metric_ranks(bb[bb["task"] == t], m, bool(scores.METRIC_HIGHER_IS_BETTER.get(m)))
                 for t, m in keys}
        rows = []
        for u in ups:
            mine = bb[bb["upstream"] == u]
            cells = [u] + upstream_cells(next((f for f in mine["facts"] if isinstance(f, dict) and f), {}))
            for t, m in keys:
                r = mine[mine["task"] == t]
                col = f"test.{m}.mean"
                rank = f" {fmt_rank(ranks[(t, m)][u])}" if u in ranks[(t, m)] else ""
                cells.append(fmt(r[col].iloc[0]) + rank if len(r) and col in r else "–")
            if n_used:
                cells += [fmt(task_scores[g].get(u, math.nan)) if g in task_scores else "–" for g in groups]
                cells.append(fmt(s.get(u, math.nan)))
            rows.append(cells)
        md += [f"### ML-SUPERB ({budget} train budget)", "", f"> {header}", "", md_table(head, rows), "",
               "Each metric cell: test mean and #rank on that metric (1 = best).", ""]
        if n_used and kind == "synth":
            md += ["Score: per metric the trivial answer's test value = 0 and the perfect value (0 % CER, 100 % "
                   "accuracy) = 1000, linear in between; mean over a task's metrics, then over the four tasks (an "
                   "upstream missing one has no score, n/a). Adding runs never moves another upstream's score.", ""]
        elif n_used:
            md += [f"Score: per metric fbank = 0 and the best upstream here = 1000; mean over a task's metrics, "
                   f"then over the tasks used ({', '.join(MLSUPERB_GROUP_NAMES[g] for g in s.tasks_used)}); an "
                   "upstream missing one of the used metrics has no score (n/a).", ""]  # fmt: skip
        else:
            md += ["No ML-SUPERB score on this board: the score puts fbank at 0 and the best run per metric at "
                   "1000, and no metric has both apart (reasons below).", ""]  # fmt: skip
        md += [n for g, why in s.tasks_skipped.items() for n in (f"Not in the score: {g}: {why}.", "")]
        for task in sorted(bb["task"].unique()):
            t = bb[bb["task"] == task]
            key, metric, _ = per_language_kind(task)
            if key in t and any(isinstance(x, dict) for x in t[key]):
                note, table = _per_language_table(t)
                md += [f"#### Per-language {metric}: {task} (test, %)", "", note, "", table, ""]
        lw = {(r["upstream"], r["task"]): r["per_language_lw"] for _, r in bb.iterrows()
              if r["task"].startswith("mono_asr_") and isinstance(r["per_language_lw"], dict)}  # fmt: skip
        drawn = plots.language_layer_heatmaps(lw, hdir)
        if drawn:
            md += [f"#### Layer weights per language (mono_asr_{budget}; softmax, percent)", ""]
            md += [" ".join(f"![{u} {t} languages]({p.relative_to(out_dir).as_posix()})"
                            for (u, t), p in drawn.items()), ""]  # fmt: skip
            paths += list(drawn.values())
    return md, paths
