"""Issue 33 items 2 and 3: heatmap labels drawn whole, learning curves whose labels do not collide.

Checked on the drawn figure itself: every text's bounding box (Agg's renderer, in pixels) lies
inside the figure, row labels read back as the upstream names, and no two labels overlap.
"""

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from harness import plots

ROOT = Path(__file__).resolve().parents[2]


def committed_upstreams():
    """Every upstream named in the run details of the committed boards (leaderboards/**.md)."""
    names = set()
    for page in ROOT.glob("leaderboards/**/*.md"):
        text = page.read_text()
        if "## Run details" in text:
            for line in text[text.index("## Run details"):].splitlines():
                cells = [c.strip() for c in line.strip("|").split(" | ")]
                if line.startswith("| ") and len(cells) > 2 and cells[0] not in ("task", "---"):
                    names.add(cells[1])
    return names


def texts(fig):
    """(text, pixel bbox) of every visible non-empty text of a drawn figure."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    r = canvas.get_renderer()
    hidden = set()  # tick labels of ticks outside the view limits: matplotlib keeps them but draws none
    for ax in fig.axes:
        for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = min(lim), max(lim)
            for tick in axis.get_major_ticks():
                if not lo - 1e-9 * abs(hi - lo) <= tick.get_loc() <= hi + 1e-9 * abs(hi - lo):
                    hidden |= {id(tick.label1), id(tick.label2)}
    return [(t, t.get_window_extent(r)) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def inside(fig, boxes):
    w, h = fig.bbox.width, fig.bbox.height
    return [t.get_text() for t, b in boxes if b.x0 < -1 or b.y0 < -1 or b.x1 > w + 1 or b.y1 > h + 1]


FUSION = "fusion:cvhubert_tiny_20ms-it2+cvhubert_tiny_40ms-it2+cvhubert_tiny_80ms-it2"


def test_longest_committed_upstream_label_fits_whole():
    # the committed boards' names, and the longest a `./run demo --full` board has had: the fusion of
    # three cvhubert exports (75 characters; the v1 board held it, the regenerated v2 demo board not)
    names = sorted(committed_upstreams() | {FUSION})
    longest = max(names, key=len)
    assert len(longest) >= 40, longest
    rows = [longest, "fbank", "cvhubert_tiny_20ms-it2", "cvhubert_tiny_40ms-it2", "fusion:a+b"]
    mat = np.random.default_rng(0).dirichlet(np.ones(5), size=len(rows)) * 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Tight layout not applied"
        fig = plots.heatmap_figure(mat, rows, f"{longest}: {plots.TITLES['raw']}", "upstream", 0.0, 60.0)
        boxes = texts(fig)
    assert inside(fig, boxes) == []
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert [lab.replace("\n", "") for lab in labels] == rows  # whole: the lines join back to the names
    assert max(len(line) for lab in labels for line in lab.split("\n")) <= plots.WRAP
    tick_boxes = [b for t, b in boxes if t in ax.get_yticklabels()]
    assert all(not a.overlaps(b) for i, a in enumerate(tick_boxes) for b in tick_boxes[i + 1:])
    # the labels end left of the cells they name
    assert max(b.x1 for b in tick_boxes) <= ax.get_window_extent().x0


@pytest.mark.parametrize("text", ["fusion:cvhubert_tiny_20ms-it2+cvhubert_tiny_40ms-it2+cvhubert_tiny_80ms-it2",
                                  "x" * 75, "fbank", ""])
def test_wrap_label_keeps_every_character(text):
    wrapped = plots.wrap_label(text)
    assert wrapped.replace("\n", "") == text
    assert all(len(line) <= plots.WRAP for line in wrapped.split("\n"))


def curve_panels():
    # ks accuracy at close-together steps with their minutes; fbank and mfcc exactly equal
    pts = [(100, 40.0, 2.0, 35.8), (110, 45.0, 2.0, 37.3), (300, 60.0, 1.0, 80.0), (1200, 70.0, 1.0, 310.0)]
    return {"ks": {"metric": "test acc ↑", "points": pts, "baselines": {"fbank": (55.0, 1.0), "mfcc": (55.0, 1.0)}}}


def test_learning_curve_labels_do_not_collide_and_equal_baselines_both_show():
    fig = plots.learning_curve_figure(curve_panels(), title="micro-it2: learning curve")
    boxes = texts(fig)
    assert inside(fig, boxes) == []
    ax = fig.axes[0]
    # the training minutes are a second axis over the same points (not labels beside them)
    top = next(a for a in fig.axes if a is not ax and a.get_xlabel())
    assert "minutes" in top.get_xlabel() and top.get_xlim() == ax.get_xlim()
    ticks = [t for t in top.get_xticklabels() if t.get_text()]
    tick_boxes = [b for t, b in boxes if t in ticks]
    assert len(tick_boxes) >= 2
    assert all(not a.overlaps(b) for i, a in enumerate(tick_boxes) for b in tick_boxes[i + 1:])
    # each minute label sits at the update count of its point
    minutes = {100: 35.8, 110: 37.3, 300: 80.0, 1200: 310.0}
    for x, t in zip(top.get_xticks(), top.get_xticklabels()):
        assert float(re.sub(r"[^0-9.]", "", t.get_text())) == pytest.approx(minutes[int(x)], rel=0.01)
    # two baselines at the same value: drawn with different dashes and widths, both in the legend
    lines = {ln.get_label(): ln for ln in ax.get_lines() if ln.get_label() in ("fbank", "mfcc")}
    assert set(lines) == {"fbank", "mfcc"}
    assert lines["fbank"].get_linestyle() != lines["mfcc"].get_linestyle()
    assert lines["fbank"].get_linewidth() > lines["mfcc"].get_linewidth()
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"fbank", "mfcc"}


def _curve_row(upstream, iteration, step, updates, seconds, acc):
    """A select_best row of a ks probe on the export of micro's iteration `iteration` after `step`
    of its own updates (`updates` with those it continues from) and `seconds` of its training."""
    pre = {"recipe": "micro", "iteration": iteration, "step": step, "updates": updates, "train_seconds": seconds}
    return {"upstream": upstream, "task": "ks", "primary_metric": "acc", "higher_is_better": True,
            "test.acc.mean": acc, "test.acc.ci": 1.0, "n_seeds": 2, "facts": {"pretraining": pre}}


def test_learning_curve_minutes_accumulate_over_iterations_like_the_updates(tmp_path, monkeypatch):
    """Iteration 1 trains 200 updates in 4 minutes; iteration 2 continues from it (its exports
    record 100 and 200 of its own updates, 300 and 400 in all, after 3 and 6 minutes of its own
    training): its points sit at 300 and 400 updates and at 7 and 10 minutes, not 3 and 6."""
    from harness.board import learning_curves as leaderboard

    best = pd.DataFrame([
        _curve_row("micro-it1-step000100", 1, 100, 100, 120.0, 40.0), _curve_row("micro-it1", 1, 200, 200, 240.0, 50.0),
        _curve_row("micro-it2-step000100", 2, 100, 300, 180.0, 60.0), _curve_row("micro-it2", 2, 200, 400, 360.0, 70.0),
    ])
    curves = leaderboard.learning_curve_points(best)
    assert curves["micro-it1"]["minutes"].tolist() == pytest.approx([2.0, 4.0])
    assert curves["micro-it2"]["updates"].tolist() == [300, 400]
    assert curves["micro-it2"]["minutes"].tolist() == pytest.approx([7.0, 10.0])
    drawn = {}
    real = plots.learning_curve
    monkeypatch.setattr(leaderboard.plots, "learning_curve",
                        lambda panels, path, title="": drawn.setdefault(title, panels) and real(panels, path, title))
    md, _ = leaderboard.learning_curve_section(best, tmp_path, tmp_path / "h")
    rows = [ln.split(" | ")[2:5] for ln in "\n".join(md).splitlines() if ln.startswith("| ks |")]
    assert rows == [["100", "2.00", "micro-it1-step000100"], ["200", "4.00", "micro-it1"],
                    ["300", "7.00", "micro-it2-step000100"], ["400", "10.00", "micro-it2"]]
    fig = plots.learning_curve_figure(drawn["micro-it2: learning curve"])
    ax = fig.axes[0]
    top = next(a for a in fig.axes if a is not ax and a.get_xlabel())
    assert "earlier iterations included" in top.get_xlabel()
    FigureCanvasAgg(fig).draw()
    labels = {float(x): t.get_text() for x, t in zip(top.get_xticks(), top.get_xticklabels())}
    assert labels == {300.0: "7", 400.0: "10"}
    assert ax.containers[0].lines[0].get_xdata().tolist() == [300, 400]  # the errorbar's points
    # an iteration continuing from one whose end is not on the board has no minutes to show
    only_it2 = leaderboard.learning_curve_points(best[best["upstream"].str.startswith("micro-it2")])
    assert only_it2["micro-it2"]["minutes"].isna().all()
