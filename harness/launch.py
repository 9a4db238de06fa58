"""`harness eval ... --launcher local|slurm`: one submitit job per (upstream, task, lr, seed).

Every job calls `harness.sweep.run_job` (the worker pool's job function) on the EvalRequest of
one grid point, so jobs write into the same run store as `harness eval` and `./run demo`: the
run folder of a point does not depend on how it was launched. Each request's config is resolved
once, on the submitting host (`EvalRequest.resolve`); a job receives its point resolved and does
not resolve it again, but checks the device itself (the submitting host may have no GPU). Before
submitting, each point's folder is checked (`harness.evaluate.plan_runs`,
`results.is_finished`): finished runs are skipped with a message and never submitted. A failed
job (an exception inside the evaluation, or a job that died: timeout, out of memory, node
failure) is reported with its log file and counted; the others run on.

submitit writes each job's pickled call, stdout and stderr under the launcher folder
(default RUNS/_launcher, beside the runs; nothing there is a result.json, so reports ignore it).
`local` runs the jobs as processes on this machine, at most `workers` at a time; `slurm` hands
them all to the scheduler as one job array.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from harness.config import merge, read_config_file
from harness.errors import ConfigError, HarnessError
from harness.request import EvalRequest
from harness.sweep import FAILED_PREFIX, job_order, run_job

LAUNCHERS = ("local", "slurm")


@dataclass(frozen=True)
class LauncherConfig:
    """Resources of each job (the `launcher:` section of a `--config` file, or CLI flags).

    Attributes:
        partition: SLURM partition (None: the cluster's default).
        time_min: wall-clock limit per job, minutes (also the local executor's timeout).
        gpus: GPUs per job.
        cpus: CPU cores per job.
        mem_gb: memory per job, GB (None: the partition's default).
        workers: jobs running at once with the local launcher.
    """

    partition: Optional[str] = None
    time_min: int = 60
    gpus: int = 0
    cpus: int = 1
    mem_gb: Optional[float] = None
    workers: int = 2

    def __post_init__(self):
        for name in ("time_min", "cpus", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"launcher.{name} must be >= 1, got {getattr(self, name)}")
        if self.gpus < 0:
            raise ConfigError(f"launcher.gpus must be >= 0, got {self.gpus}")


def launcher_config(config_file: Optional[str], flags: Mapping[str, Any]) -> LauncherConfig:
    """Defaults < the config file's `launcher:` section < CLI flags (None: not given)."""
    cfg = LauncherConfig()
    if config_file:
        cfg = merge(cfg, read_config_file(config_file).get("launcher") or {}, "launcher.")
    return merge(cfg, {k: v for k, v in flags.items() if v is not None}, "launcher.")


def check_launcher(name: str) -> None:
    """Raises HarnessError for a launcher name that is not one of LAUNCHERS."""
    if name not in LAUNCHERS:
        raise HarnessError(f"unknown launcher {name!r}; known: {', '.join(LAUNCHERS)}")


def make_executor(launcher: str, folder: Path, cfg: LauncherConfig):
    """A submitit AutoExecutor for `launcher` writing under `folder`, with `cfg`'s resources."""
    check_launcher(launcher)
    try:
        import submitit
    except ImportError as e:  # pragma: no cover - submitit is a runtime dependency
        raise HarnessError(f"--launcher needs the submitit package ({e})") from None
    try:
        ex = submitit.AutoExecutor(folder=str(folder), cluster=launcher)
    except RuntimeError as e:  # submitit's slurm executor needs srun on this machine
        raise HarnessError(f"--launcher {launcher}: {e}") from None
    params: Dict[str, Any] = dict(name="harness-eval", timeout_min=cfg.time_min, cpus_per_task=cfg.cpus,
                                  gpus_per_node=cfg.gpus)
    if cfg.mem_gb is not None:
        params["mem_gb"] = cfg.mem_gb
    if cfg.partition is not None:
        params["slurm_partition"] = cfg.partition
    ex.update_parameters(**params)
    return ex


def plan_jobs(requests: Sequence[EvalRequest], log: Callable[[str], None] = print) -> List[EvalRequest]:
    """The resolved one-point request of every unfinished (lr, seed) of each (upstream, task)
    request; finished ones are logged as skipped."""
    from harness import results
    from harness.evaluate import plan_runs

    out = []
    for request in requests:
        request = request.resolve()  # itself when the caller (`harness eval`) resolved it
        for lr, seed, folder in plan_runs(request).runs:
            point = request.point(lr, seed)
            if results.is_finished(folder):
                log(f"skipped {point.describe()}: finished in {folder}")
            else:
                out.append(point)
    return out


def launch(jobs: Sequence[EvalRequest], launcher: str, cfg: LauncherConfig = LauncherConfig(),
           folder: Optional[Path] = None, log: Callable[[str], None] = print, poll_s: float = 1.0) -> int:
    """Submit one job per unfinished grid point of the requests `jobs` and wait for all; returns
    the number that failed (each reported with its log path)."""
    if not jobs:
        return 0
    folder = Path(folder) if folder is not None else Path(jobs[0].runs) / "_launcher"
    ex = make_executor(launcher, folder / "%j", cfg)  # first: a machine without SLURM fails before any planning
    # each job's torch threads = its CPU cores; the slowest probes first, as in the worker pool
    points = sorted((replace(p, threads=p.threads or cfg.cpus) for p in plan_jobs(jobs, log)), key=job_order)
    if not points:
        log("nothing to run: every run is finished")
        return 0
    if launcher == "local":  # the local executor starts whatever it is given: feed it `workers` at a time
        pending, running, width = list(points), [], cfg.workers
    else:
        with ex.batch():  # one SLURM job array
            running = [(p, ex.submit(run_job, p)) for p in points]
        pending, width = [], len(points)
    log(f"{len(points)} job(s) for the {launcher} launcher; logs in {folder}")
    failed = 0
    while pending or running:
        while pending and len(running) < width:
            p = pending.pop(0)
            running.append((p, ex.submit(run_job, p)))
        done = [(p, j) for p, j in running if j.done()]
        if not done:
            time.sleep(poll_s)
            continue
        for p, j in done:
            running.remove((p, j))
            try:
                line = j.result()
            except Exception as e:  # noqa: BLE001 - the job died (timeout, memory, node); the others run on
                line = f"{FAILED_PREFIX}{p.describe()}[/]: job {j.job_id} died: {type(e).__name__}: " \
                       f"{str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
            if line.startswith(FAILED_PREFIX):
                failed += 1
                line += f" (logs: {j.paths.stdout}, {j.paths.stderr})"
            log(line)
    if failed:
        log(f"{failed} of {len(points)} job(s) failed")
    return failed
