"""Leaderboards from run folders (docs/design.md section 8): result.json files only, never checkpoints.

- ``scan`` / ``collect``: every finished run as one DataFrame row (metrics flattened to
  ``dev.<metric>`` / ``test.<metric>`` columns); unfinished folders and unreadable result.json
  files are counted, not read.
- ``select_best``: per (corpus, profile, upstream, task) the runs of the newest config hash only
  (runs of other configs are never pooled as seeds; the board counts those set aside), the
  learning rate whose mean dev primary metric over seeds is best (ties: the smaller lr), then
  mean and 95% interval over that lr's seeds.
  Where no run of a group has a dev value (SUPERB ASV has no dev set) the lr is chosen on test and
  the table says so.
- ``build``: one markdown file per corpus (``<out>/<corpus>.md``) plus heatmaps in
  ``<out>/<corpus>/<profile>/``; a page ends with the unreadable audio files its runs skipped
  (--skip-bad, from ``skipped_files`` in result.json), by upstream and task. Corpora are never mixed, so synth and real numbers never share a
  table. The summary has one row per upstream: its facts from result.json's ``upstream_facts``
  (parameters, layers, frame rate, what it was pre-trained on and for how many updates), then
  each task's test primary metric with its rank on that task, then the scores. Scores: on synth
  the board-relative SUPERB-style score, explained under the table; on a real corpus the
  published SUPERB and WavLM-paper scores, only for upstreams that have all of their metrics. The
  summary and its score cover the SUPERB tasks (SD and SS included); the ML-SUPERB tasks
  (``mono_asr_<budget>``, ``ml_asr_<budget>``, ``lid_ctc_<budget>``, ``asr_lid_<budget>``) get a
  section per budget instead: the ML-SUPERB score (fbank = 0, best on the board = 1000; no score
  columns when no metric has a scale) with its 7 metrics, per-language tables (CER; accuracy for
  lid_ctc) with the spread across languages and, with more than 5 languages, the worst-5 mean,
  and languages x layers heatmaps of the mono_asr runs (``extra["per_language_layer_weights"]``).
  Upstreams that are exported steps of one pre-training run (``harness pretrain --export-every``;
  the step is in their ``upstream_facts["pretraining"]``) get a "Learning curves" section: per
  run, a PNG with a panel per task (test primary metric against updates, fbank and mfcc as lines)
  and the table of its points.
  Task tables show the bare mean for one seed and flag rows that learned nothing, emitted
  near-empty transcripts (``extra["test_output_tokens"]``) or hit NaN; the runs behind each row
  (ids, config hashes, git shas, versions, machines) are in the "Run details" section at the
  bottom of the page.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from harness import plots, scores
from harness.board import absolute, manifest, versions
from harness.board import export as board_export
from harness.board.analysis_section import analysis_section, is_analysis
from harness.board.ranks import fmt_rank, rank_ranges
from harness.ablation import ablation_tables
from harness.diagnostics import diagnostics_section
from harness.environment import machine_labels
from harness.errors import HarnessError
from harness.results import RESULT, result_problem, slug

GROUP = ["corpus", "profile", "upstream", "task"]
RUN_DIR_NAME = re.compile(r"^lr.+_seed-?\d+_[0-9A-Za-z]+$")
ABSOLUTE = "absolute score"
SYNTH_HEADER = ("Absolute score on synth: each task's trivial answer = 0, its perfect value = 1000 "
                "(not comparable with published SUPERB scores)")  # fmt: skip
MLSUPERB_TASK = re.compile(r"^(mono_asr|ml_asr|lid_ctc|asr_lid)_(10min|1h)$")
MLSUPERB_SYNTH_HEADER = ("ML-SUPERB-style score on synth: per metric the trivial answer = 0, the perfect value = 1000 "
                         "(not comparable with published ML-SUPERB scores)")  # fmt: skip
MLSUPERB_REAL_HEADER = ("ML-SUPERB score: fbank = 0, best run per metric on this board = 1000 (the benchmark's "
                        "\"SOTA\" is the best value on the current leaderboard)")  # fmt: skip
MLSUPERB_GROUP_NAMES = {"mono": "mono", "multi": "multi", "lid": "LID", "asr_lid": "ASR+LID"}
WORST_K = 5
#: a transcription probe whose test output holds fewer tokens than this fraction of the references'
#: is flagged "near-empty output": it never left the CTC blank plateau for most items, whatever its
#: error rate says (at 0.2 the error rate is at least 80%)
NEAR_EMPTY = 0.2


def is_mlsuperb_task(task: str) -> bool:
    return bool(MLSUPERB_TASK.match(str(task)))


@dataclass
class Scan:
    """What a runs root holds: finished runs (DataFrame), unfinished run folders, broken results."""

    root: Path
    runs: pd.DataFrame
    unfinished: List[Path] = field(default_factory=list)
    broken: List[Tuple[Path, str]] = field(default_factory=list)


def output_ratio(tokens) -> float:
    """Output tokens / reference tokens over a run's test set, from its
    ``extra["test_output_tokens"]`` ({utterance: [hypothesis, reference]}); NaN without one."""
    if not isinstance(tokens, dict) or not tokens:
        return math.nan
    hyp, ref = (sum(int(v[i]) for v in tokens.values()) for i in (0, 1))
    return hyp / ref if ref > 0 else math.nan


def _distinct(t: pd.DataFrame, col: str) -> list:
    """The sorted distinct values of a list column of ``select_best`` rows ([] if absent)."""
    return sorted({v for row in t.get(col, pd.Series(dtype=object)) for v in (row or [])})


def probe_updates_line(t: pd.DataFrame) -> str:
    """'Probe updates: N ...' for one task's ``select_best`` rows (each run's timing), so that a
    board whose probes trained longer or shorter than another's says so; '' when none recorded."""
    steps = _distinct(t, "probe_steps")
    if not steps:
        return ""
    if len(steps) == 1:
        return f"Probe updates: {steps[0]} per run."
    return f"Probe updates: {steps[0]}-{steps[-1]} per run (they differ between these runs; see the run details)."


def probe_data_line(t: pd.DataFrame) -> str:
    """'Probe data: <corpus> <size>.' for one task's ``select_best`` rows, from the runs' recorded
    corpus size, so a task probed on a bigger generated corpus than the board's others says so
    (and a task whose upstreams were probed on different sizes is flagged); '' when no run of a
    sized corpus (a real corpus has no size)."""
    sizes = _distinct(t, "corpus_sizes")
    if not sizes:
        return ""
    corpus = str(t["corpus"].iloc[0])
    if len(sizes) == 1:
        return f"Probe data: {corpus} {sizes[0]} (its train, dev and test splits)."
    return (f"Probe data: {corpus} {', '.join(sizes)}: these upstreams were probed on different corpus sizes, "
            "so their rows do not compare; see the run details.")


def _row(r: dict, path: Path) -> dict:
    row = {k: r.get(k) for k in ("run_id", "corpus", "corpus_kind", "upstream", "upstream_family", "task",
                                 "profile", "lr", "seed", "config_hash", "git_sha", "primary_metric",
                                 "higher_is_better", "best_step", "finished_at")}  # fmt: skip
    row["profile"] = row["profile"] or "default"
    row["lr"], row["seed"] = float(r["lr"]), int(r["seed"])
    row["higher_is_better"] = bool(r["higher_is_better"])
    row["versions"] = ", ".join(f"{k} {v}" for k, v in sorted((r.get("versions") or {}).items())) or "unknown"
    row["run_dir"] = str(path.parent)
    row["train_s"] = (r.get("timing") or {}).get("train_s")
    row["probe_steps"] = (r.get("timing") or {}).get("steps")
    row["corpus_size"] = r.get("corpus_size")
    row["skipped_files"] = r.get("skipped_files") or {}
    extra = r.get("extra") or {}
    row["per_language_cer"] = extra.get("per_language_cer") or None
    row["per_language_acc"] = extra.get("per_language_acc") or None
    row["per_language_lw"] = extra.get("per_language_layer_weights") or None
    row["trivial"] = extra.get("trivial_baseline") or None
    row["learned_nothing"] = bool(r.get("learned_nothing"))
    row["output_ratio"] = output_ratio(extra.get("test_output_tokens"))
    test_primary = ((r["metrics"] or {}).get("test") or {}).get(r["primary_metric"])
    row["nan"] = bool(r.get("nan_steps")) or test_primary is None or not math.isfinite(float(test_primary))
    row["facts"] = r.get("upstream_facts") or {"family": r.get("upstream_family"), "layers": r.get("num_layers")}
    row["environment"] = r.get("environment") or None
    row["departures"] = tuple(r.get("departures") or ())
    row["phones_source"] = extra.get("phones_source")
    row["task_version"] = int(r.get("task_version") or versions.UNVERSIONED_TASK)
    row["metric_specs"] = r.get("metric_specs") or None
    row["metric_versions"] = versions.metric_signature(r.get("metric_specs"))
    row["corpus_version"] = str(r.get("corpus_version") or versions.UNVERSIONED_CORPUS)
    oracle = ((extra.get("oracle") or {}).get("test") or {}).get(r["primary_metric"])
    row["oracle"] = float(oracle) if oracle is not None else math.nan
    lw = r.get("layer_weights") or {}
    row["lw_softmax"], row["lw_corrected"] = lw.get("softmax"), lw.get("corrected")
    for split in ("dev", "test"):
        for m, v in ((r["metrics"] or {}).get(split) or {}).items():
            row[f"{split}.{m}"] = math.nan if v is None else float(v)
    return row


def scan(runs_root) -> Scan:
    """Read every result.json under ``runs_root``; count unfinished folders and broken files."""
    root = Path(runs_root)
    rows, broken = [], []
    for p in sorted(root.rglob(RESULT)) if root.is_dir() else []:
        try:
            r = json.loads(p.read_text())
            if is_analysis(r):  # a `harness analyze` run: the Layer analysis section reads it
                continue
            why = result_problem(r)
            if why:
                raise ValueError(why)
            rows.append(_row(r, p))
        except (ValueError, TypeError, AttributeError, OSError) as e:
            broken.append((p, str(e)))
    unfinished = []
    for d in sorted(root.rglob("*")) if root.is_dir() else []:
        looks_like_run = RUN_DIR_NAME.match(d.name) or (d / "config.json").is_file() or (d / "progress.json").is_file()
        if d.is_dir() and looks_like_run and not (d / RESULT).exists():
            unfinished.append(d)
    return Scan(root, pd.DataFrame(rows), unfinished, broken)


def collect(runs_root) -> pd.DataFrame:
    """Finished runs under ``runs_root`` as a DataFrame (one row per result.json)."""
    s = scan(runs_root)
    if s.runs.empty:
        where = "" if Path(runs_root).is_dir() else " (the folder does not exist)"
        raise HarnessError(f"no finished runs were found under {runs_root}{where}")
    return s.runs


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
    (``newest_config``; older configs are counted in ``set_aside``): the dev-best lr (by mean over seeds) and
    ``<split>.<metric>.mean`` / ``.ci`` over its seeds, the runs' ids, hashes, shas, versions."""
    metric_cols = [c for c in df.columns if c.startswith(("dev.", "test."))]
    out = []
    for key, g in df.groupby(GROUP, sort=True):
        g, set_aside = newest_config(g)
        primary = g["primary_metric"].iloc[0]
        hib = bool(g["higher_is_better"].iloc[0])
        if g["primary_metric"].nunique() != 1 or g["higher_is_better"].nunique() != 1:
            raise HarnessError(f"runs of {'/'.join(map(str, key))} disagree on the primary metric or its direction")
        split = "dev" if f"dev.{primary}" in g and g[f"dev.{primary}"].notna().any() else "test"
        col = f"{split}.{primary}"
        by_lr = pd.Series(dtype=float)  # mean over seeds per lr; NaN when a seed has no value (diverged)
        if col in g:
            by_lr = g.groupby("lr")[col].apply(lambda v: v.mean() if v.notna().all() else math.nan)
        valid = by_lr.dropna()
        if valid.empty:
            lr = float(min(g["lr"]))
        else:
            best = valid.max() if hib else valid.min()
            lr = float(min(valid.index[valid == best]))
        c = g[g["lr"] == lr].sort_values("seed")
        row = dict(zip(GROUP, key))
        row.update(corpus_kind=c["corpus_kind"].iloc[0], upstream_family=c["upstream_family"].iloc[0],
                   primary_metric=primary, higher_is_better=hib, lr=lr, selected_on=split,
                   n_seeds=len(c), seeds=c["seed"].tolist(), run_ids=c["run_id"].tolist(),
                   config_hashes=sorted(set(c["config_hash"].astype(str))), set_aside=set_aside,
                   git_shas=sorted(set(c["git_sha"].astype(str))), versions=sorted(set(c["versions"].astype(str))),
                   lr_scores={float(k): float(v) for k, v in by_lr.items()},
                   lw_softmax=_mean_lists(c["lw_softmax"]), lw_corrected=_mean_lists(c["lw_corrected"]),
                   per_language_cer=_mean_dicts(c["per_language_cer"]) if "per_language_cer" in c else None,
                   per_language_acc=_mean_dicts(c["per_language_acc"]) if "per_language_acc" in c else None,
                   per_language_lw=_mean_list_dicts(c["per_language_lw"]) if "per_language_lw" in c else None,
                   trivial=next((x for x in c["trivial"] if x), None) if "trivial" in c else None,
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


# ---------------------------------------------------------------- markdown


def fmt(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.2f}" if abs(x) >= 1 or x == 0 else f"{x:.3g}"


def fmt_ci(mean, ci) -> str:
    """"mean ± ci"; the bare mean where there is no interval (one seed)."""
    if ci is None or (isinstance(ci, float) and not math.isfinite(ci)):
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt(ci)}"


def md_table(headers: List[str], rows: List[List[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def _arrow(metric: str, hib: bool | None = None) -> str:
    hib = scores.METRIC_HIGHER_IS_BETTER.get(metric) if hib is None else hib
    return "" if hib is None else (" ↑" if hib else " ↓")


def _metrics(b: pd.DataFrame, split: str) -> List[str]:
    return sorted({c.split(".")[1] for c in b.columns if c.startswith(f"{split}.") and c.endswith(".mean")
                   and b[c].notna().any()})  # fmt: skip


def _task_table(t: pd.DataFrame) -> str:
    """One row per upstream (best test primary first): test metrics, dev primary, the lr choice and
    the seed count; the runs behind each row are in the page's run details (``details_table``)."""
    primary, hib = t["primary_metric"].iloc[0], bool(t["higher_is_better"].iloc[0])
    t = t.sort_values(f"test.{primary}.mean", ascending=not hib, na_position="last")
    others = [m for m in _metrics(t, "test") if m != primary]
    head = ["upstream", f"test {primary}{_arrow(primary, hib)} (mean ± 95% CI)"]
    head += [f"test {m}{_arrow(m)}" for m in others]
    head += [f"dev {primary}", "lr", "selected on", "mean per lr", "seeds"]
    rows = []
    for _, r in t.iterrows():
        mark = " †" if r.get("departures") else ""
        cells = [r["upstream"], fmt_ci(r.get(f"test.{primary}.mean"), r.get(f"test.{primary}.ci")) + mark + flags(r)]
        cells += [fmt_ci(r.get(f"test.{m}.mean"), r.get(f"test.{m}.ci")) for m in others]
        cells += [fmt_ci(r.get(f"dev.{primary}.mean"), r.get(f"dev.{primary}.ci")), f"{r['lr']:g}",
                  r["selected_on"] + ("" if r["selected_on"] == "dev" else " (no dev set)"),
                  ", ".join(f"{k:g}: {fmt(v)}" for k, v in sorted(r["lr_scores"].items())), str(r["n_seeds"])]
        rows.append(cells)
    return md_table(head, rows)


def details_table(b: pd.DataFrame) -> str:
    """The runs behind every task-table row of a board, keyed by (task, upstream): lr, seeds, run
    ids, config hashes, git shas, versions and machines."""
    rows = []
    for _, r in b.sort_values(["task", "upstream"]).iterrows():
        rows.append([r["task"], r["upstream"], f"{r['lr']:g}", ", ".join(map(str, r["seeds"])), ", ".join(r["run_ids"]),
                     ", ".join(r["config_hashes"]), ", ".join(r["git_shas"]), "; ".join(r["versions"]),
                     "; ".join(r["machines"])])  # fmt: skip
    return md_table(["task", "upstream", "lr", "seeds", "run ids", "config hash", "git sha", "versions", "machine"],
                    rows)


FLAG_LEGEND = ("⚠ flags on a row (k/n = seeds of the selected lr): *learned nothing*: its dev metric never beat "
               "the task's trivial answer; *near-empty output*: its test transcripts hold fewer than "
               f"{NEAR_EMPTY:.0%} of the reference tokens (it never left the CTC blank plateau; the ratio is "
               "shown); *NaN*: non-finite loss steps were skipped or a test metric is NaN; *substitute phones*: PR on a "
               "real corpus scored on espeak phones instead of SUPERB's lexicon. †: a stated departure from the "
               "reference recipe, given under the task table.")


def flags(r) -> str:
    """" ⚠ ..." for the seeds of a row that learned nothing, emitted (near-)empty output or hit NaN."""
    n = r["n_seeds"]
    out = []
    k = int(r.get("learned_nothing") or 0)
    if k:
        out.append(f"learned nothing ({k}/{n} seeds)")
    k = int(r.get("empty_output") or 0)
    if k:
        out.append(f"near-empty output ({k}/{n} seeds; output/reference tokens {fmt(r['output_ratio'])})")
    k = int(r.get("nan_runs") or 0)
    if k:
        out.append(f"NaN ({k}/{n} seeds)")
    k = int(r.get("substitute_phones") or 0)
    if k and r.get("corpus_kind") == "real":  # synth's reference phones are espeak's by construction
        out.append(f"substitute phones ({k}/{n} seeds: espeak, not SUPERB's lexicon; pass --lexicon FILE)")
    return "".join(f" ⚠ {x}" for x in out)


def _set_aside_notes(t: pd.DataFrame) -> List[str]:
    """One line per row of a task table whose group had runs of older configs (not pooled)."""
    out = []
    for _, r in t.sort_values("upstream").iterrows():
        older = r.get("set_aside") or {}
        if older:
            runs = sum(older.values())
            out.append(f"{r['upstream']}: {len(older)} older config(s) set aside ({runs} run(s), config hash "
                       f"{', '.join(older)}); only the newest config ({', '.join(r['config_hashes'])}) is shown, "
                       "runs of different configs are never pooled as seeds.")
    return out


MIN_SEEDS_COMPARED = 3


def seed_comparisons(b: pd.DataFrame) -> str:
    """For each task where two or more upstreams have >= 3 probe seeds, every pair of them: test
    means with 95% intervals and whether one beats the other beyond both intervals (the intervals
    do not overlap) or the difference lies within them. Read off the run folders, whichever way
    it falls (e.g. WavLM vs HuBERT on SD / SS at equal pre-training updates)."""
    out = []
    for task, t in b.groupby("task", sort=True):
        pm, hib = t["primary_metric"].iloc[0], bool(t["higher_is_better"].iloc[0])
        mean, ci = f"test.{pm}.mean", f"test.{pm}.ci"
        if mean not in t:
            continue
        t = t[(t["n_seeds"] >= MIN_SEEDS_COMPARED) & t[mean].notna()].sort_values("upstream")
        recs = t.to_dict("records")
        for i in range(len(recs)):
            for j in range(i + 1, len(recs)):
                a, c = recs[i], recs[j]
                ma, ca, mc, cc = a[mean], a[ci], c[mean], c[ci]
                better = (ma > mc) == hib
                win, lose = (a, c) if better else (c, a)
                apart = (ma - ca > mc + cc) or (mc - cc > ma + ca)
                verdict = (f"{win['upstream']} better beyond the intervals" if apart
                           else f"within the intervals ({win['upstream']} ahead by {fmt(abs(ma - mc))})")
                out.append([task, f"{pm}{_arrow(pm, hib)}", a["upstream"], fmt_ci(ma, ca), f"{a['n_seeds']}",
                            c["upstream"], fmt_ci(mc, cc), f"{c['n_seeds']}", verdict])
    if not out:
        return ""
    return md_table(["task", "metric", "upstream A", "A (test, mean ± 95% CI)", "A seeds", "upstream B",
                     "B (test, mean ± 95% CI)", "B seeds", "verdict"], out)


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


def _rank(score) -> Tuple[int, float]:
    v = _value(score)
    return (0, -v) if math.isfinite(v) else (1, 0.0)


def fmt_score(score) -> str:
    return fmt_ci(*score) if isinstance(score, tuple) else fmt(score)


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


def fmt_params(n) -> str:
    """Parameter count as 0, 12.3k, 1.21M, 94.4M, 1.2G ("–" when unknown)."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    n = int(n)
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


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
        ups.sort(key=lambda u: _rank(first.get(u, math.nan)))
    board_ranks = {k: rank_ranges({u: v if isinstance(v, tuple) else (v, math.nan) for u, v in s.items()}, True)
                   for k, s in board.items()}
    head = ["upstream"] + UPSTREAM_HEAD + [f"{t} {prim[t]}{_arrow(prim[t], hib[t])}" for t in tasks] + list(board)
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


def _trivial_table(b: pd.DataFrame) -> str:
    """Per task: the trivial answer its runs scored on test (the same test set for every
    upstream; the fbank run's when present), "" if no run saved one."""
    rows = []
    for task, t in b.groupby("task", sort=True):
        t = t[t["trivial"].map(bool)] if "trivial" in t else t.iloc[0:0]
        if t.empty:
            continue
        r = t.sort_values(by="upstream", key=lambda u: u != "fbank").iloc[0]["trivial"]
        hib = bool(b[b["task"] == task]["higher_is_better"].iloc[0])
        pm = b[b["task"] == task]["primary_metric"].iloc[0]
        cells = [f"{m}{_arrow(m, hib if m == pm else None)} {fmt(v)}" for m, v in r["test"].items()]
        rows.append([task, r["what"], "; ".join(cells)])
    return md_table(["task", "trivial answer (no model)", "test"], rows) if rows else ""


def _long_test_table(b: pd.DataFrame) -> pd.DataFrame:
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
    return scores.mlsuperb_score(_long_test_table(bb), budget, require_all=False)


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
        ups = sorted(bb["upstream"].unique(), key=lambda u: (_rank(s.get(u, math.nan)), u))
        head = ["upstream"] + UPSTREAM_HEAD + [f"{t} {m}{_arrow(m)}" for t, m in keys]
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


def is_step_export(upstream: str) -> bool:
    """True for a pre-training step export (`<recipe>-it<k>-step<NNNNNN>`, harness pretrain
    --export-every): shown in the learning curves, not as rows of the summary and task tables."""
    return re.search(r"-it\d+-step\d{6}$", upstream) is not None


#: the hand-made features a learning curve is drawn against
CURVE_BASELINES = ("fbank", "mfcc")


def learning_curve_points(b: pd.DataFrame) -> Dict[str, pd.DataFrame]:
    """The learning-curve points of one board (``select_best`` rows of one corpus and profile):
    {pre-training run "<recipe>-it<k>": its points}, for runs with at least two exported steps
    on the board. An upstream is a point of its run when its ``upstream_facts["pretraining"]``
    records a step (``harness pretrain --export-every``'s exports, and the iteration's final
    export); each point is a (task, step) with the test primary metric's mean and 95% interval
    over seeds, sorted by task and updates.

    ``minutes`` count like ``updates``: the pre-training minutes behind the weights, those of the
    iterations the run continues from included (an export records its own iteration's time; the
    earlier iteration's end is read from its final export's point on this board, NaN when that
    export was not probed here)."""
    rows = []
    for _, r in b.iterrows():
        pre = (r.get("facts") or {}).get("pretraining")
        if not isinstance(pre, dict) or pre.get("step") is None or not pre.get("recipe"):
            continue
        pm = r["primary_metric"]
        secs = pre.get("train_seconds")
        rows.append({"run": f"{pre['recipe']}-it{pre.get('iteration', 1)}", "task": r["task"], "metric": pm,
                     "higher_is_better": bool(r["higher_is_better"]), "upstream": r["upstream"],
                     "updates": int(pre.get("updates") or pre["step"]), "step": int(pre["step"]),
                     "minutes": math.nan if secs is None else float(secs) / 60,
                     "mean": r.get(f"test.{pm}.mean", math.nan), "ci": r.get(f"test.{pm}.ci", math.nan),
                     "n_seeds": int(r["n_seeds"]), "iteration": int(pre.get("iteration", 1)),
                     "lineage": (pre["recipe"], pre.get("pretrain_seed", 0))})
    if not rows:
        return {}
    df = pd.DataFrame(rows)
    # iteration k's exports carry updates - step updates of the iterations before it: its minutes
    # start where the earlier iteration's export with that many updates (its final one) ended
    ended: Dict[tuple, float] = {}
    for k in sorted(df["iteration"].unique()):
        at = df.index[df["iteration"] == k]
        for i in at:
            carried = int(df.at[i, "updates"] - df.at[i, "step"])
            if carried:
                df.at[i, "minutes"] += ended.get((df.at[i, "lineage"], k - 1, carried), math.nan)
        ended.update({(df.at[i, "lineage"], k, int(df.at[i, "updates"])): df.at[i, "minutes"] for i in at})
    return {run: g.sort_values(["task", "updates"]).reset_index(drop=True)
            for run, g in df.groupby("run", sort=True) if g["updates"].nunique() >= 2}


def learning_curve_section(b: pd.DataFrame, out_dir: Path, hdir: Path) -> Tuple[List[str], List[Path]]:
    """Markdown lines of a board's "Learning curves" section and the PNGs written into ``hdir``
    (one per pre-training run, a panel per task with two or more points, fbank and mfcc as lines);
    ([], []) when no run has two exported steps on the board."""
    curves = learning_curve_points(b)
    if not curves:
        return [], []
    md = ["### Learning curves (test primary metric against pre-training updates)", "",
          "Each point: an export of the pre-training run after that many updates (`harness pretrain "
          "--export-every`), probed like any upstream (mean ± 95% interval over the seeds of its dev-best lr; "
          "the step exports appear only here and in the run details); "
          f"dashed lines: {' and '.join(CURVE_BASELINES)} with their intervals as bands. Minutes: the "
          "pre-training time behind the weights, as the updates count it (an iteration that continues "
          "from an earlier one starts at that one's end).", ""]
    paths = []
    for run, pts in curves.items():
        panels, rows = {}, []
        for task, g in pts.groupby("task", sort=True):
            col = f"test.{g['metric'].iloc[0]}"
            base = {r["upstream"]: (float(r[f"{col}.mean"]), float(r.get(f"{col}.ci", math.nan)))
                    for _, r in b[(b["task"] == task) & b["upstream"].isin(CURVE_BASELINES)].iterrows()
                    if pd.notna(r.get(f"{col}.mean"))}
            metric = g["metric"].iloc[0]
            if g["updates"].nunique() >= 2:  # a single point (the final export alone) is no curve: table only
                panels[task] = {"metric": f"test {metric}{_arrow(metric, bool(g['higher_is_better'].iloc[0]))}",
                                "points": list(zip(g["updates"], g["mean"], g["ci"], g["minutes"])), "baselines": base}
            for _, p in g.iterrows():
                rows.append([task, metric, str(p["updates"]), fmt(p["minutes"]), p["upstream"],
                             fmt_ci(p["mean"], p["ci"]), str(p["n_seeds"])]
                            + [fmt_ci(*base[u]) if u in base else "–" for u in CURVE_BASELINES])
        path = plots.learning_curve(panels, hdir / plots.learning_curve_name(run), title=f"{run}: learning curve")
        paths.append(path)
        md += [f"#### {run}", "", f"![{run} learning curve]({path.relative_to(out_dir).as_posix()})", "",
               md_table(["task", "metric", "updates", "minutes", "upstream", "test (mean ± 95% CI)", "seeds",
                         *CURVE_BASELINES], rows), ""]
    return md, paths


def render_corpus(best: pd.DataFrame, corpus: str, out_dir: Path, n_runs: int,
                  runs_root: Optional[Path] = None, set_aside: Sequence[str] = ()) -> Tuple[str, List[Path]]:
    """Markdown for one corpus (links relative to ``out_dir``) and the heatmap files written;
    ``runs_root``: where to look for the pre-training run folders of the diagnostics section."""
    out_dir = Path(out_dir)
    c = best[best["corpus"] == corpus]
    kinds = sorted(set(c["corpus_kind"]))
    if len(kinds) != 1:
        raise HarnessError(f"corpus {corpus!r} has runs of several kinds ({', '.join(kinds)}); they cannot share a board")
    kind = kinds[0]
    md = [f"# Leaderboard: {corpus} ({kind})", ""]
    if kind == "synth":
        md += [f"> {SYNTH_HEADER}", ""]
    md += [f"{n_runs} finished runs. Each cell: test mean ± 95% Student-t half-width over the seeds of the "
           "learning rate whose mean dev primary metric is best (\"mean per lr\" lists those means); the bare "
           "mean where that lr has one seed. The runs behind every row (run ids, config hashes, git shas, "
           "versions, machines) are listed under [Run details](#run-details) at the bottom.", ""]
    versions_here = sorted({f"{r['task']} v{r['task_version']}" for _, r in c.iterrows()})
    md += [f"Corpus version {', '.join(sorted(set(c['corpus_version'])))}; task versions: {', '.join(versions_here)}. "
           "Runs of any other corpus or task version are never pooled, ranked or scored with these"
           + (": " + " ".join(set_aside) if set_aside else " (none were found)."), ""]
    paths: List[Path] = []
    details: List[str] = []
    for profile, b in c.groupby("profile", sort=True):
        hdir = out_dir / slug(corpus) / slug(str(profile))
        everything = b
        if not b["upstream"].map(is_step_export).all():  # step exports: learning curves only
            b = b[~b["upstream"].map(is_step_export)]
        is_ml = b["task"].map(is_mlsuperb_task)
        md += [f"## Profile: {profile}", ""]
        if (~is_ml).any():
            sb = b[~is_ml]
            board, notes = board_scores(sb, kind)
            md += ["### Summary (test primary metrics)", "", summary_table(sb, board), "", RANK_NOTE, ""]
            md += [n for note in notes for n in (note, "")]
        if any(flags(r) for _, r in b.iterrows()):
            md += [FLAG_LEGEND, ""]
        if is_ml.any():
            ml_md, ml_paths = mlsuperb_sections(b[is_ml], kind, out_dir, hdir)
            md += ml_md
            paths += ml_paths
        trivial = _trivial_table(b)
        if trivial:
            md += ["### Trivial baselines (test)", "", "What a probe scores if it has learned nothing: each task's "
                   "trivial answer, scored on the test set like the probes.", "", trivial, ""]
        compared = seed_comparisons(b)
        if compared:
            md += [f"### Multi-seed comparisons (test; pairs of upstreams with >= {MIN_SEEDS_COMPARED} probe seeds)",
                   "", "Each probe of these upstreams was trained with several seeds at its dev-best lr; a "
                   "difference counts only when the two 95% intervals do not overlap.", "", compared, ""]
        abl = ablation_tables(b)
        if abl:
            md += ["### Ablations", ""] + [x for block in abl for x in (block, "")]
        for task, t in b.groupby("task", sort=True):
            pm = t["primary_metric"].iloc[0]
            direction = "higher is better" if t["higher_is_better"].iloc[0] else "lower is better"
            md += [f"### Task {task} (primary: {pm}, {direction}; task version {t['task_version'].iloc[0]})", "",
                   _task_table(t), ""]
            md += [n for line in (probe_updates_line(t), probe_data_line(t)) if line for n in (line, "")]
            deps = sorted({d for ds in t["departures"] for d in ds}) if "departures" in t else []
            if deps:
                md += ["† Departure from the reference recipe kept by this harness: " + "; ".join(deps) + ".", ""]
            md += [n for line in _set_aside_notes(t) for n in (line, "")]
        curve_md, curve_paths = learning_curve_section(everything, out_dir, hdir)
        md += curve_md
        paths += curve_paths
        diag_md, diag_paths = diagnostics_section(b, runs_root, out_dir, hdir)
        md += diag_md
        paths += diag_paths
        weights = {(r["upstream"], r["task"]): {"softmax": r["lw_softmax"], "corrected": r["lw_corrected"]}
                   for _, r in b.iterrows()}  # fmt: skip
        drawn = plots.layer_heatmaps(weights, hdir)
        if drawn:
            single = sorted({u for (u, _), w in weights.items() if 0 < len(w["softmax"] or []) <= 1})
            md += ["### Layer weights (percent; raw softmax, then norm-corrected)", "",
                   "All task heatmaps share one colour scale, and all upstream heatmaps another, so a colour is the "
                   "same percentage across them. A red dot marks a weight above its row's uniform weight 1/(L+1) "
                   "(what every layer would get if the probe had no preference)."
                   + (f" Single-layer upstreams ({', '.join(single)}) weigh nothing and are not drawn."
                      if single else ""),
                   ""]
            for label, files in drawn.items():
                what, name = label.split(":", 1)
                md += [f"#### {'Upstream' if what == 'upstream' else 'Task'} {name}", ""]
                md += [" ".join(f"![{name} {p.stem.rsplit('_', 1)[-1]}]({p.relative_to(out_dir).as_posix()})"
                                for p in files), ""]  # fmt: skip
                paths += files
        details += [f"### Profile: {profile}", "", details_table(everything), ""]
    analysis_md, analysis_paths = analysis_section(runs_root, corpus, c, out_dir)
    md += analysis_md
    paths += analysis_paths
    md += ["## Run details", "", "The runs behind each task-table row, keyed by task and upstream (the selected lr's "
           "seeds).", ""] + details
    return "\n".join(md), paths


def skipped_section(runs: pd.DataFrame) -> List[str]:
    """Markdown lines naming, per upstream and task, the unreadable audio files its runs skipped
    (--skip-bad, at manifest or decode time); [] when none did."""
    out = []
    for (up, task), g in runs.groupby(["upstream", "task"], sort=True):
        files = sorted({Path(v.split(": ", 1)[0]).name for d in g["skipped_files"] for v in d.values()})
        if files:
            shown = ", ".join(files[:10]) + (f", ... ({len(files) - 10} more)" if len(files) > 10 else "")
            out.append(f"- {up} / {task}: {len(files)} unreadable audio file(s) skipped (--skip-bad): {shown}")
    return ["## Skipped audio files", "", *out, ""] if out else []


def select_board(runs: pd.DataFrame) -> Tuple[pd.DataFrame, List[str]]:
    """``select_best`` over the runs a board may pool (``versions.split_by_version``), and one
    line per set-aside group: what every page, report and comparison reads."""
    kept, notes = versions.split_by_version(runs)
    return select_best(kept), notes


def unreadable_section(s: Scan, corpus: str) -> List[str]:
    """Markdown naming every result.json under this corpus's folder of the run store (or under no
    corpus folder) that could not be read, with why: those runs are not on the board."""
    pages = {slug(c) for c in s.runs["corpus"].unique()} if not s.runs.empty else set()
    out = []
    for p, why in s.broken:
        top = p.relative_to(s.root).parts[0]
        if top == slug(corpus) or top not in pages:
            out.append(f"- `{p.relative_to(s.root).as_posix()}`: {why}")
    if not out:
        return []
    return ["## Unreadable results", "", f"{len(out)} result.json file(s) could not be read and are not on this "
            "board (`harness eval` redoes such a run):", "", *out, ""]


def build_from_scan(s: Scan, out_dir, formats: Sequence[str] = ()) -> Tuple[List[Path], Dict[str, str]]:
    """Write the corpus pages of a scan, ``board.json`` (and ``board.<fmt>`` per ``formats``:
    harness.board.export) and the manifest; returns (written paths, {corpus: markdown}).

    Files an earlier build listed in the manifest and this one did not write again (a heatmap of
    an upstream no longer on the board) are deleted; no other file in ``out_dir`` ever is."""
    if s.runs.empty:
        raise HarnessError(f"no finished runs were found under {s.root}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    best, set_aside = select_board(s.runs)
    earlier = manifest.read(out_dir)
    data_files = board_export.write_board(best, out_dir, formats)  # an unknown format fails before any page
    written, pages = [], {}
    for corpus in sorted(best["corpus"].unique()):
        n = int((s.runs["corpus"] == corpus).sum())
        aside = [x for x in set_aside if x.startswith(f"{corpus}:") or x.startswith(f"{corpus} /")]
        md, pngs = render_corpus(best, corpus, out_dir, n, s.root, aside)
        md = "\n".join([md, *skipped_section(s.runs[s.runs["corpus"] == corpus]), *unreadable_section(s, corpus)])
        page = out_dir / f"{slug(corpus)}.md"
        page.write_text(md + "\n")
        written += [page] + pngs
        pages[corpus] = md
    written += data_files
    manifest.replace(out_dir, earlier, written)
    return written, pages


def build(runs_root, out_dir, formats: Sequence[str] = (), log=print) -> List[Path]:
    """Leaderboard markdown per corpus (``out_dir/<corpus>.md``) plus heatmaps, ``board.json`` and
    ``board.<fmt>`` for each of ``formats`` (csv | json | parquet); returns the paths. Every
    result.json that could not be read is named to ``log``, one line each, and on the page."""
    s = scan(runs_root)
    for p, why in s.broken:
        log(f"unreadable result {p} ({why}): left off the board")
    if s.runs.empty:
        collect(runs_root)  # raises the "no finished runs" error with the path
    return build_from_scan(s, out_dir, formats)[0]
