"""What a board build wrote, so that the next build deletes only its own stale files.

``harness leaderboard`` may be pointed at a folder that holds other files (a committed board,
someone's notes, PNGs of another tool). A build therefore never globs and deletes: it lists every
file it wrote in ``<out>/.board-manifest.json``, and the next build deletes the files of that list
it did not write again (e.g. the heatmap of an upstream that left the board). A file that no
manifest names is never touched; a folder without a manifest (a board from before manifests, or
someone else's folder) loses nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, List, Set

NAME = ".board-manifest.json"


def read(out_dir: Path) -> Set[str]:
    """The paths (relative to ``out_dir``, POSIX) that the previous build listed; an absent or
    unreadable manifest lists nothing (so nothing will be deleted)."""
    try:
        files = json.loads((Path(out_dir) / NAME).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return set()
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()


def _inside(out_dir: Path, rel: str) -> Path | None:
    """``out_dir / rel`` when it stays inside ``out_dir`` (a hand-edited manifest naming ../x or an
    absolute path deletes nothing), else None."""
    root = Path(out_dir).resolve()
    p = (root / rel).resolve()
    return p if p != root and root in p.parents else None


def replace(out_dir: Path, earlier: Iterable[str], written: Iterable[Path]) -> List[Path]:
    """Delete the files of ``earlier`` that are not in ``written``, then record ``written`` as the
    new manifest. Returns the deleted paths.

    Args:
        out_dir: the board folder.
        earlier: the previous manifest (``read`` before the build wrote anything).
        written: every file this build wrote (absolute or relative to the working directory,
            all inside ``out_dir``).
    """
    out_dir = Path(out_dir)
    root = out_dir.resolve()
    now = sorted({Path(p).resolve().relative_to(root).as_posix() for p in written})
    deleted = []
    for rel in sorted(set(earlier) - set(now)):
        p = _inside(out_dir, rel)
        if p is not None and p.is_file():
            p.unlink()
            deleted.append(p)
    (out_dir / NAME).write_text(json.dumps({"written_by": "harness leaderboard", "files": now}, indent=1) + "\n")
    return deleted
