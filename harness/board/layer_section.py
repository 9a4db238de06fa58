"""The board's "Layer weights" section: the heatmaps of the probes' layer weights (harness.plots),
raw softmax and norm-corrected, per task and per upstream."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pandas as pd

from harness import plots


def layer_weight_section(b: pd.DataFrame, out_dir: Path, hdir: Path) -> Tuple[List[str], List[Path]]:
    """Markdown lines of the section (links relative to ``out_dir``) and the heatmaps written into
    ``hdir``; ([], []) when no row has layer weights to draw."""
    weights = {(r["upstream"], r["task"]): {"softmax": r["lw_softmax"], "corrected": r["lw_corrected"]}
               for _, r in b.iterrows()}  # fmt: skip
    drawn = plots.layer_heatmaps(weights, hdir)
    if not drawn:
        return [], []
    single = sorted({u for (u, _), w in weights.items() if 0 < len(w["softmax"] or []) <= 1})
    md = ["### Layer weights (percent; raw softmax, then norm-corrected)", "",
          "All task heatmaps share one colour scale, and all upstream heatmaps another, so a colour is the "
          "same percentage across them. A red dot marks a weight above its row's uniform weight 1/(L+1) "
          "(what every layer would get if the probe had no preference)."
          + (f" Single-layer upstreams ({', '.join(single)}) weigh nothing and are not drawn." if single else ""),
          ""]
    paths: List[Path] = []
    for label, files in drawn.items():
        what, name = label.split(":", 1)
        md += [f"#### {'Upstream' if what == 'upstream' else 'Task'} {name}", ""]
        md += [" ".join(f"![{name} {p.stem.rsplit('_', 1)[-1]}]({p.relative_to(out_dir).as_posix()})"
                        for p in files), ""]  # fmt: skip
        paths += files
    return md, paths
