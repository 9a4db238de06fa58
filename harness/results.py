"""Run folders: one per (upstream, task, lr, seed, config hash), finished when result.json exists.

Layout of a run folder `RUNS/<corpus>/<upstream-slug>/<task>/lr<lr>_seed<seed>_<confighash>/`:
  config.json         the resolved configuration (what the hash is computed from)
  progress.json       written while training (best dev so far); never read by reports
  result.json         written last, atomically: everything reports need (schema below)

result.json keys:
  run_id, corpus, corpus_kind ("synth" | "real"), upstream, upstream_family, task, profile,
  lr, seed, config_hash, git_sha, versions {python, torch, torchaudio, harness, ...}, layer_norm,
  primary_metric, higher_is_better, metrics {"dev": {...}, "test": {...}},
  extra {task-specific tables, e.g. per-language CER},
  layer_weights {"softmax": [L+1], "layer_norm": [L+1], "corrected": [L+1]},
  timing {"features_s", "train_s", "total_s", "steps"}, best_step, nan_steps, skipped_bad (count of
  unreadable audio files skipped, at manifest and decode time), skipped_files {utterance id:
  "path: reason"},
  learned_nothing (the dev metric never beat the task's trivial answer; null: the task has none),
  trivial_dev (that answer's dev primary metric), environment (harness.environment: CPU, ISA,
  threads, torch and its backend flags), finished_at (ISO time)
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List

RESULT = "result.json"


def slug(name: str) -> str:
    """A file-system-safe, readable form of an upstream name ("random:hubert_tiny" -> "random-hubert_tiny");
    never "", "." or ".." nor hidden (a leading dot gets "_" before it), so a run folder stays inside
    the runs store whatever the name."""
    s = re.sub(r"[^A-Za-z0-9_.+-]+", "-", str(name)).strip("-")
    return "_" + s if not s or s.startswith(".") else s


def run_dir(root: Path, corpus: str, upstream: str, task: str, lr: float, seed: int, config_hash: str) -> Path:
    return Path(root) / slug(corpus) / slug(upstream) / task / f"lr{lr:g}_seed{seed}_{config_hash}"


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON to a temp file in the same folder, fsync, then rename over `path` (with the mode
    the umask gives a new file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from harness.diskio import umask_mode

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, umask_mode())  # mkstemp's 0600 would keep the rest of a group out
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True, default=float)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


#: the keys every reader of result.json relies on (the board, compare, a rerun's skip)
REQUIRED = ("run_id", "corpus", "corpus_kind", "upstream", "task", "lr", "seed", "primary_metric",
            "higher_is_better", "metrics")


def result_problem(r: Any) -> str | None:
    """Why a parsed result.json cannot be trusted (None: it can): a key missing, metrics that
    are not dev and test tables of numbers, a direction that is not a JSON boolean (the string
    "false" would read as true), an lr or seed that is not a number."""
    if not isinstance(r, dict):
        return f"not a JSON object ({type(r).__name__})"
    missing = [k for k in REQUIRED if k not in r]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    if not isinstance(r["higher_is_better"], bool):
        return f"higher_is_better must be true or false, got {r['higher_is_better']!r}"
    for k, typ in (("lr", (int, float)), ("seed", int)):
        if isinstance(r[k], bool) or not isinstance(r[k], typ):
            return f"{k} must be a number, got {r[k]!r}"
    m = r["metrics"]
    if not isinstance(m, dict) or not all(isinstance(m.get(s), dict) for s in ("dev", "test")):
        return "metrics must hold a dev and a test table"
    for split in ("dev", "test"):
        for name, v in m[split].items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                return f"metrics.{split}.{name} must be a number, got {v!r}"
    return None


def read_result(folder: Path) -> tuple:
    """(result, None) for a sound result.json in `folder`; (None, None) when there is none;
    (None, why) when it is there but unreadable, truncated or incomplete (`result_problem`)."""
    path = Path(folder) / RESULT
    if not path.exists():
        return None, None
    try:
        r = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"{type(e).__name__}: {' '.join(str(e).split())[:120]}"
    why = result_problem(r)
    return (None, why) if why else (r, None)


def is_finished(folder: Path) -> bool:
    """A run is finished when its result.json is there and sound; a damaged one is redone."""
    return read_result(folder)[0] is not None


def iter_results(root: Path) -> Iterator[Dict[str, Any]]:
    """Every finished run's sound result.json under `root` (unfinished folders and damaged results,
    which the board names, are left out)."""
    for p in sorted(Path(root).rglob(RESULT)):
        r, _ = read_result(p.parent)
        if r is None:
            continue
        r["run_dir"] = str(p.parent)
        yield r


def git_sha() -> str:
    """The source tree's commit (with "+dirty" when it has uncommitted changes), or "unknown"."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return (sha + ("+dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> Dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("harness", "torch", "torchaudio", "lhotse", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def load_results(root: Path) -> List[Dict[str, Any]]:
    return list(iter_results(root))
