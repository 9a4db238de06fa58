"""The board's "Pre-training diagnostics" section: what a researcher asks of a pre-training run
besides its probe scores, read from the pre-training run folders under the runs root
(``<recipe out>/iter<k>/summary.json`` and ``curves.png``, written by harness.pretrain.run) and
from the board's own probe rows (their layer weights).

- one row per pre-training iteration whose upstream is on the board: the labels it learned
  (source, K, PNMI and phone purity on dev, codebook usage), the held-out masked / unmasked
  accuracy against the majority-label rate, updates and training time, and its curves PNG;
- where probes put their weight: per pre-trained upstream and task, the softmax-weighted mean
  layer index (0 = the transformer input, L = the last layer), so speaker and content tasks can be
  compared (the WavLM paper's figure 2 finds speaker tasks on lower layers).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pandas as pd

from harness.board.markdown import md_table
from harness.results import slug


def pretraining_summaries(runs_root: Path, names) -> Dict[str, dict]:
    """{iteration name: its summary.json} for the pre-training iterations under `runs_root` whose
    upstream name is in `names`; the newest summary wins when a name appears twice."""
    found: Dict[str, Tuple[str, dict, Path]] = {}
    root = Path(runs_root)
    for p in sorted(root.rglob("iter*/summary.json")) if root.is_dir() else []:
        try:
            s = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        name = s.get("name")
        if name not in names or "label_quality" not in s:
            continue
        stamp = str(s.get("finished_at") or "")
        if name not in found or stamp > found[name][0]:
            found[name] = (stamp, {**s, "_dir": str(p.parent)}, p.parent)
    return {n: v[1] for n, v in sorted(found.items())}


def _f(v, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def mean_layer(weights) -> Optional[float]:
    """Softmax-weighted mean layer index of a probe's layer weights (None without weights)."""
    if not weights or len(weights) < 2:
        return None
    total = float(sum(weights))
    return sum(i * float(w) for i, w in enumerate(weights)) / total if total > 0 else None


def diagnostics_section(b: pd.DataFrame, runs_root: Optional[Path], out_dir: Path, hdir: Path) -> Tuple[List[str], List[Path]]:
    """Markdown lines of the section and the PNGs copied into ``hdir``; ([], []) when no
    pre-training iteration of the board's upstreams is found under ``runs_root``."""
    if runs_root is None:
        return [], []
    names = set(b["upstream"])
    found = pretraining_summaries(runs_root, names)
    if not found:
        return [], []
    rows, paths = [], []
    for name, s in found.items():
        feats = s.get("features") or {}
        src = ("MFCC" if feats.get("source") == "mfcc" else
               f"layer {feats.get('layer')} of it{s['iteration'] - 1}" if feats.get("source") == "layer" else "–")
        if s.get("continues"):
            src = f"it{s['continues']}'s labels (continued)"
        q = (s.get("label_quality") or {}).get("dev") or {}
        tr = s.get("train") or {}
        acc, un = s.get("masked_acc") or {}, s.get("unmasked_acc") or {}
        curves = Path(s["_dir"]) / "curves.png"
        link = "–"
        if curves.is_file():
            hdir.mkdir(parents=True, exist_ok=True)
            dst = hdir / f"pretrain_{slug(name)}.png"
            shutil.copyfile(curves, dst)
            paths.append(dst)
            link = f"[curves]({dst.relative_to(out_dir).as_posix()})"
        minutes = tr.get("train_seconds")
        rows.append([name, src, str(s.get("k", "–")), _f(q.get("pnmi")), _f(q.get("phone_purity")),
                     f"{q.get('clusters_used', '–')}/{s.get('k', '–')}", _f(q.get("usage_perplexity"), 1),
                     _f(acc.get("dev")), _f(acc.get("majority_label")), _f(un.get("dev")), str(tr.get("steps", "–")),
                     _f(None if minutes is None else minutes / 60, 1), _f(tr.get("audio_s_per_s"), 1), link])
    head = ["iteration", "labels from", "K", "PNMI (dev)", "phone purity", "clusters used", "usage perplexity",
            "held-out masked acc", "majority-label acc", "held-out unmasked acc", "updates", "train min",
            "audio s/s", "curves"]
    md = ["### Pre-training diagnostics", "",
          "Read from each pre-training iteration's run folder (`iter<k>/summary.json`, `curves.png`). PNMI and "
          "phone purity: the iteration's training labels on dev frames against the corpus phones; usage "
          "perplexity: exp of the label-usage entropy (K if every cluster were used equally); held-out "
          "accuracies: the model's predictions of those labels on dev utterances (masked frames, then unmasked), "
          "beside what always answering the most frequent label scores. Updates and minutes are the "
          "iteration's own.", "", md_table(head, rows), ""]
    pre = sorted({u for u, f in zip(b["upstream"], b["facts"]) if isinstance((f or {}).get("pretraining"), dict)
                  and u in found})
    tasks = sorted(set(b["task"]))
    lrows = []
    for up in pre:
        cells, n_layers = [], None
        for task in tasks:
            r = b[(b["upstream"] == up) & (b["task"] == task)]
            w = r["lw_softmax"].iloc[0] if len(r) else None
            n_layers = len(w) if w else n_layers
            cells.append(_f(mean_layer(w), 2))
        if any(c != "–" for c in cells):
            lrows.append([up, str(None if n_layers is None else n_layers - 1), *cells])
    if lrows:
        md += ["#### Where the probes put their weight", "",
               "Softmax-weighted mean layer index of each probe's layer weights (0 = the transformer input, "
               "L = the last layer; uniform weights give L/2). Lower means the task draws on earlier layers.", "",
               md_table(["upstream", "L", *tasks], lrows), ""]
    return md, paths

