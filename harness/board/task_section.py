"""The task sections of a board page: per task, its table (one row per upstream: test metrics,
the dev metric the lr was chosen on, the mean per lr, seeds), the lines under it (probe updates,
probe data, departures, older configs set aside), the trivial baselines' table and the run
details table."""

from __future__ import annotations

from typing import List

import pandas as pd

from harness.board.flags import flags
from harness.board.markdown import arrow, fmt, fmt_ci, md_table

def _distinct(t: pd.DataFrame, col: str) -> list:
    """The sorted distinct values of a list column of ``select_best`` rows ([] if absent)."""
    return sorted({v for row in t.get(col, pd.Series(dtype=object)) for v in (row or [])})


def probe_updates_line(t: pd.DataFrame) -> str:
    """'Probe updates: N ...' for one task's ``select_best`` rows (each run's timing), so that a
    board whose probes trained longer or shorter than another's says so; '' when none recorded."""
    steps = _distinct(t, "probe_steps")
    if not steps:
        return ""
    if len(steps) == 1:
        return f"Probe updates: {steps[0]} per run."
    return f"Probe updates: {steps[0]}-{steps[-1]} per run (they differ between these runs; see the run details)."


def probe_data_line(t: pd.DataFrame) -> str:
    """'Probe data: <corpus> <size>.' for one task's ``select_best`` rows, from the runs' recorded
    corpus size, so a task probed on a bigger generated corpus than the board's others says so
    (and a task whose upstreams were probed on different sizes is flagged); '' when no run of a
    sized corpus (a real corpus has no size)."""
    sizes = _distinct(t, "corpus_sizes")
    if not sizes:
        return ""
    corpus = str(t["corpus"].iloc[0])
    if len(sizes) == 1:
        return f"Probe data: {corpus} {sizes[0]} (its train, dev and test splits)."
    return (f"Probe data: {corpus} {', '.join(sizes)}: these upstreams were probed on different corpus sizes, "
            "so their rows do not compare; see the run details.")


def _metrics(b: pd.DataFrame, split: str) -> List[str]:
    return sorted({c.split(".")[1] for c in b.columns if c.startswith(f"{split}.") and c.endswith(".mean")
                   and b[c].notna().any()})  # fmt: skip


def task_table(t: pd.DataFrame) -> str:
    """One row per upstream (best test primary first): test metrics, dev primary, the lr choice and
    the seed count; the runs behind each row are in the page's run details (``details_table``)."""
    primary, hib = t["primary_metric"].iloc[0], bool(t["higher_is_better"].iloc[0])
    t = t.sort_values(f"test.{primary}.mean", ascending=not hib, na_position="last")
    others = [m for m in _metrics(t, "test") if m != primary]
    head = ["upstream", f"test {primary}{arrow(primary, hib)} (mean ± 95% CI)"]
    head += [f"test {m}{arrow(m)}" for m in others]
    head += [f"dev {primary}", "lr", "selected on", "mean per lr", "seeds"]
    rows = []
    for _, r in t.iterrows():
        mark = " †" if r.get("departures") else ""
        cells = [r["upstream"], fmt_ci(r.get(f"test.{primary}.mean"), r.get(f"test.{primary}.ci")) + mark + flags(r)]
        cells += [fmt_ci(r.get(f"test.{m}.mean"), r.get(f"test.{m}.ci")) for m in others]
        cells += [fmt_ci(r.get(f"dev.{primary}.mean"), r.get(f"dev.{primary}.ci")), f"{r['lr']:g}",
                  r["selected_on"] + ("" if r["selected_on"] == "dev" else " (no dev set)"),
                  ", ".join(f"{k:g}: {fmt(v)}" for k, v in sorted(r["lr_scores"].items())), str(r["n_seeds"])]
        rows.append(cells)
    return md_table(head, rows)


def details_table(b: pd.DataFrame) -> str:
    """The runs behind every task-table row of a board, keyed by (task, upstream): lr, seeds, run
    ids, config hashes, git shas, versions and machines."""
    rows = []
    for _, r in b.sort_values(["task", "upstream"]).iterrows():
        rows.append([r["task"], r["upstream"], f"{r['lr']:g}", ", ".join(map(str, r["seeds"])), ", ".join(r["run_ids"]),
                     ", ".join(r["config_hashes"]), ", ".join(r["git_shas"]), "; ".join(r["versions"]),
                     "; ".join(r["machines"])])  # fmt: skip
    return md_table(["task", "upstream", "lr", "seeds", "run ids", "config hash", "git sha", "versions", "machine"],
                    rows)


def set_aside_notes(t: pd.DataFrame) -> List[str]:
    """One line per row of a task table whose group had runs of older configs (not pooled)."""
    out = []
    for _, r in t.sort_values("upstream").iterrows():
        older = r.get("set_aside") or {}
        if older:
            runs = sum(older.values())
            out.append(f"{r['upstream']}: {len(older)} older config(s) set aside ({runs} run(s), config hash "
                       f"{', '.join(older)}); only the newest config ({', '.join(r['config_hashes'])}) is shown, "
                       "runs of different configs are never pooled as seeds.")
    return out


def trivial_table(b: pd.DataFrame) -> str:
    """Per task: the trivial answer its runs scored on test (the same test set for every
    upstream; the fbank run's when present), "" if no run saved one."""
    rows = []
    for task, t in b.groupby("task", sort=True):
        t = t[t["trivial"].map(bool)] if "trivial" in t else t.iloc[0:0]
        if t.empty:
            continue
        r = t.sort_values(by="upstream", key=lambda u: u != "fbank").iloc[0]["trivial"]
        hib = bool(b[b["task"] == task]["higher_is_better"].iloc[0])
        pm = b[b["task"] == task]["primary_metric"].iloc[0]
        cells = [f"{m}{arrow(m, hib if m == pm else None)} {fmt(v)}" for m, v in r["test"].items()]
        rows.append([task, r["what"], "; ".join(cells)])
    return md_table(["task", "trivial answer (no model)", "test"], rows) if rows else ""


def floor_notes(t: pd.DataFrame) -> List[str]:
    """One line per row of a task table whose head cannot reach a perfect score on test: a CTC
    head at a coarse upstream's frame rate (tasks.base_ctc, result extra `ctc_floor_test`)."""
    out = []
    for _, r in t.sort_values("upstream").iterrows():
        f = r.get("ctc_floor")
        if isinstance(f, dict) and r["primary_metric"] in f:
            out.append(f"{r['upstream']}: with one label per frame at {f['emit_rate_hz']:g} Hz its head cannot reach a "
                       f"test {r['primary_metric']} below {f[r['primary_metric']]:.2f} ({f['utterances']} of {f['of']} "
                       f"test utterances have more phones than it can emit: {f['forced_deletions']} forced deletions"
                       + (f", {f['unseen_tokens']} tokens never seen in training" if f.get("unseen_tokens") else "")
                       + "); part of its gap to finer-framed upstreams is this cap, not the representation.")
    return out


def trivial_section(b: pd.DataFrame) -> List[str]:
    """Markdown lines of a board's "Trivial baselines" section ([] when no run saved one)."""
    trivial = trivial_table(b)
    if not trivial:
        return []
    return ["### Trivial baselines (test)", "", "What a probe scores if it has learned nothing: each task's "
            "trivial answer, scored on the test set like the probes.", "", trivial, ""]


def task_sections(b: pd.DataFrame) -> List[str]:
    """Markdown lines of a board's task sections: per task its table and the lines under it."""
    md: List[str] = []
    for task, t in b.groupby("task", sort=True):
        pm = t["primary_metric"].iloc[0]
        direction = "higher is better" if t["higher_is_better"].iloc[0] else "lower is better"
        md += [f"### Task {task} (primary: {pm}, {direction}; task version {t['task_version'].iloc[0]})", "",
               task_table(t), ""]
        md += [n for line in (probe_updates_line(t), probe_data_line(t)) if line for n in (line, "")]
        deps = sorted({d for ds in t["departures"] for d in ds}) if "departures" in t else []
        if deps:
            md += ["† Departure from the reference recipe kept by this harness: " + "; ".join(deps) + ".", ""]
        md += [n for line in set_aside_notes(t) + floor_notes(t) for n in (line, "")]
    return md
