"""A committed board with its data: re-render it from its result store and compare, exactly.

A board folder (e.g. leaderboards/pretrain/) ships its result store beside its pages,
`<board>/store/`: every run's result.json and config.json, and each pre-training iteration's
summary.json and curves.png (the board's "Pre-training diagnostics" section reads them from the
run store: without them a pre-training board cannot re-render); nothing else (no weights,
features or logs). `board_differences` renders the store into a scratch folder with the same code as
`harness leaderboard` and compares every corpus page (`<corpus>.md`) with the committed one,
byte for byte: nothing is ignored, so a page that drifts from its data (new rendering code,
a hand edit, a run missing from the store) is caught. REPORT.md / GITHUB.md are not compared:
they name the time they were generated.

    from harness.board_store import board_differences
    assert board_differences(Path("leaderboards/pretrain")) == []
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from harness.errors import HarnessError

#: the only files a board's store may hold: probe runs' results and configs, pre-training
#: iterations' summaries and training curves (harness.diagnostics reads those two)
STORE_FILES = ("result.json", "config.json", "summary.json", "curves.png")
#: pages of a board folder that are not re-rendered from the store (they carry a timestamp, or
#: are written by hand)
NOT_RENDERED = ("REPORT.md", "GITHUB.md", "FINDINGS.md")  # FINDINGS.md: what a board's numbers show, by hand


def store_problems(store: Path) -> List[str]:
    """Why `store` is not a board's result store (empty: it is): a file other than STORE_FILES,
    or not one result.json."""
    store = Path(store)
    if not store.is_dir():
        return [f"{store}: no such folder"]
    files = [p for p in sorted(store.rglob("*")) if p.is_file()]
    out = [f"{p}: a board's store holds only {', '.join(STORE_FILES)}" for p in files if p.name not in STORE_FILES]
    if not any(p.name == "result.json" for p in files):
        out.append(f"{store}: no result.json")
    return out


def copy_store(runs: Path, store: Path) -> int:
    """Copy the files of run store `runs` that a board is rendered from (STORE_FILES, at the same
    relative paths) into `store`, which must not exist yet; returns how many were copied. The
    board `harness leaderboard --runs RUNS` writes then re-renders from `store` alone."""
    import shutil

    runs, store = Path(runs), Path(store)
    if not runs.is_dir():
        raise HarnessError(f"{runs}: no such run store")
    if store.exists():
        raise HarnessError(f"{store} exists already: a board's store is written once, whole")
    n = 0
    for p in sorted(runs.rglob("*")):
        if p.is_file() and p.name in STORE_FILES:
            dst = store / p.relative_to(runs)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst)
            n += 1
    return n


def rerender(store: Path, out: Path) -> Dict[str, str]:
    """Render the board of the runs in `store` into folder `out` as `harness leaderboard` does;
    returns {page file name: its text as written}."""
    from harness.board.loader import scan
    from harness.board.page import build_from_scan

    s = scan(store)
    if s.broken:
        p, why = s.broken[0]
        raise HarnessError(f"{p}: unreadable result ({why})")
    written, _ = build_from_scan(s, out)
    return {p.name: p.read_text() for p in written if p.suffix == ".md" and p.parent == Path(out)}


def board_differences(board: Path, store: Optional[Path] = None) -> List[str]:
    """Every way the committed pages of `board` differ from a re-render of its store.

    Args:
        board: the board folder holding the committed `<corpus>.md` pages.
        store: its result store (default `board`/store).

    Returns:
        One line per difference (empty: the committed pages are exactly the re-render): a
        problem of the store, a page rendered but not committed or committed but not rendered,
        and for a page whose text differs, its first differing line (1-based) with both texts.
    """
    board = Path(board)
    store = board / "store" if store is None else Path(store)
    problems = store_problems(store)
    if problems:
        return problems
    committed = {p.name: p.read_text() for p in sorted(board.glob("*.md")) if p.name not in NOT_RENDERED}
    with tempfile.TemporaryDirectory(prefix="board-rerender-") as tmp:
        rendered = rerender(store, Path(tmp))
    out = [f"{board / n}: rendered from {store} but not committed" for n in sorted(set(rendered) - set(committed))]
    out += [f"{board / n}: committed but {store} renders no such page" for n in sorted(set(committed) - set(rendered))]
    for name in sorted(set(rendered) & set(committed)):
        if rendered[name] != committed[name]:
            out.append(f"{board / name}: {first_difference(committed[name], rendered[name])}")
    return out


def first_difference(committed: str, rendered: str) -> str:
    """"line N: committed '...' / rendered '...'" for the first line where two texts differ
    (a missing line reads <end of page>); "" when they are equal."""
    a, b = committed.split("\n"), rendered.split("\n")
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else "<end of page>"
        y = b[i] if i < len(b) else "<end of page>"
        if x != y:
            return f"line {i + 1}: committed {x!r} / rendered {y!r}"
    return ""
