"""Issue 29, row 10: config values of the wrong type or out of range are refused in one line
naming the key and the value, before anything is read or written (no run folder).

On f051749: `steps: true` ran 1 step, `layer_norm: 2` and `skip_bad: [0]` became true, a bogus
profile or ASV/PR head was accepted (the head failed in an 87-line traceback once training
started, leaving a run folder), a negative crop_frames and average_best 0 were accepted.
"""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ProbeConfig, merge
from harness.errors import ConfigError
from tests.conftest import make_tone_corpus

CASES = [
    ("lid", "probe:\n  steps: true\n", r"'probe\.steps'.*True"),
    ("lid", "probe:\n  layer_norm: 2\n", r"'probe\.layer_norm'.*2"),
    ("lid", "skip_bad: [0]\n", r"'skip_bad'.*\[0\]"),
    ("lid", "profile: bogus\n", r"'profile'.*'bogus'"),
    ("pr", "tasks:\n  pr:\n    head: bogus\n", r"'probe\.head'.*'pr'.*'bogus'"),
    ("asv", "tasks:\n  asv:\n    head: bogus\n", r"'probe\.head'.*xvector.*'bogus'"),
    ("lid", "probe:\n  crop_frames: -5\n", r"'probe\.crop_frames'.*-5"),
    ("lid", "probe:\n  average_best: 0\n", r"'probe\.average_best'.*0"),
    ("lid", "probe:\n  optimizer: 3\n", r"'probe\.optimizer'.*3"),
    ("lid", "probe:\n  lrs: [true]\n", r"'probe\.lrs'.*True"),
]


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return make_tone_corpus(tmp_path_factory.mktemp("tones"), n_per_class=4)


@pytest.mark.parametrize("task,config,message", CASES)
def test_row10_mistyped_or_out_of_range_values_fail_in_one_line(tmp_path, tones, task, config, message):
    (tmp_path / "c.yaml").write_text(config)
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", task, "--corpus", str(tones),
                                 "--config", str(tmp_path / "c.yaml"),
                                 "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_row10_command_line_strings_still_parse():
    cfg = merge(ProbeConfig(), {"steps": "7", "layer_norm": "true", "lrs": "1e-3,2e-3", "dropout": "0.1"})
    assert (cfg.steps, cfg.layer_norm, cfg.lrs, cfg.dropout) == (7, True, (1e-3, 2e-3), 0.1)
    with pytest.raises(ConfigError, match="'steps'.*'seven'"):
        merge(ProbeConfig(), {"steps": "seven"})
