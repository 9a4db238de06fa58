"""harness.request.EvalRequest: checked when made (one-line ConfigErrors), the lr in one channel,
resolved once per evaluation (here, in the worker pool, for a launched job), and the same run
identity (config hash, run folders, saved config) as before the request existed."""

import dataclasses
import hashlib
import json
import pickle

import pytest
from typer.testing import CliRunner

from harness import evaluate as evaluate_mod
from harness import launch as launch_mod
from harness import results
from harness.cli import app
from harness.config import to_dict
from harness.errors import ConfigError
from harness.evaluate import plan_runs
from harness.launch import plan_jobs
from harness.request import EvalRequest
from harness.sweep import run_jobs
from tests.conftest import make_tone_corpus


def _request(**kw):
    return EvalRequest(**{"upstream": "fbank", "task": "lid", "corpus": "c", "runs": "r", "cache": "k", **kw})


@pytest.mark.parametrize("kw,message", [
    (dict(seeds=0), "seeds must be an integer >= 1, got 0"),
    (dict(lrs=()), "config key 'probe.lrs' must hold at least one learning rate, got none"),
    (dict(lrs=[1e-3, -1]), "config key 'probe.lrs': every learning rate must be a positive finite number, got -1.0"),
    (dict(lrs=[float("nan")]), "every learning rate must be a positive finite number, got nan"),
    (dict(lrs=["fast"]), "config key 'probe.lrs': cannot use"),
    (dict(seed=-1), "config key 'probe.seed' must be an integer >= 0, got -1"),
    (dict(overrides={"lrs": (1e-3,)}), "config override 'lrs': give it as the request's lrs"),
    (dict(overrides={"seed": 3}), "config override 'seed': give it as the request's seed"),
    (dict(overrides={"profile": "paper"}), "config override 'profile': give it as the request's profile"),
    (dict(threads=0), "threads must be an integer >= 1 or None, got 0"),
    (dict(task=""), "task must be a non-empty name, got ''"),
])
def test_a_bad_request_is_one_line(kw, message):
    with pytest.raises(ConfigError) as e:
        _request(**kw)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_values_are_normalised_and_the_overrides_copied():
    over = {"steps": 3}
    r = _request(lrs=[1e-3, "2e-3"], seed=5, overrides=over)
    over["steps"] = 99  # the caller's dict changing later does not change the request
    assert r.lrs == (1e-3, 2e-3) and r.seed == 5 and r.runs.name == "r" and r.overrides == {"steps": 3}
    assert r.config_overrides() == {"steps": 3, "lrs": (1e-3, 2e-3), "seed": 5}
    assert _request().config_overrides() == {}
    assert pickle.loads(pickle.dumps(r)) == r  # what submitit does to a launched job's request


def test_resolve_once_then_carry_the_config():
    r = _request(lrs=[2e-3], overrides={"steps": 7}).resolve()
    assert r.config.probe.lrs == (2e-3,) and r.config.probe.steps == 7 and r.config.probe.seed == 1337
    assert r.resolve() is r  # resolved: never again
    p = r.point(2e-3, 1338)
    assert (p.lrs, p.seed, p.seeds, p.config.probe.lrs, p.config.probe.seed) == ((2e-3,), 1338, 1, (2e-3,), 1338)
    assert p.describe() == "fbank / lid lr=0.002 seed=1338"
    with pytest.raises(ConfigError, match="resolved config"):
        dataclasses.replace(r, lrs=(1e-3,))  # a config that is not the request's
    with pytest.raises(Exception, match="not resolved"):
        _request().point(1e-3, 1)


# Regression values, taken on the tree before EvalRequest existed (commit cc769b7) with the old
# signatures: plan_runs(upstream, task, corpus, runs, cache, profile, seeds, lrs, config_file,
# overrides) for the whole grid, and harness.launch.plan_jobs's one-point EvalJobs re-planned for
# the launched points. Hash: the run folders' config hash; digest: sha256 (16 hex digits) of the
# resolved config each run saves (to_dict of the EvalConfig with the run's seed).
OLD_PLAIN = ("73908b07f1", [(0.003, 1337, "lr0.003_seed1337_73908b07f1", "fa565ef20a6e9927")])
OLD_FILE = ("3801508742", [(0.003, 7, "lr0.003_seed7_3801508742", "2d59aaf50338f61e"),
                           (0.003, 8, "lr0.003_seed8_3801508742", "3f096dd2d6eddf26"),
                           (0.001, 7, "lr0.001_seed7_3801508742", "2d59aaf50338f61e"),
                           (0.001, 8, "lr0.001_seed8_3801508742", "3f096dd2d6eddf26")])
OLD_POINTS = ["0527010a44f72447", "bd5b8200657ecf10", "70628076d3e5bdcc", "c3b74b5f2b5fd37f"]


def _digest(cfg) -> str:
    return hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest()[:16]


def _grid(p):
    return (p.config_hash, [(lr, seed, folder.name, _digest(dataclasses.replace(
        p.config, probe=dataclasses.replace(p.config.probe, seed=seed)))) for lr, seed, folder in p.runs])


def test_run_identity_is_the_old_code_paths(tmp_path):
    tones = str(make_tone_corpus(tmp_path / "tones"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("cache_budget_gb: 1.5\ntasks:\n  lid:\n    steps: 7\n    head_dim: 32\n")
    plain = EvalRequest("fbank", "lid", tones, tmp_path / "runs", tmp_path / "cache", lrs=[3e-3])
    assert _grid(plan_runs(plain)) == OLD_PLAIN
    rich = EvalRequest("mfcc", "lid", tones, tmp_path / "runs", tmp_path / "cache", seeds=2, lrs=(3e-3, 1e-3), seed=7,
                       config_file=str(cfg), overrides={"steps": 5, "extract_dtype": "bfloat16"})
    assert _grid(plan_runs(rich)) == OLD_FILE
    points = plan_jobs([rich], log=lambda _: None)
    assert [p.describe() for p in points] == ["mfcc / lid lr=0.003 seed=7", "mfcc / lid lr=0.003 seed=8",
                                              "mfcc / lid lr=0.001 seed=7", "mfcc / lid lr=0.001 seed=8"]
    assert [_digest(p.config) for p in points] == OLD_POINTS  # a launched job saves its own point's config
    assert [_grid(plan_runs(p))[1][0][2] for p in points] == [f for _, _, f, _ in OLD_FILE[1]]


class _InProcess:
    """A submitit executor stand-in: runs each job here, after a pickle round trip (as submitit
    sends it), so that what the job does can be counted."""

    def __init__(self):
        self.submitted = []

    def submit(self, fn, request):
        request = pickle.loads(pickle.dumps(request))
        self.submitted.append(request)
        return _Done(fn(request))


@dataclasses.dataclass
class _Done:
    value: str
    job_id: str = "0"

    def done(self):
        return True

    def result(self):
        return self.value


def _count_resolutions(monkeypatch):
    calls = []
    real = evaluate_mod.resolve_config
    monkeypatch.setattr(evaluate_mod, "resolve_config", lambda *a, **kw: calls.append(a[0].name) or real(*a, **kw))
    return calls


def test_a_launched_job_is_resolved_once(tmp_path, monkeypatch):
    """`harness eval --launcher`: the command resolves each task's config; planning and the jobs
    (two grid points of two upstreams) use it and resolve nothing again."""
    tones = str(make_tone_corpus(tmp_path / "tones", n_per_class=4))
    ex = _InProcess()
    monkeypatch.setattr(launch_mod, "make_executor", lambda launcher, folder, cfg: ex)
    calls = _count_resolutions(monkeypatch)
    args = ["eval", "--upstream", "fbank,mfcc", "--task", "lid", "--corpus", tones, "--lr", "3e-3", "--seeds", "2",
            "--steps", "2", "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache"),
            "--launcher", "local"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert calls == ["lid"]
    assert len(ex.submitted) == 4 and all(q.config is not None and q.seeds == 1 for q in ex.submitted)
    saved = [json.loads((f / "config.json").read_text()) for f in (tmp_path / "runs").rglob("lr*_seed*")]
    assert sorted((c["upstream"], c["probe"]["seed"], tuple(c["probe"]["lrs"])) for c in saved) == [
        ("fbank", 1337, (0.003,)), ("fbank", 1338, (0.003,)), ("mfcc", 1337, (0.003,)), ("mfcc", 1338, (0.003,))]


def test_a_pool_job_is_resolved_once_in_the_job(tmp_path, monkeypatch):
    tones = str(make_tone_corpus(tmp_path / "tones", n_per_class=4))
    calls = _count_resolutions(monkeypatch)
    job = EvalRequest("fbank", "lid", tones, tmp_path / "runs", tmp_path / "cache", seeds=2, lrs=[3e-3],
                      overrides={"steps": 2})
    assert run_jobs([job], workers=1, log=lambda _: None) == 0
    assert calls == ["lid"] and len(list(results.iter_results(tmp_path / "runs"))) == 2
