"""The CI report: one markdown page (``<out>/REPORT.md``) with every leaderboard table and heatmap.

It writes the per-corpus leaderboards (``harness.leaderboard``) into the same folder and embeds
their content, so every image link is relative to ``<out>`` and resolves beside the page. The
page also says how many runs were read, how many run folders were skipped as unfinished (no
result.json yet) and which result.json files could not be read.
"""

from __future__ import annotations

from pathlib import Path

from harness import leaderboard
from harness.results import now_iso, slug

LIST_AT_MOST = 20  # unfinished folders named on the page; the count is always complete


def _demote(md: str) -> str:
    """Push every markdown heading one level down (the corpus title becomes a section)."""
    return "\n".join("#" + line if line.startswith("#") else line for line in md.splitlines())


def write_report(runs_root, out_dir) -> Path:
    """Write ``out_dir/REPORT.md`` (and the corpus pages and heatmaps it links); return its path.
    Raises HarnessError when no finished run exists under ``runs_root``."""
    s = leaderboard.scan(runs_root)
    if s.runs.empty:
        leaderboard.collect(runs_root)  # raises "no finished runs were found under <path>"
    out_dir = Path(out_dir)
    _, pages = leaderboard.build_from_scan(s, out_dir)
    n = len(s.runs)
    corpora = sorted(pages)
    md = ["# Benchmark report", "",
          f"Generated {now_iso()} from `{s.root}`.", "",
          f"- runs read: {n} finished (result.json) across {len(corpora)} corpus(es): {', '.join(corpora)}",
          f"- skipped as unfinished (run folder without result.json): {len(s.unfinished)}",
          f"- skipped as unreadable result.json: {len(s.broken)}", ""]  # fmt: skip
    for p in s.unfinished[:LIST_AT_MOST]:
        md.append(f"  - unfinished: `{p.relative_to(s.root).as_posix()}`")
    if len(s.unfinished) > LIST_AT_MOST:
        md.append(f"  - ... and {len(s.unfinished) - LIST_AT_MOST} more unfinished")
    for p, why in s.broken:
        md.append(f"  - unreadable: `{p.relative_to(s.root).as_posix()}` ({why})")
    if s.unfinished or s.broken:
        md.append("")
    md += ["Corpus pages: " + ", ".join(f"[{c}]({slug(c)}.md)" for c in corpora), ""]
    for c in corpora:
        md += [_demote(pages[c]), ""]
    path = out_dir / "REPORT.md"
    path.write_text("\n".join(md) + "\n")
    return path
