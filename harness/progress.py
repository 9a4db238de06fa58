"""Rich progress bars that degrade to nothing when output is not a terminal (CI logs)."""

from __future__ import annotations

import contextlib
import sys

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress, task):
        self._p, self._t = progress, task

    def advance(self, n: float = 1.0, **fields) -> None:
        if self._p is not None:
            self._p.update(self._t, advance=n, **fields)

    def update(self, **fields) -> None:
        if self._p is not None:
            self._p.update(self._t, **fields)


@contextlib.contextmanager
def progress_bar(desc: str, total: float, unit: str = "", status: bool = False):
    """A progress bar with elapsed time and ETA; `status=True` adds a free-text field."""
    if not sys.stderr.isatty():
        yield _Bar(None, None)
        return
    cols = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} " + unit),
            TimeElapsedColumn(), TimeRemainingColumn()]
    if status:
        cols.append(TextColumn("{task.fields[status]}"))
    with Progress(*cols, transient=True) as p:
        t = p.add_task(desc, total=total, status="")
        yield _Bar(p, t)
