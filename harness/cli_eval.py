"""`harness eval`, `harness export` and `harness analyze`: probing upstreams on tasks, writing
them in another toolkit's format, measuring their layers. Registered by harness/cli.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional

import typer

from harness.cli_options import (CACHE, CACHE_HELP, CORPUS_HELP, DEVICE_METAVAR, RUNS, RUNS_HELP, CacheDtype,
                                 ExportFormat, ExtractDtype, Launcher, Profile, console, friendly)
from harness.errors import HarnessError


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
             cache_dtype: Optional[CacheDtype] = typer.Option(None, help="how cached layers are stored "
                                                              "(int8: half the bytes, per-channel scales)"),
             extract_dtype: Optional[ExtractDtype] = typer.Option(
                 None, help="the upstream's precision when extracting features (float16: CUDA only; bfloat16 is "
                 "slower than float32 on CPUs without AVX512-BF16 or AMX)"),
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
    over = {k: v for k, v in dict(steps=steps, cache_budget_gb=cache_budget_gb,
                                  cache_dtype=cache_dtype.value if cache_dtype else None,
                                  extract_dtype=extract_dtype.value if extract_dtype else None,
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


@friendly
def export_cmd(upstream: str = typer.Argument(..., help="name, exported folder or source (hf:DIR, ...)"),
               fmt: ExportFormat = typer.Option(..., "--format", help="output format"),
               out: Path = typer.Option(..., help="folder to write")):
    """Write an upstream in another toolkit's format (hf: a transformers model folder; s3prl: a
    checkpoint for s3prl's hubert_local / wavlm_local, evaluated back as s3prl:hubert:FILE)."""
    from harness.export import export

    console.print(f"{upstream} -> {export(upstream, fmt.value, out)} ({fmt.value})")


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
