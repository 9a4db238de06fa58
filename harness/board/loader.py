"""The board's loader: every finished run under a runs root as one DataFrame row.

``scan`` reads each ``result.json`` (result.json files only, never checkpoints; metrics flattened
to ``dev.<metric>`` / ``test.<metric>`` columns); folders that look like runs without a
result.json are counted as unfinished, and unreadable or malformed result.json files are
counted with why, never read. ``collect`` is ``scan`` that fails when nothing finished.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Tuple

import pandas as pd

from harness.board import versions
from harness.board.analysis_section import is_analysis
from harness.errors import HarnessError
from harness.results import RESULT, result_problem

#: a run folder's name (harness.results.run_dir): lr<lr>_seed<seed>_<config hash>
RUN_DIR_NAME = re.compile(r"^lr.+_seed-?\d+_[0-9A-Za-z]+$")


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


def _row(r: dict, path: Path) -> dict:
    """The DataFrame row of one result.json `r` read from `path`: its identity, provenance, flags
    and every metric as ``<split>.<metric>`` (NaN where the result has None)."""
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
    row["language_classes"] = (extra.get("budget") or {}).get("language_classes") or None
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
    row["ctc_floor"] = extra.get("ctc_floor_test") or None
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
