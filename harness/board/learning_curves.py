"""The board's "Learning curves": upstreams that are exported steps of one pre-training run
(``harness pretrain --export-every``; the step is in their ``upstream_facts["pretraining"]``),
per run a PNG with a panel per task (test primary metric against updates, fbank and mfcc as
lines) and the table of its points."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Dict, List, Tuple

import pandas as pd

from harness import plots
from harness.board.markdown import arrow, fmt, fmt_ci, md_table

def is_step_export(upstream: str) -> bool:
    """True for a pre-training step export (`<recipe>-it<k>-step<NNNNNN>`, harness pretrain
    --export-every): shown in the learning curves, not as rows of the summary and task tables."""
    return re.search(r"-it\d+-step\d{6}$", upstream) is not None


#: the hand-made features a learning curve is drawn against
CURVE_BASELINES = ("fbank", "mfcc")


def learning_curve_points(b: pd.DataFrame) -> Dict[str, pd.DataFrame]:
    """The learning-curve points of one board (``select_best`` rows of one corpus and profile):
    {pre-training run "<recipe>-it<k>": its points}, for runs with at least two exported steps
    on the board. An upstream is a point of its run when its ``upstream_facts["pretraining"]``
    records a step (``harness pretrain --export-every``'s exports, and the iteration's final
    export); each point is a (task, step) with the test primary metric's mean and 95% interval
    over seeds, sorted by task and updates.

    ``minutes`` count like ``updates``: the pre-training minutes behind the weights, those of the
    iterations the run continues from included (an export records its own iteration's time; the
    earlier iteration's end is read from its final export's point on this board, NaN when that
    export was not probed here)."""
    rows = []
    for _, r in b.iterrows():
        pre = (r.get("facts") or {}).get("pretraining")
        if not isinstance(pre, dict) or pre.get("step") is None or not pre.get("recipe"):
            continue
        pm = r["primary_metric"]
        secs = pre.get("train_seconds")
        rows.append({"run": f"{pre['recipe']}-it{pre.get('iteration', 1)}", "task": r["task"], "metric": pm,
                     "higher_is_better": bool(r["higher_is_better"]), "upstream": r["upstream"],
                     "updates": int(pre.get("updates") or pre["step"]), "step": int(pre["step"]),
                     "minutes": math.nan if secs is None else float(secs) / 60,
                     "mean": r.get(f"test.{pm}.mean", math.nan), "ci": r.get(f"test.{pm}.ci", math.nan),
                     "n_seeds": int(r["n_seeds"]), "iteration": int(pre.get("iteration", 1)),
                     "lineage": (pre["recipe"], pre.get("pretrain_seed", 0))})
    if not rows:
        return {}
    df = pd.DataFrame(rows)
    # iteration k's exports carry updates - step updates of the iterations before it: its minutes
    # start where the earlier iteration's export with that many updates (its final one) ended
    ended: Dict[tuple, float] = {}
    for k in sorted(df["iteration"].unique()):
        at = df.index[df["iteration"] == k]
        for i in at:
            carried = int(df.at[i, "updates"] - df.at[i, "step"])
            if carried:
                df.at[i, "minutes"] += ended.get((df.at[i, "lineage"], k - 1, carried), math.nan)
        ended.update({(df.at[i, "lineage"], k, int(df.at[i, "updates"])): df.at[i, "minutes"] for i in at})
    return {run: g.sort_values(["task", "updates"]).reset_index(drop=True)
            for run, g in df.groupby("run", sort=True) if g["updates"].nunique() >= 2}


def learning_curve_section(b: pd.DataFrame, out_dir: Path, hdir: Path) -> Tuple[List[str], List[Path]]:
    """Markdown lines of a board's "Learning curves" section and the PNGs written into ``hdir``
    (one per pre-training run, a panel per task with two or more points, fbank and mfcc as lines);
    ([], []) when no run has two exported steps on the board."""
    curves = learning_curve_points(b)
    if not curves:
        return [], []
    md = ["### Learning curves (test primary metric against pre-training updates)", "",
          "Each point: an export of the pre-training run after that many updates (`harness pretrain "
          "--export-every`), probed like any upstream (mean ± 95% interval over the seeds of its dev-best lr; "
          "the step exports appear only here and in the run details); "
          f"dashed lines: {' and '.join(CURVE_BASELINES)} with their intervals as bands. Minutes: the "
          "pre-training time behind the weights, as the updates count it (an iteration that continues "
          "from an earlier one starts at that one's end).", ""]
    paths = []
    for run, pts in curves.items():
        panels, rows = {}, []
        for task, g in pts.groupby("task", sort=True):
            col = f"test.{g['metric'].iloc[0]}"
            base = {r["upstream"]: (float(r[f"{col}.mean"]), float(r.get(f"{col}.ci", math.nan)))
                    for _, r in b[(b["task"] == task) & b["upstream"].isin(CURVE_BASELINES)].iterrows()
                    if pd.notna(r.get(f"{col}.mean"))}
            metric = g["metric"].iloc[0]
            if g["updates"].nunique() >= 2:  # a single point (the final export alone) is no curve: table only
                panels[task] = {"metric": f"test {metric}{arrow(metric, bool(g['higher_is_better'].iloc[0]))}",
                                "points": list(zip(g["updates"], g["mean"], g["ci"], g["minutes"])), "baselines": base}
            for _, p in g.iterrows():
                rows.append([task, metric, str(p["updates"]), fmt(p["minutes"]), p["upstream"],
                             fmt_ci(p["mean"], p["ci"]), str(p["n_seeds"])]
                            + [fmt_ci(*base[u]) if u in base else "–" for u in CURVE_BASELINES])
        path = plots.learning_curve(panels, hdir / plots.learning_curve_name(run), title=f"{run}: learning curve")
        paths.append(path)
        md += [f"#### {run}", "", f"![{run} learning curve]({path.relative_to(out_dir).as_posix()})", "",
               md_table(["task", "metric", "updates", "minutes", "upstream", "test (mean ± 95% CI)", "seeds",
                         *CURVE_BASELINES], rows), ""]
    return md, paths
