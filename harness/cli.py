"""The `harness` command line: thin wrappers over library functions."""

from __future__ import annotations

import dataclasses
import functools
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from harness.diskio import os_failure
from harness.data.corpora import kinds_help
from harness.errors import HarnessError
from harness.export import FORMATS as EXPORT_FORMATS

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Pre-train, probe and rank self-supervised speech models.")
data_app = typer.Typer(no_args_is_help=True, help="Make or inspect corpora.")
app.add_typer(data_app, name="data")
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
    """harness.data.synth_plan.SIZES."""

    tiny = "tiny"
    small = "small"
    medium = "medium"


class Listing(str, Enum):
    upstreams = "upstreams"
    tasks = "tasks"
    recipes = "recipes"


ExportFormat = Enum("ExportFormat", {f: f for f in EXPORT_FORMATS}, type=str)  # harness.export.FORMATS
# not an enum: cuda:N takes any N (harness.config checks the value, harness.evaluate the machine)
DEVICE_METAVAR = "[cpu|cuda|cuda:N|mps]"


def _version(value: bool) -> None:
    if value:
        from harness import __version__

        print(f"harness {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="print the harness version and exit")):
    """Pre-train, probe and rank self-supervised speech models."""


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


@app.command("list")
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


@data_app.command("synth")
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


@data_app.command("prepare")
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


@data_app.command("verify")
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


@app.command("eval")
@friendly
def eval_cmd(upstream: List[str] = typer.Option(..., help="name(s) or exported folder(s); comma-separated allowed"),
             task: List[str] = typer.Option(..., help="task name(s); comma-separated allowed"),
             corpus: str = typer.Option("synth", help=CORPUS_HELP),
             profile: Profile = typer.Option(Profile.quick, help="quick: CPU minutes; paper: the published "
                                             "steps, batches and lr grids"),
             seeds: int = typer.Option(1, help="number of seeds, from 1337 up"),
             lr: Optional[List[float]] = typer.Option(None, help="learning rate(s), replaces the task's grid"),
             config: Optional[str] = typer.Option(None, help="YAML/TOML config file"),
             steps: Optional[int] = typer.Option(None, help="override the profile's steps"),
             skip_bad: bool = typer.Option(False, "--skip-bad", help="skip unreadable audio files (when the "
                                           "corpus is prepared and when it is decoded); the run's result "
                                           "and the board list them"),
             cache_budget_gb: Optional[float] = typer.Option(None, help="largest feature cache to write"),
             cache_dtype: Optional[str] = typer.Option(None, help="float16 | int8: how cached layers are stored "
                                                       "(int8: half the bytes, per-channel scales)"),
             extract_dtype: Optional[str] = typer.Option(None, help="float32 | bfloat16 | float16 (CUDA): the "
                                                         "upstream's precision when extracting features"),
             device: str = typer.Option("cpu", metavar=DEVICE_METAVAR, help="where the upstream and the probe run"),
             lexicon: Optional[Path] = typer.Option(None, help="PR phone targets from this lexicon (SUPERB's "
                                                    "LibriSpeech lexicon: WORD PH1 PH2 ... per line); without "
                                                    "it PR uses espeak phones, marked as a substitute"),
             runs: Path = typer.Option(RUNS, help=RUNS_HELP), cache: Path = typer.Option(CACHE, help=CACHE_HELP),
             launcher: Optional[Launcher] = typer.Option(None, help="one submitit job per (upstream, task, lr, seed), "
                                                         "on this machine or SLURM; default: run here, one after "
                                                         "the other"),
             partition: Optional[str] = typer.Option(None, help="SLURM partition (launcher)"),
             time_min: Optional[int] = typer.Option(None, help="minutes per job (launcher; default 60)"),
             gpus: Optional[int] = typer.Option(None, help="GPUs per job (launcher; default 0)"),
             cpus: Optional[int] = typer.Option(None, help="CPU cores and torch threads per job (launcher; default 1)"),
             mem_gb: Optional[float] = typer.Option(None, help="memory per job in GB (launcher)"),
             workers: Optional[int] = typer.Option(None, help="jobs at once with --launcher local (default 2)"),
             launcher_dir: Optional[Path] = typer.Option(None, help="submitit logs (default RUNS/_launcher)")):
    """Probe frozen upstream(s) on task(s); one run folder per (lr, seed). Finished runs are skipped.
    Launcher resources come from these flags over the config file's `launcher:` section."""
    from harness.config import check_count, split_names
    from harness.registry import check_task_name
    from harness.request import EvalRequest
    from harness.upstream_names import check_upstream_name

    profile, launcher = profile.value, launcher.value if launcher is not None else None
    over = {k: v for k, v in dict(steps=steps, cache_budget_gb=cache_budget_gb, cache_dtype=cache_dtype,
                                  extract_dtype=extract_dtype,
                                  skip_bad=skip_bad or None,
                                  device=device,
                                  lexicon=str(lexicon) if lexicon else None).items() if v is not None}
    ups, tasks = split_names(upstream, "--upstream"), split_names(task, "--task")
    check_count("--seeds", seeds)
    resources = dict(partition=partition, time_min=time_min, gpus=gpus, cpus=cpus, mem_gb=mem_gb, workers=workers,
                     launcher_dir=launcher_dir)
    if launcher is None and any(v is not None for v in resources.values()):
        given = ", ".join("--" + k.replace("_", "-") for k, v in resources.items() if v is not None)
        raise HarnessError(f"{given}: launcher options need --launcher local|slurm")
    for t in tasks:  # names known without torch: a misspelt name answers before torch is imported
        check_task_name(t)
    for u in ups:
        check_upstream_name(u, runs)
    requests = {t: EvalRequest(ups[0], t, corpus, runs, cache, seeds=seeds, lrs=tuple(lr) if lr else None,
                               profile=profile, config_file=config, overrides=over) for t in tasks}
    from harness.evaluate import build_upstream, evaluate, resolve_corpus

    if launcher is not None:
        from harness.launch import check_launcher, launch, launcher_config

        check_launcher(launcher)
        lcfg = launcher_config(config, {k: v for k, v in resources.items() if k != "launcher_dir"})
    # each task's config resolved once, here: a misspelt key or a bad value fails before a corpus
    # is generated or read, and neither the launcher nor its jobs resolve it again
    requests = {t: r.resolve() for t, r in requests.items()}
    for u in ups:
        build_upstream(u)
    if launcher is None:  # runs here: this machine must have the device (a launcher's job checks its own)
        from harness.config import check_device

        check_device(device)
    spec = resolve_corpus(corpus, log=console.print)
    # the config does not depend on the upstream or the corpus: each pair keeps its task's
    jobs = [dataclasses.replace(requests[t], upstream=u, corpus=spec) for u in ups for t in tasks]
    if launcher is None:
        done = [r for job in jobs for r in evaluate(job, log=console.print)]
        for line in closing_lines(done, runs):
            console.print(line, highlight=False, soft_wrap=True)
        return
    failed = launch(jobs, launcher, lcfg, launcher_dir, log=console.print)
    console.print(f"run folders under {runs}; next: harness leaderboard --runs {runs}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def closing_lines(results: List[dict], runs: Path) -> List[str]:
    """What `harness eval` says last: the run folders of its (corpus, upstream, task) groups, each
    with its finished runs, and the command that turns them into a board (written to RUNS/board)."""
    from harness.results import slug

    groups: dict = {}
    for r in results:
        folder = Path(runs) / slug(str(r["corpus"])) / slug(str(r["upstream"])) / str(r["task"])
        groups[folder] = groups.get(folder, 0) + 1
    lines = [f"run folders: {folder} ({n} finished run(s))" for folder, n in groups.items()]
    return lines + [f"next: harness leaderboard --runs {runs}   (board in {Path(runs) / 'board'})"]


@app.command("export")
@friendly
def export_cmd(upstream: str = typer.Argument(..., help="name, exported folder or source (hf:DIR, ...)"),
               fmt: ExportFormat = typer.Option(..., "--format", help="output format"),
               out: Path = typer.Option(..., help="folder to write")):
    """Write an upstream in another toolkit's format (hf: a transformers model folder; s3prl: a
    checkpoint for s3prl's hubert_local / wavlm_local, evaluated back as s3prl:hubert:FILE)."""
    from harness.export import export

    console.print(f"{upstream} -> {export(upstream, fmt.value, out)} ({fmt.value})")


@app.command()
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


@app.command()
@friendly
def ablate(name: str = typer.Argument(..., help="mshubert | mhubert147 | cvhubert | wavlm"),
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


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
@friendly
def analyze(upstream: str = typer.Option(..., help="name or exported folder"),
            corpus: str = typer.Option("synth", help=CORPUS_HELP + " (needs phone alignments: synth)"),
            measure: Optional[str] = typer.Option(None, help="comma-separated: cca_phone, cca_word, mi_phone, "
                                                  "mi_speaker, probe_layer (default: cca_phone, mi_phone, mi_speaker)"),
            max_frames: int = typer.Option(20000, help="speech frames the measures read"),
            clusters: int = typer.Option(50, help="k of the k-means behind mi_phone / mi_speaker"),
            probe_steps: int = typer.Option(150, help="updates of each single-layer probe (probe_layer)"),
            seed: int = typer.Option(0, help="seed of the frame sample, the k-means and the probes"), force: bool = typer.Option(False, "--force", help="recompute a finished run"),
            runs: Path = typer.Option(RUNS, help=RUNS_HELP), cache: Path = typer.Option(CACHE, help=CACHE_HELP)):
    """Measure what each layer encodes (PWCCA with phones, k-means MI with phones and speakers,
    single-layer probes) into RUNS/<corpus>/<upstream>/analyze/<hash>; the board shows it."""
    from harness.analysis.run import analyze as run_analyze, parse_measures
    from harness.evaluate import resolve_corpus

    names = parse_measures(measure)
    res = run_analyze(upstream, resolve_corpus(corpus, log=console.print), runs, cache, names, max_frames=max_frames,
                      clusters=clusters, seed=seed, probe_steps=probe_steps, force=force, log=console.print)
    cols = [k for k in res["layers"][0] if k != "layer"]
    print("layer  " + "  ".join(cols))
    for row in res["layers"]:
        print(f"{row['layer']:<5}  " + "  ".join(f"{row.get(c, float('nan')):.3f}".rjust(len(c)) for c in cols))
    print("time (s): " + ", ".join(f"{k} {v:g}" for k, v in res["timing"].items()))


@app.command()
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


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
