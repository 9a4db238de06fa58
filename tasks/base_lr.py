"""The paper profile's learning-rate search, a helper of tasks/base.py (not a task). SUPERB
searched the lr per upstream and task (docs/conformance.md, "Learning-rate search"), so every
SUPERB task's paper profile runs a grid of whole decades around its recipe's lr, and the board
picks the dev-best one."""

from __future__ import annotations

import math
from typing import Sequence, Tuple

#: the learning-rate range SUPERB's maintainers search, in decades (s3prl issue 498: "from 1.0e-1
#: to 1.0e-7 with log scale"); issue 120: five lrs per upstream and task in the SUPERB paper
SUPERB_LR_RANGE = (1e-7, 1e-1)
#: how many decades the paper profile searches at least (issue 120's five)
SUPERB_LR_COUNT = 5


def superb_lr_grid(reference: float, runfile: Sequence[float] = ()) -> Tuple[float, ...]:
    """The paper profile's learning-rate grid: whole decades (1e-k), ascending.

    Starts from the decades of `runfile` (the grid the s3prl maintainers' own lr-search script
    uses for the task, see docs/conformance.md) that lie in SUPERB_LR_RANGE, plus the recipe's
    `reference` lr, fills the gaps, then widens one decade at a time on the side nearer the
    reference (ties: downwards) until it holds SUPERB_LR_COUNT decades.

    Args:
        reference: the recipe's lr (optimizer.lr of its config), a power of ten.
        runfile: the maintainers' grid for the task; () where they published none.

    Returns:
        The grid, e.g. superb_lr_grid(1e-4) == (1e-06, 1e-05, 0.0001, 0.001, 0.01).
    """
    def decade(x: float) -> int:
        k = round(math.log10(x))
        if not (x > 0 and math.isclose(x, 10.0 ** k, rel_tol=1e-9)):
            raise ValueError(f"superb_lr_grid: {x!r} is not a power of ten")
        return k

    lo, hi = (decade(x) for x in SUPERB_LR_RANGE)
    ref = decade(reference)
    kept = sorted({decade(x) for x in runfile if lo <= decade(x) <= hi} | {ref})
    a, b = kept[0], kept[-1]
    while b - a + 1 < SUPERB_LR_COUNT and (a > lo or b < hi):
        if a > lo and (b >= hi or ref - (a - 1) <= (b + 1) - ref):
            a -= 1
        else:
            b += 1
    return tuple(float(f"1e{k}") for k in range(a, b + 1))
