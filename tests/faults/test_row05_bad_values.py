"""Row 5 of issue 15: bad numbers (negative or zero steps, eval interval and batch seconds; zero,
negative or NaN learning rates) are answered in one line naming the key and the value, before a
corpus is read, and no run folder is left behind; pre-training recipes check theirs too."""

import re

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError
from harness.pretrain.recipe import FeatureConfig, TrainConfig
from tests.conftest import make_tone_corpus

CASES = [
    (["--steps", "-5"], None, "'probe.steps'.*-5"),
    (["--steps", "5", "--lr", "0"], None, "'probe.lrs'.*0.0"),
    (["--steps", "5", "--lr", "-1"], None, "'probe.lrs'.*-1.0"),
    (["--steps", "5", "--lr", "nan"], None, "'probe.lrs'.*nan"),
    ([], "probe:\n  steps: 0\n", "'probe.steps'.*got 0"),
    (["--steps", "5"], "probe:\n  eval_every: 0\n", "'probe.eval_every'.*got 0"),
    (["--steps", "5"], "probe:\n  batch_seconds: -1\n", "'probe.batch_seconds'.*-1"),
    (["--steps", "5"], "tasks:\n  lid:\n    lrs: [0.0]\n", "'probe.lrs'.*0.0"),
]


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return make_tone_corpus(tmp_path_factory.mktemp("tones"), n_per_class=4)


@pytest.mark.parametrize("args,config,message", CASES)
def test_row05_bad_values_fail_in_one_line_and_leave_no_run_folder(tmp_path, tones, args, config, message):
    extra = []
    if config is not None:
        (tmp_path / "c.yaml").write_text(config)
        extra = ["--config", str(tmp_path / "c.yaml")]
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "lid", "--corpus", str(tones), *args, *extra,
                                 "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "runs").exists()  # nothing started, nothing to clean up
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("cls,kw,message", [
    (TrainConfig, {"lr": 0.0}, "train.lr.*0.0"),
    (TrainConfig, {"lr": float("nan")}, "train.lr.*nan"),
    (TrainConfig, {"lr": -1e-3}, "train.lr"),
    (TrainConfig, {"steps": 0}, "train.steps.*0"),
    (TrainConfig, {"batch_samples": 0}, "train.batch_samples.*0"),
    (TrainConfig, {"max_sample_size": -1}, "train.max_sample_size.*-1"),
    (FeatureConfig, {"batch_seconds": 0.0}, "features.batch_seconds.*0"),
])
def test_row05_pretraining_recipe_values_are_checked(cls, kw, message):
    with pytest.raises(ConfigError, match=message):
        cls(**kw)


def test_row05_pretraining_iterations_are_checked(tmp_path):
    from harness.pretrain import pretrain

    with pytest.raises(ConfigError, match="iterations must be an integer >= 1, got 0"):
        pretrain("hubert_tiny", str(tmp_path / "nowhere"), tmp_path / "out", iterations=0)
    assert not (tmp_path / "out").exists()
