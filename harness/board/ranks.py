"""Ranks that respect the intervals: an upstream's rank is a range over the orders its 95 %
intervals allow.

For upstream i among n: best = 1 + the number of upstreams better than i beyond both intervals
(the intervals do not overlap); worst = n - the number worse than i beyond both intervals. A
rank is shown as "#best" when the two agree and "#best-worst" otherwise, so two upstreams whose
intervals overlap never get different single ranks. A value without an interval (one seed) is
compared by its mean alone (half-width 0), which the board says.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple


def rank_ranges(values: Dict[str, Tuple[float, float]], higher_is_better: bool) -> Dict[str, Tuple[int, int]]:
    """{name: (best rank, worst rank)} of {name: (mean, 95 % half-width)}; NaN means are unranked."""
    vals = {k: (m, h if h is not None and math.isfinite(h) else 0.0)
            for k, (m, h) in values.items() if m is not None and math.isfinite(m)}
    sign = 1.0 if higher_is_better else -1.0

    def beats(a, b):  # a better than b beyond both intervals
        (ma, ha), (mb, hb) = vals[a], vals[b]
        return sign * (ma - mb) > ha + hb

    n = len(vals)
    return {k: (1 + sum(beats(o, k) for o in vals if o != k), n - sum(beats(k, o) for o in vals if o != k))
            for k in vals}


def fmt_rank(r: Tuple[int, int]) -> str:
    return f"#{r[0]}" if r[0] == r[1] else f"#{r[0]}-{r[1]}"
