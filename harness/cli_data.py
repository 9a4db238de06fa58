"""`harness list` and `harness data ...`: what is available (upstreams, tasks, recipes) and the
corpora (generate, prepare, verify the cache). Registered by harness/cli.py."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from harness.cli_options import CACHE, CORPUS_HELP, RUNS, Listing, SynthSize, console, friendly


@friendly
def list_cmd(what: Listing = typer.Argument(..., help="what to list"),
             runs: Path = typer.Option(RUNS, help="where to look for exports (folders with upstream.json)")):
    """List upstreams (registered names and the exports under --runs: family, layers, width,
    frame rate, parameters, source), tasks, or pre-training recipes (name, base, description)."""
    if what == Listing.recipes:
        from harness.pretrain.recipe_files import describe_recipes

        for line in describe_recipes():
            print(line)
        return
    from harness.registry import TASK_NAMES

    if what == Listing.tasks:  # from the static list: no task module (and no torch) is imported
        for n in TASK_NAMES:
            print(n)
        return
    from harness.upstream_names import REGISTERED, accepted_forms, export_folders

    exported, problems = [], []
    if export_folders(runs):  # describing an export builds it on the meta device: torch only then
        from harness.catalog import export_rows

        exported, problems = export_rows(runs)
    rows = list(REGISTERED) + exported
    table = [("upstream", "family", "layers", "width", "frame rate", "params", "source")]
    table += [(r.name, r.family, str(r.layers), str(r.width),
               f"{r.frame_rate_hz:g} Hz ({1000 / r.frame_rate_hz:g} ms)", _count(r.params), r.source) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    for p in problems:
        print(f"skipped {p}")
    print("also: " + "; ".join(accepted_forms()[1:]))


def _count(n: int) -> str:
    """1234567 -> '1.23M' (parameter counts)."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


@friendly
def data_synth(size: SynthSize = typer.Option(SynthSize.small, help="corpus size: tiny for tests, small for "
                                              "the demo, medium for CPU pre-training"),
               seed: int = typer.Option(0, help="generation seed (same size and seed = same corpus)"),
               out: Optional[Path] = typer.Option(None, help="default data/synth/<size>"),
               workers: int = typer.Option(2, help="processes (the corpus does not depend on it)")):
    """Generate the embedded synth corpus offline with espeak-ng."""
    from harness.data.synth import generate

    path = generate(out or Path("data/synth") / size.value, size=size.value, seed=seed, workers=workers)
    console.print(f"synth corpus ({size.value}, seed {seed}) in {path}")


@friendly
def data_prepare(corpus: str = typer.Argument(..., help=CORPUS_HELP),
                 cache_dir: Optional[Path] = typer.Option(None, help="where the manifests go (default: "
                                                           ".harness_cache next to the data folder)"),
                 skip_bad: bool = typer.Option(False, "--skip-bad", help="leave out and count unreadable audio")):
    """Build a corpus's manifests ahead of time (what `harness eval --corpus` would do first) and
    show what it holds: utterances per subset and split, trials, skipped files."""
    from harness.data.corpora import describe, load_corpus

    c = load_corpus(corpus, cache_dir, skip_bad=skip_bad)
    for line in describe(c):
        print(line)


@friendly
def data_verify(cache: Path = typer.Option(CACHE, help="the cache folder (its features/ pools are checked)")):
    """Hash every feature pool of the cache in full (index.json and every shard), stamp the sound
    ones so that they open without re-hashing, and name the damaged ones. Exit 1 if any is damaged."""
    from harness.features import DamagedPool
    from harness.poolstamp import pool_class, verify_cache

    ok, bad = verify_cache(Path(cache) / "features", lambda f, full: pool_class(f)(f, verify=full), DamagedPool,
                           log=console.print)
    console.print(f"{ok} sound pool(s), {bad} damaged")
    if bad:
        raise typer.Exit(1)
