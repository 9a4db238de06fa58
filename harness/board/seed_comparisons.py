"""The board's "Multi-seed comparisons": pairs of upstreams with several probe seeds on a task,
and whether one beats the other beyond both 95 % intervals."""

from __future__ import annotations

import pandas as pd

from harness.board.markdown import arrow, fmt, fmt_ci, md_table

MIN_SEEDS_COMPARED = 3


def seed_comparisons(b: pd.DataFrame) -> str:
    """For each task where two or more upstreams have >= 3 probe seeds, every pair of them: test
    means with 95% intervals and whether one beats the other beyond both intervals (the intervals
    do not overlap) or the difference lies within them. Read off the run folders, whichever way
    it falls (e.g. WavLM vs HuBERT on SD / SS at equal pre-training updates)."""
    out = []
    for task, t in b.groupby("task", sort=True):
        pm, hib = t["primary_metric"].iloc[0], bool(t["higher_is_better"].iloc[0])
        mean, ci = f"test.{pm}.mean", f"test.{pm}.ci"
        if mean not in t:
            continue
        t = t[(t["n_seeds"] >= MIN_SEEDS_COMPARED) & t[mean].notna()].sort_values("upstream")
        recs = t.to_dict("records")
        for i in range(len(recs)):
            for j in range(i + 1, len(recs)):
                a, c = recs[i], recs[j]
                ma, ca, mc, cc = a[mean], a[ci], c[mean], c[ci]
                better = (ma > mc) == hib
                win, lose = (a, c) if better else (c, a)
                apart = (ma - ca > mc + cc) or (mc - cc > ma + ca)
                verdict = (f"{win['upstream']} better beyond the intervals" if apart
                           else f"within the intervals ({win['upstream']} ahead by {fmt(abs(ma - mc))})")
                out.append([task, f"{pm}{arrow(pm, hib)}", a["upstream"], fmt_ci(ma, ca), f"{a['n_seeds']}",
                            c["upstream"], fmt_ci(mc, cc), f"{c['n_seeds']}", verdict])
    if not out:
        return ""
    return md_table(["task", "metric", "upstream A", "A (test, mean ± 95% CI)", "A seeds", "upstream B",
                     "B (test, mean ± 95% CI)", "B seeds", "verdict"], out)
