"""`harness leaderboard`, `report`, `compare` and `ci`: finished runs into boards, summary pages
and the regression gate. Registered by harness/cli.py."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from harness.cli_options import CACHE, CACHE_HELP, RUNS, RUNS_HELP, BoardFormat, ReportFormat, console, friendly


@friendly
def leaderboard(runs: Path = typer.Option(RUNS, help=RUNS_HELP),
                out: Optional[Path] = typer.Option(None, help="board folder (default RUNS/board, next to the runs; "
                                                   "a committed board is rewritten only when named here)"),
                fmt: Optional[List[BoardFormat]] = typer.Option(None, "--format", help="also write board.<fmt>, the "
                                                                "same table (repeatable; board.json is always "
                                                                "written; parquet keeps the column dtypes: "
                                                                "pandas.read_parquet)")):
    """Aggregate finished runs into leaderboard markdown, heatmaps and board.json (one row per
    upstream x task; columns: harness/board/export.py). Only files an earlier build wrote there
    (its manifest) are ever deleted."""
    from harness.leaderboard import build

    for p in build(runs, out or runs / "board", [f.value for f in fmt or []]):
        console.print(f"wrote {p}", highlight=False, soft_wrap=True)  # a path is never broken across lines


@friendly
def report(runs: Path = typer.Option(RUNS, help=RUNS_HELP),
           out: Optional[Path] = typer.Option(None, help="board folder (default RUNS/board, as harness leaderboard)"),
           fmt: ReportFormat = typer.Option(ReportFormat.markdown, "--format", help="markdown: REPORT.md; github: "
                                            "GITHUB.md, for $GITHUB_STEP_SUMMARY"),
           base: Optional[Path] = typer.Option(None, help="base run store to compare against"),
           threshold: Optional[float] = typer.Option(None, help="single-seed change that counts, in metric units (default 2)")):
    """Write a one-screen summary page (summary tables, heatmaps, links, comparison with --base)."""
    from harness.report import write_report

    console.print(f"wrote {write_report(runs, out or runs / 'board', fmt.value, base, threshold)}")


@friendly
def compare(base: Path = typer.Argument(..., help="base run store"), new: Path = typer.Argument(..., help="new run store"),
            threshold: Optional[float] = typer.Option(None, help="single-seed change that counts, in metric units (default 2)"),
            out: Optional[Path] = typer.Option(None, help="also write the markdown table to this file")):
    """Compare two run stores metric by metric (▲/▼ beyond the seed intervals or the threshold);
    exit 1 when a primary metric regresses."""
    from harness.compare import compare as run_compare, regressions, to_markdown

    cells = run_compare(base, new, threshold)
    md = to_markdown(cells, str(base), str(new))
    print(md)
    if out:
        out.write_text(md + "\n")
    if regressions(cells):
        raise typer.Exit(1)


@friendly
def ci(runs: Path = typer.Option(Path("runs-ci"), help=RUNS_HELP), cache: Path = typer.Option(CACHE, help=CACHE_HELP),
       out: Path = typer.Option(Path("board-ci"), help="folder for the board and the report"),
       base: Optional[Path] = typer.Option(None, help="base run store"),
       threshold: Optional[float] = typer.Option(None, help="single-seed change that counts, in metric units (default 2)"),
       seeds: int = typer.Option(3, help="probe seeds per (upstream, task)"),
       fmt: ReportFormat = typer.Option(ReportFormat.github, "--format", help="report page format (see harness "
                                        "report)")):
    """The CI-sized benchmark: synth tiny -> brief pre-training -> PR/SID/LID/SD probes -> board,
    report and (with --base) the regression gate; exit 1 on a failed job or a regression."""
    from harness.ci import benchmark

    o = benchmark(runs, cache, out, base=base, threshold=threshold, seeds=seeds, fmt=fmt.value, log=console.print)
    console.print(f"wrote {o.report} in {o.seconds:.0f} s; {o.failed} failed job(s), {o.regressions} regression(s)")
    raise typer.Exit(o.exit_code)
