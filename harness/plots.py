"""Layer-weight heatmaps (docs/protocol.md section 5), PNG through matplotlib's Agg canvas.

Two views, each drawn from the raw softmax weights and from the norm-corrected contributions
(c_l = w_l |h_l| / sum_k w_k |h_k|), in percent:
  - per upstream: tasks x layers        -> ``heatmap_upstream_<slug>_{raw,corrected}.png``
  - per task: upstreams x layers        -> ``heatmap_task_<task>_{raw,corrected}.png``
ML-SUPERB's analysis view, from the monolingual ASR runs' per-language softmax weights:
  - per (upstream, mono_asr task): languages x layers -> ``heatmap_langs_<upstream slug>_<task>.png``
Upstreams differ in their number of layers (L+1: a 4-layer model 5): shorter rows are padded with
NaN and drawn blank. The x axis is "layer 0..L" (0 = the input to the first block).

A single-layer upstream (fbank, mfcc: L+1 = 1) always puts 100% on its one layer: it gets no
heatmap and no row in a task heatmap. Every heatmap of one family (all upstream views, all task
views, all language views of a board) shares one colour scale (``family_scale``), so a colour
means the same percentage in each. A dot marks each cell whose weight exceeds the uniform
weight 1/(L+1) of its row (what an untrained weighted sum would give every layer).
Only pyplot-free ``matplotlib.figure.Figure`` objects are used, so no global backend is touched.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.results import slug

KINDS = {"raw": "softmax", "corrected": "corrected"}  # file suffix -> result.json layer_weights key
TITLES = {"raw": "softmax layer weights (%)", "corrected": "norm-corrected layer contributions (%)"}
UNIFORM_NOTE = "red dot: weight above uniform 1/(L+1)"
DOT_COLOR = "#e6194b"  # red: legible on every viridis shade


def pad_rows(rows: Mapping[str, Optional[Sequence[float]]]) -> Tuple[List[str], np.ndarray]:
    """Labels and a (rows x max layers) float matrix in percent; missing layers are NaN.
    Rows whose weights are None or hold fewer than two layers (nothing to weigh) are left out."""
    kept = [(k, np.asarray(v, dtype=float)) for k, v in rows.items() if v is not None and len(v) > 1]
    width = max((len(v) for _, v in kept), default=0)
    mat = np.full((len(kept), width), np.nan)
    for i, (_, v) in enumerate(kept):
        mat[i, : len(v)] = 100.0 * v
    return [k for k, _ in kept], mat


def family_scale(matrices: Iterable[np.ndarray]) -> Tuple[float, float]:
    """(vmin, vmax) in percent shared by a family of heatmaps: 0 to the largest finite value of any
    of them (1 when there is none)."""
    top = [float(np.nanmax(m)) for m in matrices if m.size and np.isfinite(m).any()]
    return 0.0, max(top, default=1.0)


def above_uniform(matrix: np.ndarray) -> np.ndarray:
    """Boolean mask (rows x layers): the weight exceeds its row's uniform weight 100 / (L+1) %,
    L+1 = the row's finite entries."""
    n = np.isfinite(matrix).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.isfinite(matrix) & (matrix > 100.0 / np.maximum(n, 1) + 1e-9)


#: a heatmap's row labels and titles break onto a new line beyond this many characters (a
#: fusion of three exports is 75), after one of BREAKS, so every label is drawn whole
WRAP = 30
BREAKS = "+:/_-"
FONT_PT = 9


def wrap_label(text: str, width: int = WRAP) -> str:
    """``text`` on lines of at most ``width`` characters, broken after the last ``+ : / _ -`` that
    fits (mid-word only where a run of ``width`` characters has none); joining the lines gives
    ``text`` back."""
    lines, cur = [], ""
    for ch in str(text):
        cur += ch
        if len(cur) > width:
            cut = max(cur.rfind(b, 0, width) for b in BREAKS) + 1 or width
            lines.append(cur[:cut])
            cur = cur[cut:]
    return "\n".join(lines + [cur])


def text_size(text: str, fontsize: float) -> Tuple[float, float]:
    """(width, height) in inches that ``text`` takes at ``fontsize`` points (Agg's metrics)."""
    fig = Figure(dpi=100)
    r = FigureCanvasAgg(fig).get_renderer()
    bb = fig.text(0, 0, text, fontsize=fontsize).get_window_extent(r)
    return bb.width / fig.dpi, bb.height / fig.dpi


def heatmap_figure(matrix: np.ndarray, row_labels: Sequence[str], title: str, row_axis: str,
                   vmin: float, vmax: float) -> Figure:
    """The annotated heatmap (rows x layers, percent) on the colour scale [vmin, vmax], sized to
    its labels: long row labels and titles are wrapped (``wrap_label``), measured, and the margins
    are set from those measures, so no label is cut (no tight_layout, which gives up on long ones)."""
    n_rows, n_cols = matrix.shape
    labels = [wrap_label(lab) for lab in row_labels]
    title = "\n".join(wrap_label(part, 2 * WRAP) for part in title.split("\n"))
    lab_w = max((text_size(lab, FONT_PT)[0] for lab in labels), default=0.0)
    lines = max((lab.count("\n") + 1 for lab in labels), default=1)
    row_h = max(0.42, 0.17 * lines + 0.12)
    xlabel = f"layer 0..{n_cols - 1}\n({UNIFORM_NOTE})"
    left = lab_w + 0.55  # tick labels, the tick pad and the rotated axis label
    plot_w = max(2.6, 0.55 * n_cols, text_size(xlabel, FONT_PT)[0] + 0.1)
    right = 1.1  # the colour bar, its ticks and its "%" label
    top = text_size(title, 10)[1] + 0.3
    bottom = 0.9
    plot_h = row_h * n_rows
    width, height = left + plot_w + right, bottom + plot_h + top
    width = max(width, text_size(title, 10)[0] + 0.3)  # a title wider than everything else
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_axes((left / width, bottom / height, plot_w / width, plot_h / height))
    cax = fig.add_axes(((left + plot_w + 0.15) / width, bottom / height, 0.15 / width, plot_h / height))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    vmax = max(vmax, vmin + 1e-9)
    im = ax.imshow(np.ma.masked_invalid(matrix), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    ax.set_xticks(range(n_cols), [str(i) for i in range(n_cols)])
    ax.set_yticks(range(n_rows), labels, fontsize=FONT_PT)
    ax.set_xlabel(xlabel, fontsize=FONT_PT)
    ax.set_ylabel(row_axis)
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    digits = 1 if n_cols <= 13 else 0
    size = 8 if n_cols <= 13 else 6
    dots = above_uniform(matrix)
    for i in range(n_rows):
        for j in range(n_cols):
            v = matrix[i, j]
            if math.isfinite(v):
                color = "white" if v < vmin + 0.6 * (vmax - vmin) else "black"
                ax.text(j, i + 0.05, f"{v:.{digits}f}", ha="center", va="center", fontsize=size, color=color)
            if dots[i, j]:
                ax.plot(j + 0.32, i - 0.28, marker="o", markersize=5, color=DOT_COLOR, markeredgecolor="white",
                        markeredgewidth=0.5)
    fig.colorbar(im, cax=cax, label="%")
    return fig


def heatmap(matrix: np.ndarray, row_labels: Sequence[str], title: str, path: Path, row_axis: str,
            vmin: float, vmax: float) -> Path:
    """Draw ``heatmap_figure`` to ``path`` (PNG); cells above their row's uniform weight carry a dot."""
    fig = heatmap_figure(matrix, row_labels, title, row_axis, vmin, vmax)
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
    with the raw heatmap first, then the corrected one; views with no multi-layer data are not
    drawn. All upstream views share one colour scale, all task views another (``family_scale``)."""
    out_dir = Path(out_dir)
    upstreams = sorted({u for u, _ in weights})
    tasks = sorted({t for _, t in weights})
    views: Dict[str, List[Tuple[str, str, List[str], np.ndarray]]] = {"upstream": [], "task": []}
    for kind, key in KINDS.items():
        for u in upstreams:
            labels, mat = pad_rows({t: weights[(u, t)].get(key) for t in tasks if (u, t) in weights})
            if labels:
                views["upstream"].append((u, kind, labels, mat))
        for t in tasks:
            labels, mat = pad_rows({u: weights[(u, t)].get(key) for u in upstreams if (u, t) in weights})
            if labels:
                views["task"].append((t, kind, labels, mat))
    written: Dict[str, List[Path]] = {}
    for view, drawn in views.items():
        vmin, vmax = family_scale(m for *_, m in drawn)
        name_of = upstream_heatmap_name if view == "upstream" else task_heatmap_name
        for name, kind, labels, mat in drawn:
            p = heatmap(mat, labels, f"{title_prefix}{name}: {TITLES[kind]}", out_dir / name_of(name, kind),
                        "task" if view == "upstream" else "upstream", vmin, vmax)
            written.setdefault(f"{view}:{name}", []).append(p)
    return {k: sorted(v, key=lambda p: not p.stem.endswith("_raw")) for k, v in sorted(written.items())}


def language_heatmap_name(upstream: str, task: str) -> str:
    return f"heatmap_langs_{slug(upstream)}_{slug(task)}.png"


def language_layer_heatmaps(weights: Mapping[Tuple[str, str], Optional[Mapping[str, Sequence[float]]]],
                            out_dir: Path, title_prefix: str = "") -> Dict[Tuple[str, str], Path]:
    """Languages x layers heatmaps (softmax weights, percent), one per (upstream, task), on one
    shared colour scale.

    ``weights``: {(upstream, task): {language: [L+1 softmax weights]}} (e.g. a mono_asr run's
    ``extra["per_language_layer_weights"]``, seed-averaged). Languages are rows in sorted order;
    entries that are None, empty or single-layer are not drawn. Returns {(upstream, task): path}."""
    drawn = []
    for (u, t), per_lang in sorted(weights.items()):
        labels, mat = pad_rows({lang: per_lang[lang] for lang in sorted(per_lang or {})})
        if labels:
            drawn.append((u, t, labels, mat))
    vmin, vmax = family_scale(m for *_, m in drawn)
    return {(u, t): heatmap(mat, labels, f"{title_prefix}{u} / {t}\nsoftmax layer weights per language (%)",
                            Path(out_dir) / language_heatmap_name(u, t), "language", vmin, vmax)
            for u, t, labels, mat in drawn}


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def training_curves(history: Sequence[Mapping[str, float]], held_out: Mapping[str, float], path: Path,
                    title: str = "", chance: Optional[float] = None) -> Path:
    """A pre-training iteration's diagnostics (PNG): masked / unmasked accuracy and loss / masked
    cross-entropy against the update step.

    Args:
        history: the training log's rows (loop.py log.jsonl: step, loss, masked_ce, masked_acc,
            unmasked_acc; each a mean over the updates since the previous row).
        held_out: {"step", "masked_acc", "unmasked_acc", "masked_ce"} of the held-out evaluation
            after the last step (drawn as markers there), or {} without one.
        chance: 1/K, drawn as a dotted line on the accuracy panel.
    """
    fig = Figure(figsize=(9.0, 3.4), dpi=100)
    acc, loss = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    steps = [r["step"] for r in history]
    for ax, keys in ((acc, (("masked_acc", "masked"), ("unmasked_acc", "unmasked"))),
                     (loss, (("loss", "loss"), ("masked_ce", "masked CE")))):
        for (key, label), color in zip(keys, ("C0", "C1")):
            ax.plot(steps, [r.get(key) for r in history], color=color, marker=".", label=f"train {label}")
            if held_out.get(key) is not None:
                ax.plot([held_out["step"]], [held_out[key]], color=color, marker="*", markersize=12,
                        linestyle="none", label=f"held-out {label}")
        ax.set_xlabel("update step")
        ax.grid(alpha=0.3)
    if chance is not None:
        acc.axhline(chance, color="grey", linestyle=":", label="chance 1/K")
    acc.set_ylabel("frame accuracy")
    acc.set_ylim(0.0, 1.0)
    loss.set_ylabel("nats per masked frame")
    acc.legend(fontsize=7)
    loss.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def learning_curve_name(run: str) -> str:
    return f"curve_{slug(run)}.png"


def spaced_labels(xs: Sequence[float], min_gap: float = 0.12) -> List[int]:
    """Indices of the points that get a text label: from the last point back, one whose x lies
    less than ``min_gap`` of the x span from the previously labelled one gets none (their labels
    would print over each other; 0.12 of a 4.2-inch panel is about a label's width; the last point,
    the final weights, always keeps its own)."""
    span = (max(xs) - min(xs)) if len(xs) else 0.0
    keep: List[int] = []
    for i in sorted(range(len(xs)), key=lambda j: xs[j], reverse=True):
        if not keep or xs[keep[-1]] - xs[i] >= min_gap * span:
            keep.append(i)
    return sorted(keep)


#: baseline lines of a learning curve: (dash, width) in drawing order, wide dashes first so that
#: two baselines at the same value both stay visible (the narrower dots run over the wider dashes)
BASELINE_STYLES = (("--", 2.6), (":", 1.6), ("-.", 1.2), ((0, (1, 3)), 1.0))


def learning_curve_figure(panels: Mapping[str, Mapping], title: str = "") -> Figure:
    """One pre-training run's learning curve, a panel per task: the probe's test metric (mean
    with its 95% interval over seeds, as error bars) of each exported step against the
    pre-training updates behind it, and each baseline as a horizontal line with its interval as a
    band.

    ``panels``: {task: {"metric": label, "points": [(updates, mean, ci[, minutes])], "baselines":
    {name: (mean, ci)}}}; a NaN ci (one seed) draws no bar or band. The points' pre-training
    minutes, when given and finite, label a second x axis on top at the points' own update counts
    (one scale, so the two axes cannot disagree; the minutes must count what the updates count,
    earlier iterations included: harness.leaderboard.learning_curve_points); points too close to
    the next labelled one get no label (``spaced_labels``), so no two labels overlap."""
    n = max(1, len(panels))
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.4 * cols, 3.6 * rows + (0.3 if title else 0.0)), dpi=100)
    for i, (task, p) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        x, y, e = (np.array([pt[j] for pt in p["points"]], dtype=float) for j in range(3))
        for (name, (mean, ci)), color, (dash, width) in zip(sorted(p["baselines"].items()), ("C1", "C2", "C3", "C4"),
                                                             BASELINE_STYLES):
            ax.axhline(mean, color=color, linestyle=dash, linewidth=width, label=name)
            if ci is not None and math.isfinite(ci):
                ax.axhspan(mean - ci, mean + ci, color=color, alpha=0.12)
        ax.errorbar(x, y, yerr=np.where(np.isfinite(e), e, 0.0), marker="o", capsize=3, color="C0",
                    label="pre-trained")
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("pre-training updates")
        ax.set_ylabel(p["metric"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        timed = [pt for pt in p["points"] if len(pt) > 3 and pt[3] is not None and math.isfinite(pt[3])]
        if timed:  # the training time behind each point, on the same x scale as the updates
            top = ax.twiny()
            top.set_xlim(ax.get_xlim())
            keep = spaced_labels([pt[0] for pt in timed])
            top.set_xticks([timed[k][0] for k in keep], [f"{timed[k][3]:.3g}" for k in keep], fontsize=7)
            top.set_xlabel("pre-training minutes at the point (earlier iterations included)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def learning_curve(panels: Mapping[str, Mapping], path: Path, title: str = "") -> Path:
    """Draw ``learning_curve_figure`` to ``path`` (PNG)."""
    fig = learning_curve_figure(panels, title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
