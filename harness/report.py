"""The CI report: a one-screen summary of a run store, optionally compared with a base store.

``write_report`` writes the full corpus pages (``harness.board.page``) and their heatmaps into
``out_dir``, then one summary page beside them, so every image link is relative to ``out_dir``:

- ``REPORT.md`` (format ``markdown``): per corpus and profile the board's summary tables (the
  upstreams' facts, test primary metrics with per-task ranks, the SUPERB-style score with the line
  saying what it means, the ML-SUPERB score per budget), the task heatmaps (norm-corrected
  weights), links to the full pages, the run counts (unfinished and unreadable folders named)
  and, with a base store, the comparison.
- ``GITHUB.md`` (format ``github``): the same for ``$GITHUB_STEP_SUMMARY``: a status line first
  (regressions or none), the comparison, then the summary tables; a step summary cannot show
  the artifact's images, so the task heatmaps are text tables (per-layer percentages with
  unicode blocks, harness.board.layer_text), and a line links the workflow run's artifacts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from harness import compare as cmp
from harness.board import layer_text
from harness.board.loader import collect, scan
from harness.board.mlsuperb_section import is_mlsuperb_task, mlsuperb_board_scores
from harness.board.page import build_from_scan
from harness.board.select import select_board
from harness.board.summary import RANK_NOTE, board_scores, summary_table
from harness.errors import HarnessError
from harness.results import now_iso, slug

LIST_AT_MOST = 20  # unfinished folders named on the page; the count is always complete
FORMATS = {"markdown": "REPORT.md", "github": "GITHUB.md"}


def _weight_tables(b) -> List[str]:
    """The task heatmaps as text (harness.board.layer_text): a table per task of the upstreams'
    norm-corrected layer weights, for the GitHub summary, which cannot show the artifact's PNGs."""
    md = []
    for task, t in b.groupby("task", sort=True):
        w = {r["upstream"]: r["lw_corrected"] for _, r in t.sort_values("upstream").iterrows()}
        table = layer_text.layer_table(w)
        if table:
            md += [f"Layer weights, {task} (norm-corrected, percent):", "", table, "", layer_text.legend(w), ""]
    return md


def artifact_line() -> str:
    """Where the board's files are: the workflow run's artifacts when GitHub's environment names
    the run (GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID), else the board folder."""
    env = [os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if all(env):
        url = f"{env[0]}/{env[1]}/actions/runs/{env[2]}#artifacts"
        return f"[The uploaded board artifact]({url}) (`benchmark-board`)"
    return "The uploaded board artifact (`benchmark-board`)"


def _summaries(best, corpus: str, out_dir: Path, images: bool = True) -> List[str]:
    """Summary tables and task heatmap links of one corpus (every profile); ``images=False``:
    the layer weights as text tables instead (a GitHub step summary shows no artifact image)."""
    c = best[best["corpus"] == corpus]
    kind = c["corpus_kind"].iloc[0]
    md = []
    for profile, b in c.groupby("profile", sort=True):
        md += [f"### {corpus}, profile {profile}", ""]
        is_ml = b["task"].map(is_mlsuperb_task)
        for part, label in ((b[~is_ml], "SUPERB tasks"), (b[is_ml], "ML-SUPERB tasks")):
            if part.empty:
                continue
            if label == "SUPERB tasks":
                board, notes = board_scores(part, kind)
            else:
                board, notes = mlsuperb_board_scores(part), []
            md += [f"{label}:", "", summary_table(part, board), ""] + [*notes[:1], ""] * bool(notes)
        md += [RANK_NOTE, ""]
        if not images:
            md += _weight_tables(b)
            continue
        hdir = out_dir / slug(corpus) / slug(str(profile))
        imgs = [hdir / f"heatmap_task_{slug(t)}_corrected.png" for t in sorted(b["task"].unique())]
        imgs = [p for p in imgs if p.is_file()]
        if imgs:
            md += ["Layer weights per task (norm-corrected, percent):", "",
                   " ".join(f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in imgs), ""]
    return md


def write_report(runs_root, out_dir, fmt: str = "markdown", base_runs=None,
                 threshold: Optional[float] = None, cells: Optional[List[cmp.Cell]] = None) -> Path:
    """Write the summary page (``REPORT.md`` or ``GITHUB.md``) and the corpus pages it links.

    Args:
        runs_root: the run store to report.
        out_dir: where the pages and heatmaps go (every link is relative to it).
        fmt: "markdown" or "github".
        base_runs: a base run store to compare against (``harness.compare``), or None.
        threshold: the single-seed threshold of the comparison (metric units).
        cells: that comparison when the caller has it already (``harness ci``); else computed here.

    Returns:
        The summary page's path.

    Raises:
        HarnessError: an unknown format, or no finished run under ``runs_root``.
    """
    if fmt not in FORMATS:
        raise HarnessError(f"unknown report format {fmt!r}: use {' | '.join(FORMATS)}")
    s = scan(runs_root)
    if s.runs.empty:
        collect(runs_root)  # raises "no finished runs were found under <path>"
    out_dir = Path(out_dir)
    _, pages = build_from_scan(s, out_dir)
    best = select_board(s.runs)[0]
    if cells is None and base_runs is not None:
        cells = cmp.compare(base_runs, runs_root, threshold)
    corpora = sorted(pages)
    counts = [f"- runs read: {len(s.runs)} finished (result.json) across {len(corpora)} corpus(es): "
              f"{', '.join(corpora)}",
              f"- skipped as unfinished (run folder without result.json): {len(s.unfinished)}",
              f"- skipped as unreadable result.json: {len(s.broken)}"]
    counts += [f"  - unfinished: `{p.relative_to(s.root).as_posix()}`" for p in s.unfinished[:LIST_AT_MOST]]
    if len(s.unfinished) > LIST_AT_MOST:
        counts.append(f"  - ... and {len(s.unfinished) - LIST_AT_MOST} more unfinished")
    counts += [f"  - unreadable: `{p.relative_to(s.root).as_posix()}` ({why})" for p, why in s.broken]
    links = "Full boards (every metric, interval, lr, seed and run id): " + ", ".join(
        f"[{c}]({slug(c)}.md)" for c in corpora)
    comparison = []
    if cells is not None:
        reg = cmp.regressions(cells)
        comparison = [f"## Compared with the base store `{base_runs}`", "", cmp.to_markdown(cells), ""]
    summaries = [x for c in corpora for x in _summaries(best, c, out_dir, images=fmt == "markdown")]
    if fmt == "markdown":
        md = ["# Benchmark report", "", f"Generated {now_iso()} from `{s.root}`.", "", *counts, "", links, "",
              "## Summary (test primary metrics)", "", *summaries, *comparison]
    else:
        status = ("No base store to compare with." if cells is None else
                  f"**{len(reg)} regression(s)** {cmp.DOWN} of a primary metric beyond its interval or threshold."
                  if reg else "No regression of a primary metric against the base store.")
        md = ["## Speech SSL benchmark", "", status, "", *comparison,
              "## Summary (test primary metrics)", "", *summaries,
              f"{artifact_line()} holds the heatmaps, `board.json` and the full boards "
              f"({', '.join(f'`{slug(c)}.md`' for c in corpora)}).", "", *counts]
    path = out_dir / FORMATS[fmt]
    path.write_text("\n".join(md) + "\n")
    return path
