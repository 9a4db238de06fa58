"""Leaderboards from run folders (docs/design.md section 8): the public entry of harness.board.

``build`` is what ``harness leaderboard``, ``./run demo`` and CI call. The board itself lives in
harness.board: ``loader`` (run folders -> one DataFrame row per finished run), ``select`` (the
runs pooled and the one best-lr rule), ``page`` (a markdown page per corpus, from the section
modules) and ``export`` (board.json / csv / parquet). The names below are re-exported because
callers outside the board (tests, harness.report, harness.compare) read runs through them.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from harness.board.analysis_section import analysis_corpora
from harness.board.loader import Scan, collect, scan
from harness.board.page import build_from_scan
from harness.board.select import select_best, select_board

__all__ = ["Scan", "build", "build_from_scan", "collect", "scan", "select_best", "select_board"]


def build(runs_root, out_dir, formats: Sequence[str] = (), log=print) -> List[Path]:
    """Leaderboard markdown per corpus (``out_dir/<corpus>.md``) plus heatmaps, ``board.json`` and
    ``board.<fmt>`` for each of ``formats`` (csv | json | parquet); returns the paths written. Every
    result.json that could not be read is named to ``log``, one line each, and on the page."""
    s = scan(runs_root)
    for p, why in s.broken:
        log(f"unreadable result {p} ({why}): left off the board")
    if s.runs.empty and not analysis_corpora(s.root):
        collect(runs_root)  # raises the "no finished runs" error with the path
    return build_from_scan(s, out_dir, formats)[0]
