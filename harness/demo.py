"""`./run demo`: synth corpus -> HuBERT and WavLM pre-training -> probes on every task -> leaderboard.

Every stage is resumable: the corpus, the feature caches and finished runs are reused, so a
second `./run demo` only rebuilds the leaderboard. Output: leaderboards/synth.md, REPORT.md and
the heatmaps.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import torch

from harness.errors import HarnessError

UPSTREAMS = ["fbank", "mfcc", "random:hubert_tiny"]
TASKS = ["pr", "asr", "ks", "sid", "asv", "lid", "sd", "ss",
         "mono_asr_10min", "ml_asr_10min", "lid_ctc_10min", "asr_lid_10min"]
RECIPES = ["hubert_tiny", "wavlm_tiny"]
#: probe seeds of the pre-trained upstreams on these tasks: WavLM's claim (denoising helps
#: diarization and separation) is read off the board's multi-seed comparison, with intervals
SEEDED_TASKS = {"sd": 3, "ss": 3}


def _worker_init() -> None:
    torch.set_num_threads(1)


def _run_job(job) -> str:
    """One (upstream, task) evaluation; a failure becomes a line of the log, not the end of the demo."""
    from harness.evaluate import evaluate

    up, task, corpus, runs, cache, seeds = job
    t1 = time.time()
    try:
        res = evaluate(up, task, corpus, runs, cache, profile="quick", seeds=seeds, log=print)
    except Exception as e:  # noqa: BLE001 - every other job's work must survive one failure
        return f"[bold red]FAILED {up} / {task}[/]: {type(e).__name__}: {e}"
    best = min if not res[0]["higher_is_better"] else max
    m = res[0]["primary_metric"]
    top = best(res, key=lambda r: r["metrics"]["dev"][m])
    return f"[bold]{up} / {task}[/]: test {m} {top['metrics']['test'][m]:.2f} (lr {top['lr']:g}), {time.time() - t1:.0f} s"


#: the slowest probes start first, so that no worker idles at the end
_SLOW_FIRST = ("mono_asr", "asr", "pr", "ml_asr", "asr_lid", "asv", "ss", "sd", "lid_ctc", "lid", "ks", "sid")


def _job_order(task: str, upstream: str) -> tuple:
    rank = next((i for i, t in enumerate(_SLOW_FIRST) if task == t or task.startswith(t + "_")), len(_SLOW_FIRST))
    return (rank, 0 if "/" in upstream or upstream.startswith("random:") else 1)


def _pretrain_job(job) -> str:
    """One recipe's pre-training in a worker process (the recipes of the demo run side by side)."""
    from harness.pretrain import pretrain

    recipe, corpus, out, iterations, threads = job
    torch.set_num_threads(threads)
    t1 = time.time()
    pretrain(recipe, corpus, out, iterations=iterations)
    return f"[bold]pre-training[/] {recipe} ({iterations} iterations) done in {time.time() - t1:.0f} s"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="./run demo", description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="small", help="synth size (tiny for a smoke run)")
    ap.add_argument("--runs", type=Path, default=Path("runs"))
    ap.add_argument("--cache", type=Path, default=Path("cache"))
    ap.add_argument("--out", type=Path, default=Path("leaderboards"))
    ap.add_argument("--recipes", default=",".join(RECIPES),
                    help="comma-separated pre-training recipes, trained side by side ('' to skip pre-training)")
    ap.add_argument("--iterations", type=int, default=1,
                    help="pre-training iterations to run and evaluate (2 does not fit the 20-minute budget)")
    ap.add_argument("--upstreams", default=",".join(UPSTREAMS), help="comma-separated baselines to evaluate")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks")
    ap.add_argument("--jobs", type=int, default=2,
                    help="evaluations run in parallel, one torch thread each (small probes run best that way)")
    a = ap.parse_args(argv)
    from rich.console import Console

    from harness.data.synth import generate
    from harness.leaderboard import build
    from harness.report import write_report

    con = Console(stderr=True)
    t0 = time.time()
    try:
        corpus = generate(Path("data/synth") / a.size, size=a.size, seed=0)
        con.print(f"[bold]corpus[/] synth {a.size} ready in {time.time() - t0:.0f} s")
        upstreams = [u for u in a.upstreams.split(",") if u]
        recipes = [r for r in a.recipes.split(",") if r]
        if recipes:
            t1 = time.time()
            outs = [a.runs / "pretrain" / r for r in recipes]
            pjobs = [(r, str(corpus), out, a.iterations, max(1, torch.get_num_threads() // len(recipes)))
                     for r, out in zip(recipes, outs)]
            if len(pjobs) > 1:  # one process per recipe: a tiny model's step scales poorly over threads
                with mp.get_context("spawn").Pool(len(pjobs)) as pool:
                    for line in pool.imap_unordered(_pretrain_job, pjobs):
                        con.print(line)
            else:
                con.print(_pretrain_job(pjobs[0]))
            pretrained = [str(out / f"iter{k}" / "upstream") for out in outs for k in range(1, a.iterations + 1)]
            upstreams += pretrained
            con.print(f"[bold]pre-training[/] {', '.join(recipes)} done in {time.time() - t1:.0f} s")
        t1 = time.time()
        jobs = sorted(((up, task, str(corpus), a.runs, a.cache, SEEDED_TASKS.get(task, 1) if "/" in up else 1)
                       for task in a.tasks.split(",") if task for up in upstreams),
                      key=lambda j: _job_order(j[1], j[0]))
        failed = 0
        if a.jobs > 1:
            ctx = mp.get_context("spawn")
            with ctx.Pool(a.jobs, initializer=_worker_init) as pool:
                for line in pool.imap_unordered(_run_job, jobs):
                    failed += line.startswith("[bold red]FAILED")
                    con.print(line)
        else:
            for job in jobs:
                line = _run_job(job)
                failed += line.startswith("[bold red]FAILED")
                con.print(line)
        con.print(f"[bold]probes[/] {len(jobs)} (upstream, task) pairs done in {time.time() - t1:.0f} s")
        for p in build(a.runs, a.out):
            con.print(f"wrote {p}")
        con.print(f"wrote {write_report(a.runs, a.out)}")
    except HarnessError as e:
        con.print(f"[bold red]error:[/] {e}")
        return 1
    if failed:
        con.print(f"[bold red]demo finished in {time.time() - t0:.0f} s with {failed} failed evaluation(s)[/] (above)")
        return 1
    con.print(f"[bold green]demo finished in {time.time() - t0:.0f} s[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
