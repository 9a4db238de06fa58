"""Many evaluations on one machine: jobs in a pool of one-thread worker processes.

Small probes scale poorly over threads, so N single-threaded jobs side by side beat one job on N
threads. A failed job becomes a line of the log and is counted; every other job's work survives
it. The slowest probes start first so no worker idles at the end. Used by `./run demo` and
`harness ablate`; `run_job` is also what `harness eval --launcher` submits (harness/launch.py).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
import traceback
from pathlib import Path
from typing import Callable, List, Sequence

import torch

from harness.board.select import seed_mean, select_lr
from harness.request import EvalRequest


#: the slowest probes start first, so that no worker idles at the end
_SLOW_FIRST = ("mono_asr", "asr", "pr", "ml_asr", "asr_lid", "asv", "ss", "sd", "lid_ctc", "lid", "ks", "sid")


def job_order(job: EvalRequest) -> tuple:
    """Sort key: slow tasks first; pre-trained or random-init upstreams before hand-made features."""
    task, up = job.task, job.upstream
    rank = next((i for i, t in enumerate(_SLOW_FIRST) if task == t or task.startswith(t + "_")), len(_SLOW_FIRST))
    return (rank, 0 if "/" in up or up.startswith("random:") else 1)


def _worker_init() -> None:
    torch.set_num_threads(1)


def run_job(job: EvalRequest) -> str:
    """Evaluate one request (resolved here unless it comes resolved); returns a log line
    (starting with FAILED_PREFIX when it failed)."""
    from harness.evaluate import evaluate

    if job.threads:
        torch.set_num_threads(job.threads)
    t1 = time.time()
    try:
        res = evaluate(job, log=print)
    except Exception as e:  # noqa: BLE001 - every other job's work must survive one failure
        traceback.print_exc()  # into the job's stderr log (the launcher reports its path)
        return f"{FAILED_PREFIX}{job.describe()}[/]: {type(e).__name__}: {e}"
    # the board's lr (its one rule: ties, NaN and a missing dev set as on the board), then its mean test metric
    m = res[0]["primary_metric"]
    runs = [(float(r["lr"]), *((r["metrics"].get(s) or {}).get(m) for s in ("dev", "test"))) for r in res]
    choice = select_lr(runs, bool(res[0]["higher_is_better"]))
    tests = [t for lr, _, t in runs if lr == choice.lr]
    n = len(tests)
    on = "" if choice.split == "dev" else ", chosen on test: no dev values"
    return (f"[bold]{job.describe()}[/]: test {m} {seed_mean(tests):.2f} (lr {choice.lr:g}{on}, "
            f"{'mean of ' if n > 1 else ''}{n} seed{'s' if n > 1 else ''}), {time.time() - t1:.0f} s")


FAILED_PREFIX = "[bold red]FAILED "


def run_jobs(jobs: Sequence[EvalRequest], workers: int = 2, log: Callable[[str], None] = print) -> int:
    """Run the jobs (slowest first) in `workers` one-thread processes; returns the failure count."""
    ordered: List[EvalRequest] = sorted(jobs, key=job_order)
    failed = 0
    if workers > 1 and len(ordered) > 1:
        with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            for line in pool.imap_unordered(run_job, ordered):
                failed += line.startswith(FAILED_PREFIX)
                log(line)
    else:
        for job in ordered:
            line = run_job(job)
            failed += line.startswith(FAILED_PREFIX)
            log(line)
    return failed


def _pretrain_job(job) -> str:
    from harness.pretrain import pretrain
    from harness.pretrain.seeds import seeded_name

    recipe, corpus, out, iterations, threads, export_every, seed = job
    torch.set_num_threads(threads)
    t1 = time.time()
    pretrain(recipe, corpus, out, iterations=iterations, export_every=export_every, pretrain_seed=seed)
    return f"[bold]pre-training[/] {seeded_name(recipe, seed)} done in {time.time() - t1:.0f} s"


def pretrain_jobs(recipes: Sequence[str], corpus: str, runs: Path, iterations=None, threads: int = 1,
                  export_every: int = 0, seeds: Sequence[int] = (0,)) -> tuple:
    """The pre-training jobs of `run_pretrainings` / `run_overlapped` (each recipe once per seed of
    `seeds`, `threads` torch threads each) and their run folders, recipe by recipe."""
    from harness.pretrain.seeds import pretrain_folder

    runs_ = [(r, s) for r in recipes for s in seeds]
    outs = [pretrain_folder(runs, r, s) for r, s in runs_]
    return [(r, str(corpus), out, iterations, threads, export_every, s) for (r, s), out in zip(runs_, outs)], outs


def run_overlapped(pretrainings: Sequence[tuple], jobs: Sequence[EvalRequest],
                   after: Callable[[], Sequence[EvalRequest]], workers: int = 2,
                   log: Callable[[str], None] = print, *, pool_factory=None, work=None) -> int:
    """Pre-train and probe on one pool of `workers` one-thread processes.

    The pre-training jobs (`pretrain_jobs`, one thread each) start first; the probes in `jobs`,
    which need none of them (hand-made features, random-init twins, bundled upstreams), fill the
    other workers meanwhile, slowest first. Once every pre-training has finished, `after()` gives
    the probes of the new upstreams, which join the queue ahead of hand-made features of the same
    task. This is the demo's schedule: a tiny model's update scales poorly over threads, so one
    core pre-training while the other probes beats both cores pre-training, then both probing.
    A failed pre-training is a FAILED line, and then the probes of the pre-trained upstreams are
    not started (one more FAILED line says so).

    Args:
        pool_factory, work: the process pool (`workers` -> pool) and the (pre-training, probe)
            functions, replaced by tests; by default spawned one-thread workers running
            `_pretrain_job` and `run_job`.

    Returns:
        The number of failed pre-trainings and evaluations.
    """
    pool_factory = pool_factory or (lambda n: mp.get_context("spawn").Pool(n, initializer=_worker_init))
    pretrain_fn, probe_fn = work or (_pretrain_job, run_job)
    done: "queue.Queue[tuple[str, object]]" = queue.Queue()
    pending: List[EvalRequest] = sorted(jobs, key=job_order)
    failed, running, pre_left, pre_failed = 0, 0, len(pretrainings), 0
    if not pretrainings:
        pending = sorted(pending + list(after()), key=job_order)
    with pool_factory(workers) as pool:
        def submit(fn, arg, kind: str) -> None:
            nonlocal running
            running += 1
            pool.apply_async(fn, (arg,), callback=lambda v: done.put((kind, v)),
                             error_callback=lambda e: done.put((kind + "-failed", e)))

        for job in pretrainings:
            submit(pretrain_fn, job, "pre")
        while True:
            while pending and running < workers:
                submit(probe_fn, pending.pop(0), "probe")
            if not running:
                return failed
            kind, value = done.get()
            running -= 1
            if kind.endswith("-failed"):
                failed += 1
                pre_failed += kind.startswith("pre")
                log(f"{FAILED_PREFIX}{'pre-training' if kind.startswith('pre') else 'evaluation'}[/]: "
                    f"{type(value).__name__}: {value}")
            else:
                failed += str(value).startswith(FAILED_PREFIX)
                log(str(value))
            if kind.startswith("pre"):
                pre_left -= 1
                if pre_left == 0 and not pre_failed:
                    pending = sorted(pending + list(after()), key=job_order)
                elif pre_left == 0:
                    failed += 1
                    log(f"{FAILED_PREFIX}probes of the pre-trained upstreams[/]: not started "
                        f"(a pre-training failed)")


def run_pretrainings(recipes: Sequence[str], corpus: str, runs: Path, iterations=None, workers: int = 2,
                     log: Callable[[str], None] = print, export_every: int = 0,
                     seeds: Sequence[int] = (0,)) -> List[Path]:
    """Pre-train each recipe once per pre-training seed of `seeds` (harness.pretrain.seeds) into
    runs/pretrain/<recipe> (seed 0) or runs/pretrain/<recipe>-s<seed>, `workers` side by side
    (one process each, the machine's threads split between them: a tiny model's step scales
    poorly over threads). Finished stages are reused; `export_every` as `harness pretrain
    --export-every`. Returns the run folders, recipe by recipe, each recipe's seeds in order."""
    n = max(1, min(workers, len(recipes) * len(seeds)))
    jobs, outs = pretrain_jobs(recipes, corpus, runs, iterations, max(1, torch.get_num_threads() // n),
                               export_every, seeds)
    if n > 1:
        with mp.get_context("spawn").Pool(n) as pool:
            for line in pool.imap_unordered(_pretrain_job, jobs):
                log(line)
    else:
        for job in jobs:
            log(_pretrain_job(job))
    return outs
