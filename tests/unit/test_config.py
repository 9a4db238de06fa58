import pytest

from harness.config import EvalConfig, ProbeConfig, config_hash, merge
from harness.errors import ConfigError
from harness.evaluate import build_task, resolve_config


def test_precedence_defaults_profile_file_cli(tmp_path):
    task = build_task("pr")
    f = tmp_path / "c.yaml"
    f.write_text("cache_budget_gb: 3\nprobe:\n  steps: 7\n  head_dim: 64\ntasks:\n  pr:\n    eval_every: 5\n")
    cfg = resolve_config(task, "quick", str(f), {"steps": 11})
    assert cfg.cache_budget_gb == 3.0
    assert cfg.probe.head_dim == 64  # file beats profile
    assert cfg.probe.eval_every == 5  # per-task table
    assert cfg.probe.steps == 11  # CLI beats file
    assert cfg.probe.lrs == task.profiles["quick"]["lrs"]  # profile beats defaults


def test_unknown_key_is_an_error_naming_it(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[probe]\nstepz = 3\n")
    with pytest.raises(ConfigError, match="stepz.*did you mean steps"):
        resolve_config(build_task("pr"), "quick", str(f))


def test_bad_value_and_hash():
    with pytest.raises(ConfigError, match="steps"):
        merge(ProbeConfig(), {"steps": "many"})
    a, b = EvalConfig(), merge(EvalConfig(), {"probe": {"steps": 5}})
    assert config_hash(a) == config_hash(EvalConfig()) != config_hash(b)
    assert merge(ProbeConfig(), {"lrs": "1e-3, 1e-4"}).lrs == (1e-3, 1e-4)
