"""The `harness` command line: thin wrappers over library functions."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from harness.errors import HarnessError
from harness.export import FORMATS as EXPORT_FORMATS

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Pre-train, probe and rank self-supervised speech models.")
data_app = typer.Typer(no_args_is_help=True, help="Make or inspect corpora.")
app.add_typer(data_app, name="data")
console = Console(stderr=True)

RUNS = Path("runs")
CACHE = Path("cache")


def friendly(fn):
    """Print HarnessErrors as one line (no traceback) and exit 1."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except HarnessError as e:
            console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)

    return wrapper


def _split(values: List[str]) -> List[str]:
    return [v for x in values for v in x.split(",") if v]


@app.command("list")
@friendly
def list_cmd(what: str = typer.Argument(..., help="upstreams | tasks"),
             runs: Path = typer.Option(RUNS, help="where to look for exports (folders with upstream.json)")):
    """List upstreams (registered names and the exports under --runs: family, layers, width,
    frame rate, parameters, source) or tasks."""
    from harness.catalog import accepted_forms, export_rows, registered_rows
    from harness.registry import TASKS, load_all

    load_all()
    if what == "tasks":
        for n in TASKS.names():
            print(n)
        return
    if what != "upstreams":
        raise HarnessError(f"unknown list {what!r}: use 'upstreams' or 'tasks'")
    exported, problems = export_rows(runs)
    rows = registered_rows() + exported
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


@data_app.command("synth")
@friendly
def data_synth(size: str = typer.Option("small", help="tiny | small | medium"),
               seed: int = typer.Option(0), out: Optional[Path] = typer.Option(None, help="default data/synth/<size>"),
               workers: int = typer.Option(2, help="processes (the corpus does not depend on it)")):
    """Generate the embedded synth corpus offline with espeak-ng."""
    from harness.data.synth import generate

    path = generate(out or Path("data/synth") / size, size=size, seed=seed, workers=workers)
    console.print(f"synth corpus ({size}, seed {seed}) in {path}")


@app.command("eval")
@friendly
def eval_cmd(upstream: List[str] = typer.Option(..., help="name(s) or exported folder(s); comma-separated allowed"),
             task: List[str] = typer.Option(..., help="task name(s); comma-separated allowed"),
             corpus: str = typer.Option("synth", help="synth | DIR | librispeech:DIR | voxceleb1:DIR | speechcommands:DIR"),
             profile: str = typer.Option("quick", help="quick | paper"),
             seeds: int = typer.Option(1, help="number of seeds, from 1337 up"),
             lr: Optional[List[float]] = typer.Option(None, help="learning rate(s), replaces the task's grid"),
             config: Optional[str] = typer.Option(None, help="YAML/TOML config file"),
             steps: Optional[int] = typer.Option(None, help="override the profile's steps"),
             skip_bad: bool = typer.Option(False, "--skip-bad", help="skip and count unreadable audio"),
             cache_budget_gb: Optional[float] = typer.Option(None, help="largest feature cache to write"),
             device: str = typer.Option("cpu"),
             lexicon: Optional[Path] = typer.Option(None, help="PR phone targets from this lexicon (SUPERB's "
                                                    "LibriSpeech lexicon: WORD PH1 PH2 ... per line); without "
                                                    "it PR uses espeak phones, marked as a substitute"),
             runs: Path = typer.Option(RUNS), cache: Path = typer.Option(CACHE)):
    """Probe frozen upstream(s) on task(s); one run folder per (lr, seed)."""
    from harness.evaluate import build_task, build_upstream, evaluate, resolve_corpus

    over = {k: v for k, v in dict(steps=steps, cache_budget_gb=cache_budget_gb, skip_bad=skip_bad or None,
                                  device=device, lexicon=str(lexicon) if lexicon else None).items() if v is not None}
    ups, tasks = _split(upstream), _split(task)
    for t in tasks:  # a misspelt name fails here, before a corpus is generated or read
        build_task(t)
    for u in ups:
        build_upstream(u)
    spec = resolve_corpus(corpus, log=console.print)
    for u in ups:
        for t in tasks:
            evaluate(u, t, spec, runs, cache, profile=profile, seeds=seeds, lrs=lr or None,
                     config_file=config, overrides=over, log=console.print)


@app.command("export")
@friendly
def export_cmd(upstream: str = typer.Argument(..., help="name, exported folder or source (hf:DIR, ...)"),
               fmt: str = typer.Option(..., "--format", help=f"output format: {' | '.join(EXPORT_FORMATS)}"),
               out: Path = typer.Option(..., help="folder to write")):
    """Write an upstream in another toolkit's format (hf: a transformers model folder)."""
    from harness.export import export

    console.print(f"{upstream} -> {export(upstream, fmt, out)} ({fmt})")


@app.command()
@friendly
def pretrain(recipe: str = typer.Option("hubert_tiny", help="recipe name (hubert_tiny, wavlm_tiny, wavlablm_tiny, "
                                                          "...) or YAML path"),
             corpus: str = typer.Option("synth", help="synth | DIR | librispeech:DIR | ..."),
             out: Optional[Path] = typer.Option(None, help="run folder (default runs/pretrain/<recipe>)"),
             iterations: Optional[int] = typer.Option(None, help="stop after this many iterations"),
             noise: Optional[str] = typer.Option(None, help="folder of wav/flac noise clips for denoising "
                                                 "objectives (default: the corpus's noise subset)")):
    """Pre-train an upstream iteration by iteration; re-running resumes. Multi-GPU:
    torchrun --nproc_per_node G -m harness.pretrain --recipe R --corpus C --out DIR."""
    from harness.evaluate import resolve_corpus
    from harness.pretrain import pretrain as run_pretrain

    folder = out or Path("runs/pretrain") / Path(recipe).stem
    up = run_pretrain(recipe, resolve_corpus(corpus, log=console.print), folder, log=console.print,
                      iterations=iterations, noise=noise)
    console.print(f"upstream: {up}  (evaluate it with: harness eval --upstream {up} --task pr)")


@app.command()
@friendly
def ablate(name: str = typer.Argument(..., help="mshubert | mhubert147 | cvhubert"),
           corpus: str = typer.Option("synth", help="synth | DIR | ..."),
           workers: int = typer.Option(2, help="pre-trainings and probes run side by side"),
           runs: Path = typer.Option(RUNS), cache: Path = typer.Option(CACHE)):
    """Pre-train an ablation's recipes at equal updates and probe them with seeds; the leaderboard
    then shows its table."""
    from harness.ablation import get_ablation, run_ablation
    from harness.evaluate import resolve_corpus

    failed = run_ablation(get_ablation(name), resolve_corpus(corpus, log=console.print), runs, cache, workers,
                          log=console.print)
    if failed:
        raise typer.Exit(1)
    console.print(f"done; write the table with: harness leaderboard --runs {runs}")


@app.command()
@friendly
def leaderboard(runs: Path = typer.Option(RUNS), out: Path = typer.Option(Path("leaderboards"))):
    """Aggregate finished runs into leaderboard markdown and heatmaps."""
    from harness.leaderboard import build

    for p in build(runs, out):
        console.print(f"wrote {p}")


@app.command()
@friendly
def report(runs: Path = typer.Option(RUNS), out: Path = typer.Option(Path("leaderboards"))):
    """Write one CI-ready markdown page with every table and heatmap."""
    from harness.report import write_report

    console.print(f"wrote {write_report(runs, out)}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
