"""Layer-weight heatmaps (PROTOCOL.md section 5), PNG through matplotlib's Agg canvas.

Two views, each drawn from the raw softmax weights and from the norm-corrected contributions
(c_l = w_l |h_l| / sum_k w_k |h_k|), in percent:
  - per upstream: tasks x layers        -> ``heatmap_upstream_<slug>_{raw,corrected}.png``
  - per task: upstreams x layers        -> ``heatmap_task_<task>_{raw,corrected}.png``
ML-SUPERB's analysis view, from the monolingual ASR runs' per-language softmax weights:
  - per (upstream, mono_asr task): languages x layers -> ``heatmap_langs_<upstream slug>_<task>.png``
Upstreams differ in their number of layers (L+1: fbank 1, a 4-layer model 5): shorter rows are
padded with NaN and drawn blank. The x axis is "layer 0..L" (0 = the input to the first block).
Only pyplot-free ``matplotlib.figure.Figure`` objects are used, so no global backend is touched.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from harness.results import slug

KINDS = {"raw": "softmax", "corrected": "corrected"}  # file suffix -> result.json layer_weights key
TITLES = {"raw": "softmax layer weights (%)", "corrected": "norm-corrected layer contributions (%)"}


def pad_rows(rows: Mapping[str, Optional[Sequence[float]]]) -> Tuple[List[str], np.ndarray]:
    """Labels and a (rows x max layers) float matrix in percent; missing layers are NaN.
    Rows whose weights are None or empty are left out."""
    kept = [(k, np.asarray(v, dtype=float)) for k, v in rows.items() if v is not None and len(v) > 0]
    width = max((len(v) for _, v in kept), default=0)
    mat = np.full((len(kept), width), np.nan)
    for i, (_, v) in enumerate(kept):
        mat[i, : len(v)] = 100.0 * v
    return [k for k, _ in kept], mat


def heatmap(matrix: np.ndarray, row_labels: Sequence[str], title: str, path: Path, row_axis: str) -> Path:
    """Draw an annotated heatmap (rows x layers, percent) to ``path`` (PNG)."""
    n_rows, n_cols = matrix.shape
    fig = Figure(figsize=(max(4.5, 0.6 * n_cols + 2.5), max(2.2, 0.5 * n_rows + 1.6)), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    masked = np.ma.masked_invalid(matrix)
    # single-layer rows (fbank: always 100%) would flatten the colours of every other row
    multi = matrix[np.isfinite(matrix).sum(axis=1) > 1] if n_cols > 1 else matrix
    scale = multi if np.isfinite(multi).any() else matrix
    vmax = float(np.nanmax(scale)) if np.isfinite(scale).any() else 1.0
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    im = ax.imshow(masked, aspect="auto", cmap=cmap, vmin=0.0, vmax=max(vmax, 1e-9), interpolation="nearest")
    ax.set_xticks(range(n_cols), [str(i) for i in range(n_cols)])
    ax.set_yticks(range(n_rows), list(row_labels))
    ax.set_xlabel(f"layer 0..{n_cols - 1}")
    ax.set_ylabel(row_axis)
    ax.set_title(title, fontsize=10)
    digits = 1 if n_cols <= 13 else 0
    size = 8 if n_cols <= 13 else 6
    for i in range(n_rows):
        for j in range(n_cols):
            v = matrix[i, j]
            if math.isfinite(v):
                color = "white" if v < 0.6 * vmax else "black"
                ax.text(j, i, f"{v:.{digits}f}", ha="center", va="center", fontsize=size, color=color)
    fig.colorbar(im, ax=ax, label="%")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def upstream_heatmap_name(upstream: str, kind: str) -> str:
    return f"heatmap_upstream_{slug(upstream)}_{kind}.png"


def task_heatmap_name(task: str, kind: str) -> str:
    return f"heatmap_task_{slug(task)}_{kind}.png"


def layer_heatmaps(weights: Mapping[Tuple[str, str], Mapping[str, Optional[Sequence[float]]]], out_dir: Path,
                   title_prefix: str = "") -> Dict[str, List[Path]]:
    """Write every heatmap for one board.

    ``weights``: {(upstream, task): {"softmax": [...], "corrected": [...]}} (fractions summing to 1,
    e.g. the seed mean of the selected runs). Returns {"upstream:<name>" | "task:<name>": [paths]}
    with the raw heatmap first, then the corrected one; views with no data are not drawn."""
    out_dir = Path(out_dir)
    upstreams = sorted({u for u, _ in weights})
    tasks = sorted({t for _, t in weights})
    written: Dict[str, List[Path]] = {}
    for kind, key in KINDS.items():
        for u in upstreams:
            labels, mat = pad_rows({t: weights[(u, t)].get(key) for t in tasks if (u, t) in weights})
            if labels:
                title = f"{title_prefix}{u}: {TITLES[kind]}"
                p = heatmap(mat, labels, title, out_dir / upstream_heatmap_name(u, kind), "task")
                written.setdefault(f"upstream:{u}", []).append(p)
        for t in tasks:
            labels, mat = pad_rows({u: weights[(u, t)].get(key) for u in upstreams if (u, t) in weights})
            if labels:
                title = f"{title_prefix}{t}: {TITLES[kind]}"
                p = heatmap(mat, labels, title, out_dir / task_heatmap_name(t, kind), "upstream")
                written.setdefault(f"task:{t}", []).append(p)
    return written


def language_heatmap_name(upstream: str, task: str) -> str:
    return f"heatmap_langs_{slug(upstream)}_{slug(task)}.png"


def language_layer_heatmaps(weights: Mapping[Tuple[str, str], Optional[Mapping[str, Sequence[float]]]],
                            out_dir: Path, title_prefix: str = "") -> Dict[Tuple[str, str], Path]:
    """Languages x layers heatmaps (softmax weights, percent), one per (upstream, task).

    ``weights``: {(upstream, task): {language: [L+1 softmax weights]}} (e.g. a mono_asr run's
    ``extra["per_language_layer_weights"]``, seed-averaged). Languages are rows in sorted order;
    entries that are None or empty are not drawn. Returns {(upstream, task): path}."""
    out: Dict[Tuple[str, str], Path] = {}
    for (u, t), per_lang in sorted(weights.items()):
        if not per_lang:
            continue
        labels, mat = pad_rows({lang: per_lang[lang] for lang in sorted(per_lang)})
        if not labels:
            continue
        title = f"{title_prefix}{u} / {t}\nsoftmax layer weights per language (%)"
        out[(u, t)] = heatmap(mat, labels, title, Path(out_dir) / language_heatmap_name(u, t), "language")
    return out
