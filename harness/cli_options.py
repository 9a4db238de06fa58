"""What the `harness` commands share (harness/cli.py assembles them): the console, the run store
and cache defaults, the closed choices and the error handling of every command."""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console

from harness.diskio import os_failure
from harness.data.corpora import kinds_help
from harness.errors import HarnessError
from harness.export import FORMATS as EXPORT_FORMATS

console = Console(stderr=True)

CORPUS_HELP = kinds_help()
RUNS = Path("runs")
CACHE = Path("cache")
RUNS_HELP = "run store: one folder per finished (or failed) run"
CACHE_HELP = "feature cache: every upstream's hidden states per corpus split"


# Closed choices, as enums so that --help lists them. Each repeats a list owned elsewhere (kept
# out of this module so that `harness --help` imports no torch); tests/unit/test_cli_docs.py
# checks that the two agree.
class Profile(str, Enum):
    """Probe profiles every task defines (tasks/base.py Task.profiles)."""

    quick = "quick"
    paper = "paper"


class Launcher(str, Enum):
    """harness.launch.LAUNCHERS."""

    local = "local"
    slurm = "slurm"


class ReportFormat(str, Enum):
    """harness.report.FORMATS."""

    markdown = "markdown"
    github = "github"


class BoardFormat(str, Enum):
    """harness.board.export.FORMATS."""

    csv = "csv"
    json = "json"
    parquet = "parquet"


class SynthSize(str, Enum):
    """harness.data.synth_spec.SIZES."""

    tiny = "tiny"
    small = "small"
    medium = "medium"


class CacheDtype(str, Enum):
    """harness.config.CACHE_DTYPES."""

    float16 = "float16"
    int8 = "int8"


class ExtractDtype(str, Enum):
    """harness.config.EXTRACT_DTYPES."""

    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class Listing(str, Enum):
    upstreams = "upstreams"
    tasks = "tasks"
    recipes = "recipes"


ExportFormat = Enum("ExportFormat", {f: f for f in EXPORT_FORMATS}, type=str)  # harness.export.FORMATS
# not an enum: cuda:N takes any N (harness.config checks the value, harness.evaluate the machine)
DEVICE_METAVAR = "[cpu|cuda|cuda:N|mps]"


def friendly(fn):
    """Print HarnessErrors and operating-system failures (disk full, read-only, permissions, a
    file where a folder is expected: harness.diskio.os_failure) as one line, without a
    traceback, and exit 1."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except (HarnessError, OSError) as e:
            msg = e if isinstance(e, HarnessError) else os_failure(e)
            console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)

    return wrapper
