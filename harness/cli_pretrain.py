"""`harness pretrain` and `harness ablate`: pre-training upstreams from recipes, alone or as an
ablation's set of recipes probed with seeds. Registered by harness/cli.py."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import List, Optional

import typer

from harness.cli_options import CACHE, CACHE_HELP, CORPUS_HELP, RUNS, RUNS_HELP, console, friendly
from harness.errors import HarnessError


@friendly
def pretrain(recipe: str = typer.Option("hubert_tiny", help="recipe name (hubert_tiny, wavlm_tiny, wavlablm_tiny, "
                                                          "...; `harness list recipes`) or YAML path"),
             corpus: str = typer.Option("synth", help=CORPUS_HELP),
             out: Optional[Path] = typer.Option(None, help="run folder (default runs/pretrain/<recipe>)"),
             iterations: Optional[int] = typer.Option(None, help="stop after this many iterations"),
             noise: Optional[str] = typer.Option(None, help="folder of wav/flac noise clips for denoising "
                                                 "objectives (default: the corpus's noise subset)"),
             set_: Optional[List[str]] = typer.Option(None, "--set", help="TABLE.KEY=VALUE recipe setting, applied "
                                                      "recipe-wide and to every iteration that sets KEY (repeatable; "
                                                      "e.g. train.steps=3 for a smoke run)"),
             export_every: int = typer.Option(0, "--export-every", metavar="N",
                                              help="also export the weights every N updates of each iteration "
                                              "to iter<k>/exports/step<NNNNNN> (points of a learning curve)"),
             pretrain_seed: int = typer.Option(0, "--pretrain-seed", metavar="S",
                                               help="pre-training seed: 0 = the recipe as written; S > 0 adds S "
                                               "to its train and cluster seeds, named <recipe>-s<S> (default "
                                               "folder runs/pretrain/<recipe>-s<S>)"),
             threads: int = typer.Option(0, help="torch CPU threads (0 = torch's default)")):
    """Pre-train an upstream iteration by iteration; re-running resumes. Multi-GPU:
    torchrun --nproc_per_node G -m harness.pretrain --recipe R --corpus C --out DIR
    (`python -m harness.pretrain` is this command, with these options)."""
    import os

    from harness.pretrain.recipe_files import check_recipe_name

    check_recipe_name(recipe)  # a misspelt name fails here in a fraction of a second (no torch yet)
    from harness.config import check_count
    from harness.evaluate import resolve_corpus
    from harness.pretrain import load_recipe, pretrain as run_pretrain

    load_recipe(recipe, set_ or (), pretrain_seed)  # every key and value, before a corpus is generated or read
    if iterations is not None:
        check_count("--iterations", iterations)
    for flag, value, zero in (("--export-every", export_every, "no step exports"), ("--threads", threads, "torch's default")):
        if value < 0:
            raise HarnessError(f"{flag} {value}: must be >= 0 (0 = {zero})")
    if noise is not None and not Path(noise).is_dir():
        raise HarnessError(f"--noise {noise}: no such folder")
    if threads:
        import torch

        torch.set_num_threads(threads)
    # log lines whole, as written (no wrapping at the console width, no markup): they end up in
    # torchrun's and the user's log files, and are read back by tools
    log = functools.partial(console.print, soft_wrap=True, highlight=False, markup=False)
    # under torchrun every rank runs this: none may generate the synth corpus (they would all at once)
    spec = resolve_corpus(corpus, log=_refuse_generation if int(os.environ.get("WORLD_SIZE", "1")) > 1 else log)
    from harness.pretrain.seeds import pretrain_folder

    folder = out or pretrain_folder(Path("runs"), Path(recipe).stem, pretrain_seed)
    up = run_pretrain(recipe, spec, folder, log=log, iterations=iterations, noise=noise, overrides=set_ or (),
                      export_every=export_every, pretrain_seed=pretrain_seed)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone reports
        log(f"upstream: {up}  (evaluate it with: harness eval --upstream {up} --task pr)")


def _refuse_generation(msg: str) -> None:
    """resolve_corpus's log under torchrun, called just before it would generate a synth corpus."""
    raise HarnessError(f"{msg}: not under torchrun (one process per GPU); run `harness data synth` first")


@friendly
def ablate(name: str = typer.Argument(..., help="mshubert | mhubert147 | cvhubert | wavlm | data2vec"),
           corpus: str = typer.Option("synth", help=CORPUS_HELP),
           workers: int = typer.Option(2, help="pre-trainings and probes run side by side"),
           pretrain_seeds: int = typer.Option(1, "--pretrain-seeds", metavar="N",
                                              help="pre-train each recipe N times from different seeds (seed 0 "
                                              "is the recipe as written); the table pools them with an interval "
                                              "over the runs"),
           runs: Path = typer.Option(RUNS, help=RUNS_HELP), cache: Path = typer.Option(CACHE, help=CACHE_HELP)):
    """Pre-train an ablation's recipes at equal updates and probe them with seeds; the leaderboard
    then shows its table."""
    from harness.ablation import get_ablation, run_ablation
    from harness.config import check_count
    from harness.evaluate import resolve_corpus
    from harness.pretrain import load_recipe

    ab = get_ablation(name)  # names and values checked before a corpus is generated or read
    check_count("--workers", workers)
    check_count("--pretrain-seeds", pretrain_seeds)
    for r in ab.recipes:
        load_recipe(r)
    failed = run_ablation(ab, resolve_corpus(corpus, log=console.print), runs, cache, workers, log=console.print,
                          pretrain_seeds=pretrain_seeds)
    if failed:
        raise typer.Exit(1)
    console.print(f"done; write the table with: harness leaderboard --runs {runs}")
