"""Layer weights as text, for pages that cannot show images (a GitHub job summary).

A step summary is markdown without attachments: an image link into the uploaded artifact is
broken there. ``layer_table`` writes what the task heatmap shows (harness.plots) as a markdown
table: a row per upstream, a column per layer 0..L, each cell the weight in percent after a
unicode block whose height is the weight on the table's shared scale (0 to the largest weight
of the table, as the heatmaps share one scale), and a star where the weight is above the row's
uniform 1/(L+1) (the heatmap's red dot).
"""

from __future__ import annotations

import math
from typing import List, Mapping, Optional, Sequence

BLOCKS = " ▁▂▃▄▅▆▇█"  # 0/8 .. 8/8 of a cell's height
ABOVE = "*"


def block(value: float, top: float) -> str:
    """The block for ``value`` on a 0..``top`` scale: ' ' for 0, '█' for ``top``, eighths between."""
    if not math.isfinite(value) or top <= 0:
        return " "
    return BLOCKS[max(0, min(8, round(8 * value / top)))]


def layer_table(weights: Mapping[str, Optional[Sequence[float]]], row_axis: str = "upstream") -> str:
    """A markdown table of layer weights in percent; '' when no row has two or more layers.

    Args:
        weights: {row label: [L+1 fractions summing to 1]} (e.g. one task's norm-corrected weights
            per upstream); None or single-layer rows are left out, as in the heatmaps.
        row_axis: the first column's header.

    Returns:
        ``| upstream | 0 | 1 | ... |`` rows; a missing layer (a shorter model) is an empty cell.
    """
    rows = {k: [100.0 * float(x) for x in v] for k, v in weights.items() if v is not None and len(v) > 1}
    if not rows:
        return ""
    width = max(len(v) for v in rows.values())
    top = max((x for v in rows.values() for x in v if math.isfinite(x)), default=0.0)
    lines = ["| " + " | ".join([row_axis, *(f"L{i}" for i in range(width))]) + " |", "|---" * (width + 1) + "|"]
    for label, v in rows.items():
        uniform = 100.0 / len(v)
        cells: List[str] = []
        for i in range(width):
            if i >= len(v) or not math.isfinite(v[i]):
                cells.append("")
                continue
            star = ABOVE if v[i] > uniform + 1e-9 else ""
            cells.append(f"{block(v[i], top)} {v[i]:.0f}{star}")
        lines.append("| " + " | ".join([str(label).replace("|", "\\|"), *cells]) + " |")
    return "\n".join(lines)


LEGEND = (f"Each cell: the weight in percent, after a block as tall as the weight on the table's scale "
          f"(█ = {{top}} %); {ABOVE} marks a weight above its row's uniform 1/(L+1).")


def legend(weights: Mapping[str, Optional[Sequence[float]]]) -> str:
    """The line under a ``layer_table``: what a block and a star mean, with the scale's top."""
    top = max((100.0 * float(x) for v in weights.values() if v is not None and len(v) > 1 for x in v
               if math.isfinite(float(x))), default=0.0)  # fmt: skip
    return LEGEND.format(top=f"{top:.0f}")
