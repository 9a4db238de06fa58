"""A board page per corpus (docs/design.md section 8), and the build that writes them.

``build_from_scan`` writes one markdown file per corpus (``<out>/<corpus>.md``) plus heatmaps in
``<out>/<corpus>/<profile>/``, ``board.json`` (harness.board.export) and the manifest. Corpora are
never mixed, so synth and real numbers never share a table. A page holds, per profile: the
summary (harness.board.summary) over the SUPERB tasks, the ML-SUPERB sections per budget
(harness.board.mlsuperb_section), the trivial baselines, multi-seed comparisons
(harness.board.seed_comparisons), ablations (harness.ablation), a section per task
(harness.board.task_section), learning curves (harness.board.learning_curves), pre-training
diagnostics (harness.diagnostics) and layer-weight heatmaps (harness.board.layer_section); then
the layer analysis (harness.board.analysis_section), the "Run details" of every row, and the
audio files its runs skipped (--skip-bad) and the result.json files that could not be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pandas as pd

from harness.ablation import ablation_tables
from harness.board import export as board_export
from harness.board import manifest
from harness.board.analysis_section import analysis_corpora, analysis_page, analysis_section
from harness.board.flags import FLAG_LEGEND, flags
from harness.board.layer_section import layer_weight_section
from harness.board.learning_curves import is_step_export, learning_curve_section
from harness.board.loader import Scan
from harness.board.mlsuperb_section import is_mlsuperb_task, mlsuperb_sections
from harness.board.seed_comparisons import MIN_SEEDS_COMPARED, seed_comparisons
from harness.board.select import select_board
from harness.board.summary import RANK_NOTE, board_scores, summary_table
from harness.board.task_section import details_table, task_sections, trivial_section
from harness.diagnostics import diagnostics_section
from harness.errors import HarnessError
from harness.results import slug

SYNTH_HEADER = ("Absolute score on synth: each task's trivial answer = 0, its perfect value = 1000 "
                "(not comparable with published SUPERB scores)")  # fmt: skip


def commit_line(runs: pd.DataFrame) -> str:
    """One line naming the git commit(s) the finished runs were made at, with counts: a board made
    by one command at one commit names one."""
    counts = runs["git_sha"].astype(str).value_counts() if "git_sha" in runs else pd.Series(dtype=int)
    if len(counts) == 1:
        return f"Code: all {int(counts.iloc[0])} runs were made at git commit `{counts.index[0]}`."
    listed = ", ".join(f"`{sha}` ({int(n)})" for sha, n in sorted(counts.items()))
    return (f"Code: the runs were made at {len(counts)} git commits: {listed}; runs of one task version are "
            "pooled across them, so a board meant as one measurement should be re-made at one commit.")


def render_corpus(best: pd.DataFrame, corpus: str, out_dir: Path, n_runs: int,
                  runs_root: Optional[Path] = None, set_aside: Sequence[str] = (),
                  commits: str = "") -> Tuple[str, List[Path]]:
    """Markdown for one corpus (links relative to ``out_dir``) and the heatmap files written;
    ``runs_root``: where to look for the pre-training run folders of the diagnostics section;
    ``commits``: the line of `commit_line` for the corpus's runs (left out when empty)."""
    out_dir = Path(out_dir)
    c = best[best["corpus"] == corpus]
    kinds = sorted(set(c["corpus_kind"]))
    if len(kinds) != 1:
        raise HarnessError(f"corpus {corpus!r} has runs of several kinds ({', '.join(kinds)}); they cannot share a board")
    kind = kinds[0]
    md = [f"# Leaderboard: {corpus} ({kind})", ""]
    if kind == "synth":
        md += [f"> {SYNTH_HEADER}", ""]
    md += [f"{n_runs} finished runs. Each cell: test mean ± 95% Student-t half-width over the seeds of the "
           "learning rate whose mean dev primary metric is best (\"mean per lr\" lists those means); the bare "
           "mean where that lr has one seed. The runs behind every row (run ids, config hashes, git shas, "
           "versions, machines) are listed under [Run details](#run-details) at the bottom.", "",
           *([commits, ""] if commits else [])]
    versions_here = sorted({f"{r['task']} v{r['task_version']}" for _, r in c.iterrows()})
    md += [f"Corpus version {', '.join(sorted(set(c['corpus_version'])))}; task versions: {', '.join(versions_here)}. "
           "Runs of any other corpus or task version are never pooled, ranked or scored with these"
           + (": " + " ".join(set_aside) if set_aside else " (none were found)."), ""]
    paths: List[Path] = []
    details: List[str] = []
    for profile, b in c.groupby("profile", sort=True):
        hdir = out_dir / slug(corpus) / slug(str(profile))
        everything = b
        if not b["upstream"].map(is_step_export).all():  # step exports: learning curves only
            b = b[~b["upstream"].map(is_step_export)]
        is_ml = b["task"].map(is_mlsuperb_task)
        md += [f"## Profile: {profile}", ""]
        if (~is_ml).any():
            sb = b[~is_ml]
            board, notes = board_scores(sb, kind)
            md += ["### Summary (test primary metrics)", "", summary_table(sb, board), "", RANK_NOTE, ""]
            md += [n for note in notes for n in (note, "")]
        if any(flags(r) for _, r in b.iterrows()):
            md += [FLAG_LEGEND, ""]
        if is_ml.any():
            ml_md, ml_paths = mlsuperb_sections(b[is_ml], kind, out_dir, hdir)
            md += ml_md
            paths += ml_paths
        md += trivial_section(b)
        compared = seed_comparisons(b)
        if compared:
            md += [f"### Multi-seed comparisons (test; pairs of upstreams with >= {MIN_SEEDS_COMPARED} probe seeds)",
                   "", "Each probe of these upstreams was trained with several seeds at its dev-best lr; a "
                   "difference counts only when the two 95% intervals do not overlap.", "", compared, ""]
        abl = ablation_tables(b)
        if abl:
            md += ["### Ablations", ""] + [x for block in abl for x in (block, "")]
        md += task_sections(b)
        for section_md, section_paths in (learning_curve_section(everything, out_dir, hdir),
                                          diagnostics_section(b, runs_root, out_dir, hdir),
                                          layer_weight_section(b, out_dir, hdir)):
            md += section_md
            paths += section_paths
        details += [f"### Profile: {profile}", "", details_table(everything), ""]
    analysis_md, analysis_paths = analysis_section(runs_root, corpus, c, out_dir)
    md += analysis_md
    paths += analysis_paths
    md += ["## Run details", "", "The runs behind each task-table row, keyed by task and upstream (the selected lr's "
           "seeds).", ""] + details
    return "\n".join(md), paths


def skipped_section(runs: pd.DataFrame) -> List[str]:
    """Markdown lines naming, per upstream and task, the unreadable audio files its runs skipped
    (--skip-bad, at manifest or decode time); [] when none did."""
    out = []
    for (up, task), g in runs.groupby(["upstream", "task"], sort=True):
        files = sorted({Path(v.split(": ", 1)[0]).name for d in g["skipped_files"] for v in d.values()})
        if files:
            shown = ", ".join(files[:10]) + (f", ... ({len(files) - 10} more)" if len(files) > 10 else "")
            out.append(f"- {up} / {task}: {len(files)} unreadable audio file(s) skipped (--skip-bad): {shown}")
    return ["## Skipped audio files", "", *out, ""] if out else []


def unreadable_section(s: Scan, corpus: str) -> List[str]:
    """Markdown naming every result.json under this corpus's folder of the run store (or under no
    corpus folder) that could not be read, with why: those runs are not on the board."""
    pages = {slug(c) for c in s.runs["corpus"].unique()} if not s.runs.empty else set()
    out = []
    for p, why in s.broken:
        top = p.relative_to(s.root).parts[0]
        if top == slug(corpus) or top not in pages:
            out.append(f"- `{p.relative_to(s.root).as_posix()}`: {why}")
    if not out:
        return []
    return ["## Unreadable results", "", f"{len(out)} result.json file(s) could not be read and are not on this "
            "board (`harness eval` redoes such a run):", "", *out, ""]


def build_from_scan(s: Scan, out_dir, formats: Sequence[str] = ()) -> Tuple[List[Path], Dict[str, str]]:
    """Write the corpus pages of a scan, ``board.json`` (and ``board.<fmt>`` per ``formats``:
    harness.board.export) and the manifest; returns (written paths, {corpus: markdown}).

    Files an earlier build listed in the manifest and this one did not write again (a heatmap of
    an upstream no longer on the board) are deleted; no other file in ``out_dir`` ever is."""
    probed = set(s.runs["corpus"].unique()) if not s.runs.empty else set()
    analysed_only = [c for c in analysis_corpora(s.root) if c not in probed]
    if s.runs.empty and not analysed_only:
        raise HarnessError(f"no finished runs were found under {s.root}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    earlier = manifest.read(out_dir)
    written, pages = [], {}
    if s.runs.empty:  # layer analyses only: no probe rows, so no board.json either
        board_export.check_formats(formats)
        best, set_aside, data_files = s.runs, [], []
    else:
        best, set_aside = select_board(s.runs)
        data_files = board_export.write_board(best, out_dir, formats)  # an unknown format fails before any page
    for corpus in analysed_only:
        md, pngs = analysis_page(s.root, corpus, out_dir)
        page = out_dir / f"{slug(corpus)}.md"
        page.write_text(md + "\n")
        written += [page] + pngs
        pages[corpus] = md
    for corpus in sorted(best["corpus"].unique()) if not best.empty else []:
        n = int((s.runs["corpus"] == corpus).sum())
        aside = [x for x in set_aside if x.startswith(f"{corpus}:") or x.startswith(f"{corpus} /")]
        md, pngs = render_corpus(best, corpus, out_dir, n, s.root, aside,
                                 commit_line(s.runs[s.runs["corpus"] == corpus]))
        md = "\n".join([md, *skipped_section(s.runs[s.runs["corpus"] == corpus]), *unreadable_section(s, corpus)])
        page = out_dir / f"{slug(corpus)}.md"
        page.write_text(md + "\n")
        written += [page] + pngs
        pages[corpus] = md
    written += data_files
    manifest.replace(out_dir, earlier, written)
    return written, pages
