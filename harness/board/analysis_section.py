"""The board's "Layer analysis" section: what `harness analyze` measured on each layer, next to
the weighted-sum weights the probes learned.

Reads the run folders RUNS/<corpus>/<upstream>/analyze/<hash>/result.json ("kind":
"layer_analysis", harness/analysis/run.py); the newest finished one per upstream is shown. One
figure per upstream puts every measure on one 0..1 axis against the layer: PWCCA with phones (and
with words, when measured),
MI with phones and speakers divided by the label's entropy, single-layer probes as 1 - PER / 100
and accuracy / 100, and (dashed) each task's weighted-sum softmax weights from this board.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from harness.board.markdown import md_table
from harness.results import RESULT, slug

KIND = "layer_analysis"  # harness.analysis.run.KIND (kept here so the board never imports the analysis)
#: (column of a layer row, label on the figure, how to map it onto 0..1), in drawing order
CURVES: Tuple[Tuple[str, str, Any], ...] = (
    ("cca_phone", "PWCCA phone", lambda v: v),
    ("cca_word", "PWCCA word", lambda v: v),
    ("mi_phone_norm", "MI phone / H(phone)", lambda v: v),
    ("mi_speaker_norm", "MI speaker / H(speaker)", lambda v: v),
    ("pr_per", "layer probe PR: 1 - PER/100", lambda v: 1 - v / 100),
    ("sid_acc", "layer probe SID: acc/100", lambda v: v / 100),
)
TABLE_COLUMNS = (("cca_phone", "PWCCA phone"), ("cca_word", "PWCCA word"), ("mi_phone", "MI phone (bits)"), ("mi_phone_chance", "chance"),
                 ("mi_speaker", "MI speaker (bits)"), ("mi_speaker_chance", "chance"),
                 ("pr_per", "layer probe PER"), ("sid_acc", "layer probe SID acc"))


def is_analysis(result: Dict[str, Any]) -> bool:
    """True for a `harness analyze` result.json (which the probe board's scan leaves out)."""
    return result.get("kind") == KIND


def _finished(runs_root: Optional[Path]):
    """(result.json path, result) of every finished analysis under `runs_root`."""
    if runs_root is None or not Path(runs_root).is_dir():
        return
    for p in sorted(Path(runs_root).glob(f"*/*/analyze/*/{RESULT}")):
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # written atomically: an unreadable one is not a finished run
        if is_analysis(r) and r.get("layers"):
            yield p, r


def load_analyses(runs_root: Optional[Path], corpus: str) -> Dict[str, Dict[str, Any]]:
    """{upstream: the newest finished analysis of it on `corpus`} under `runs_root`."""
    found: Dict[str, Dict[str, Any]] = {}
    for p, r in _finished(runs_root):
        if r.get("corpus") != corpus:
            continue
        r["_dir"] = str(p.parent)
        old = found.get(r["upstream"])
        if old is None or str(r.get("finished_at", "")) > str(old.get("finished_at", "")):
            found[r["upstream"]] = r
    return found


def analysis_corpora(runs_root: Optional[Path]) -> List[str]:
    """Sorted names of the corpora that have at least one finished analysis under `runs_root`."""
    return sorted({str(r["corpus"]) for _, r in _finished(runs_root) if r.get("corpus")})


def analysis_page(runs_root: Path, corpus: str, out_dir: Path) -> Tuple[str, List[Path]]:
    """The page of a corpus that has analyses but no probe runs: the section alone, without the
    weighted-sum weights (they come from probes)."""
    md, paths = analysis_section(runs_root, corpus, None, out_dir)
    head = [f"# Layer analysis: {corpus}", "",
            f"No finished probe runs on {corpus} were found under the run store, so this page has no task "
            "tables and its figures no weighted-sum weights (`harness eval` adds them).", ""]
    return "\n".join(head + md), paths


def board_weights(rows, upstream: str) -> Dict[str, List[float]]:
    """{task: mean softmax weights} of `upstream`'s selected board rows (a DataFrame with columns
    upstream, task, lw_softmax); tasks whose rows disagree on the layer count are left out."""
    out: Dict[str, List[float]] = {}
    if rows is None or len(rows) == 0:
        return out
    mine = rows[rows["upstream"] == upstream]
    for task, g in mine.groupby("task", sort=True):
        ws = [np.asarray(w, dtype=float) for w in g["lw_softmax"] if isinstance(w, (list, tuple)) and len(w) > 1]
        if ws and len({w.shape for w in ws}) == 1:
            out[str(task)] = np.mean(ws, axis=0).tolist()
    return out


def figure(result: Dict[str, Any], weights: Dict[str, Sequence[float]], path: Path) -> Optional[Path]:
    """The per-layer figure of one analysis (PNG at `path`); None when it has nothing to draw."""
    from matplotlib.figure import Figure

    layers = [r["layer"] for r in result["layers"]]
    fig = Figure(figsize=(7.5, 4.0), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    drawn = 0
    for key, label, scale in CURVES:
        ys = [scale(r[key]) if _num(r.get(key)) else math.nan for r in result["layers"]]
        if any(not math.isnan(y) for y in ys):
            ax.plot(layers, ys, marker="o", label=label)
            drawn += 1
    for task, w in sorted(weights.items()):
        if len(w) == len(layers):
            ax.plot(layers, w, linestyle="--", marker=".", label=f"weighted-sum weight ({task})")
            drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("layer (0 = first hidden state)")
    ax.set_ylabel("0..1 (see legend)")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(layers)
    ax.grid(alpha=0.3)
    ax.set_title(f"{result['upstream']}: what each layer encodes", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _table(result: Dict[str, Any], weights: Dict[str, Sequence[float]]) -> List[str]:
    cols = [(k, h) for k, h in TABLE_COLUMNS if any(k in r for r in result["layers"])]
    tasks = [t for t in sorted(weights) if len(weights[t]) == len(result["layers"])]
    rows = []
    for i, r in enumerate(result["layers"]):
        rows.append([str(r["layer"])] + [f"{r[k]:.3f}" if _num(r.get(k)) else "–" for k, _ in cols]
                    + [f"{100 * weights[t][i]:.1f}" for t in tasks])
    return md_table(["layer"] + [h for _, h in cols] + [f"weight {t} (%)" for t in tasks], rows)


def analysis_section(runs_root: Optional[Path], corpus: str, rows, out_dir: Path) -> Tuple[List[str], List[Path]]:
    """Markdown lines and figures of the section for one corpus; ([], []) without analyses.

    Args:
        runs_root: where the run folders are.
        corpus: the board's corpus name.
        rows: the board's selected rows of this corpus (DataFrame: upstream, task, lw_softmax).
        out_dir: the board folder (figures go to out_dir/<corpus>/analysis_<upstream>.png).
    """
    out_dir = Path(out_dir)
    fdir = out_dir / slug(corpus)
    for old in fdir.glob("analysis_*.png") if fdir.is_dir() else []:
        old.unlink()
    found = load_analyses(runs_root, corpus)
    if not found:
        return [], []
    md = ["## Layer analysis", "",
          "What each layer encodes, measured on the layer itself (`harness analyze`): PWCCA between the layer's "
          "speech frames and one-hot phones; the mutual information (bits) between k-means clusters of the layer "
          "and phones / speakers, with the MI the same clusters get against shuffled labels (\"chance\", one shuffle: "
          "what the plug-in estimate's upward bias alone gives on this sample, not a strict floor); and, where run, the PR / SID probe on that layer alone. The "
          "figure maps every measure onto 0..1 (MI divided by the label's entropy, 1 - PER/100, accuracy/100) "
          "and draws this board's weighted-sum weights (dashed) on the same axis.", ""]
    paths: List[Path] = []
    for up in sorted(found):
        r = found[up]
        w = board_weights(rows, up)
        s, t, st = r.get("sample") or {}, r.get("timing") or {}, r.get("settings") or {}
        md += [f"### {up}", ""]
        p = figure(r, w, fdir / f"analysis_{slug(up)}.png")
        if p is not None:
            paths.append(p)
            md += [f"![{up} layer analysis]({p.relative_to(out_dir).as_posix()})", ""]
        md += _table(r, w).splitlines() + [""]
        probe = r.get("probe_layer") or {}
        size = f" ({r['corpus']} {r['corpus_size']}, {r.get('corpus_version', '–')})" if r.get("corpus_size") else ""
        md += [f"{s.get('frames', '–')} speech frames of {s.get('utterances', '–')} utterances{size}, "
               f"{s.get('phones', '–')} phones (H = {_f(s.get('phone_entropy_bits'))} bits), "
               f"{s.get('speakers', '–')} speakers (H = {_f(s.get('speaker_entropy_bits'))} bits); "
               f"k = {st.get('clusters', '–')}, SVD keeps {st.get('keep_variance', '–')} of the variance"
               + (f"; layer probes: {probe.get('steps')} updates" if probe else "")
               + ". Seconds: " + ", ".join(f"{k[:-2]} {v:g}" for k, v in t.items() if k.endswith("_s") and k != "cpu_s")
               + f" (CPU {t.get('cpu_s', '–')}). Run `{r.get('run_id')}`, git {r.get('git_sha', '–')}.", ""]
    return md, paths


def _f(v, nd: int = 2) -> str:
    return f"{v:.{nd}f}" if _num(v) else "–"
