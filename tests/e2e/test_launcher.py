"""`harness eval --launcher local`: one submitit job per (upstream, task, lr, seed) through
submitit's local executor (real subprocesses), into the same run store as a plain `harness eval`;
a re-submission skips the finished runs without submitting anything; a failed job is reported
with its log files and the other jobs still finish."""

import json
import re

import pytest
from typer.testing import CliRunner

from harness import results
from harness.cli import app
from harness.errors import ConfigError, HarnessError
from harness.launch import LauncherConfig, launch, launcher_config, make_executor
from harness.request import EvalRequest
from harness.sweep import run_jobs
from tests.conftest import make_tone_corpus


def _runs(root):
    return {p.parent: p.stat().st_mtime_ns for p in root.rglob(results.RESULT)}


def test_two_jobs_then_resubmission_skips_both(tiny_corpus, tmp_path):
    runs, logs, cfg = tmp_path / "runs", tmp_path / "logs", tmp_path / "eval.yaml"
    cfg.write_text("launcher:\n  time_min: 5\n  workers: 2\n")  # evaluate itself ignores this section
    plain = ["eval", "--upstream", "fbank,mfcc", "--task", "lid", "--corpus", str(tiny_corpus), "--lr", "3e-3",
             "--steps", "4", "--runs", str(runs), "--cache", str(tmp_path / "cache"), "--config", str(cfg)]
    args = plain + ["--launcher", "local", "--launcher-dir", str(logs)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "2 job(s) for the local launcher" in r.output
    first = _runs(runs)
    assert len(first) == 2
    ups = sorted(json.loads((f / results.RESULT).read_text())["upstream"] for f in first)
    assert ups == ["fbank", "mfcc"]
    assert all(f.name.startswith("lr0.003_seed1337_") for f in first)
    jobs = {p for p in logs.iterdir() if p.name.isdigit()}
    assert len(jobs) == 2  # one submitit folder per job, each with its own log files
    assert all(list(j.glob("*_log.out")) for j in jobs)

    # the same folders as a plain `harness eval` of the same grid point: it finds them finished
    r = CliRunner().invoke(app, plain)
    assert r.exit_code == 0 and r.output.count("skip ") == 2, r.output

    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert len(re.findall(r"skipped (fbank|mfcc) / lid lr=0.003 seed=1337: finished in", r.output)) == 2
    assert "nothing to run" in r.output
    assert _runs(runs) == first  # no new run folder, no result rewritten
    assert {p for p in logs.iterdir() if p.name.isdigit()} == jobs  # nothing submitted


def test_failed_job_is_reported_with_its_log_and_others_finish(tmp_path):
    runs, logs = tmp_path / "runs", tmp_path / "logs"
    tones = str(make_tone_corpus(tmp_path / "tones"))  # speech only: no mixtures for ss
    base = dict(corpus=tones, runs=runs, cache=tmp_path / "cache", lrs=(3e-3,), overrides={"steps": 4})
    jobs = [EvalRequest("fbank", "ss", **base),  # planned fine, fails inside its job (task.prepare)
            EvalRequest("mfcc", "lid", seeds=2, **base)]  # two grid points, two jobs
    lines = []
    failed = launch(jobs, "local", LauncherConfig(time_min=5), logs, log=lines.append)
    assert failed == 1
    (bad,) = [ln for ln in lines if "FAILED" in ln]
    assert "fbank / ss lr=0.003 seed=1337" in bad and "no train mixtures" in bad
    log_out = re.search(r"logs: (\S+), (\S+)\)", bad)
    assert log_out and log_out.group(1).endswith("_log.out") and log_out.group(2).endswith("_log.err")
    assert "Traceback" in open(log_out.group(2)).read()  # the log tells why
    done = sorted((r["upstream"], r["seed"]) for r in results.iter_results(runs))
    assert done == [("mfcc", 1337), ("mfcc", 1338)]


def test_worker_pool_and_launcher_share_runs(tmp_path):
    """The demo's pool runs a whole (upstream, task) grid in one job; the launcher then finds every
    point finished: same job function, same run folders."""
    runs, logs = tmp_path / "runs", tmp_path / "logs"
    tones = str(make_tone_corpus(tmp_path / "tones"))
    jobs = [EvalRequest("mfcc", "lid", tones, runs, tmp_path / "cache", seeds=2, lrs=(3e-3,), overrides={"steps": 4}),
            EvalRequest("fbank", "lid", tones, runs, tmp_path / "cache", lrs=(3e-3,), overrides={"steps": 4})]
    assert run_jobs(jobs, workers=2, log=lambda _: None) == 0
    first = _runs(runs)
    assert len(first) == 3
    lines = []
    assert launch(jobs, "local", LauncherConfig(), logs, log=lines.append) == 0
    assert sum(ln.startswith("skipped ") for ln in lines) == 3 and "nothing to run" in lines[-1]
    assert _runs(runs) == first and not any(p.name.isdigit() for p in logs.iterdir())


def test_launcher_options_are_checked_first(tmp_path):
    base = ["eval", "--upstream", "fbank", "--task", "lid", "--corpus", str(tmp_path / "absent")]
    r = CliRunner().invoke(app, base + ["--partition", "gpu", "--mem-gb", "8"])
    assert r.exit_code == 1 and "--partition, --mem-gb: launcher options need --launcher local|slurm" in r.output
    r = CliRunner().invoke(app, base + ["--launcher", "sge"], terminal_width=200)  # an enum: click refuses it
    assert r.exit_code == 2 and "'sge' is not one of 'local', 'slurm'" in re.sub(r"[\s│]+", " ", r.output)


def test_launcher_config_file_section_and_flags(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("launcher:\n  partition: gpu\n  time_min: 30\n  gpus: 1\n")
    lc = launcher_config(str(cfg), {"time_min": 90, "cpus": None})
    assert lc == LauncherConfig(partition="gpu", time_min=90, gpus=1)
    cfg.write_text("launcher:\n  partitoin: gpu\n")
    with pytest.raises(ConfigError, match="partitoin"):
        launcher_config(str(cfg), {})


def test_slurm_flags_reach_the_sbatch_script(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nobin"))
    with pytest.raises(HarnessError, match="--launcher slurm: .*srun"):
        make_executor("slurm", tmp_path / "l", LauncherConfig())
    (tmp_path / "bin").mkdir()
    srun = tmp_path / "bin" / "srun"  # submitit only checks that srun exists; nothing is submitted
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    cfg = launcher_config(None, dict(partition="gpu", time_min=90, gpus=1, cpus=4, mem_gb=16, workers=None))
    script = make_executor("slurm", tmp_path / "l", cfg)._executor._make_submission_file_text("CMD", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16GB", "#SBATCH --job-name=harness-eval"):
        assert line in script, script


def test_gpu_jobs_are_planned_on_a_host_without_gpu_and_checked_in_the_job(tmp_path):
    """Issue 30 finding 3: the device is the job's business. A login node without a GPU plans and
    submits `--device cuda:7` jobs; the job itself (here: also without that GPU) fails with the
    one-line device message, before any feature extraction."""
    import torch

    assert torch.cuda.device_count() < 8  # the premise of this test: no 8th GPU here
    runs, logs = tmp_path / "runs", tmp_path / "logs"
    tones = str(make_tone_corpus(tmp_path / "tones", n_per_class=6))
    job = EvalRequest("mfcc", "lid", corpus=tones, runs=runs, cache=tmp_path / "cache", lrs=(3e-3,),
                      overrides={"steps": 4, "device": "cuda:7"})
    lines = []
    assert launch([job], "local", LauncherConfig(time_min=5), logs, log=lines.append) == 1
    (bad,) = [ln for ln in lines if "FAILED" in ln]
    assert "device 'cuda:7' asked for, but this machine has" in bad, bad
    assert not (tmp_path / "cache" / "features").exists()
