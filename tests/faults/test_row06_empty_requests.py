"""Row 6 of issue 15: a request that asks for nothing (`--seeds 0`, `--seeds -3`, `--task ","`)
is an error naming the option, not an exit 0 that did nothing."""

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError
from harness.request import EvalRequest


@pytest.mark.parametrize("args,message", [
    (["--task", "lid", "--seeds", "0"], "--seeds must be an integer >= 1, got 0"),
    (["--task", "lid", "--seeds", "-3"], "--seeds must be an integer >= 1, got -3"),
    (["--task", ","], "--task: no name given"),
    (["--task", " , "], "--task: no name given"),
])
def test_row06_empty_requests_are_errors(tmp_path, args, message):
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", *args, "--corpus", str(tmp_path / "nowhere"),
                                 "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 1, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "runs").exists()


def test_row06_a_request_for_zero_seeds_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="seeds must be an integer >= 1, got 0"):
        EvalRequest("fbank", "lid", str(tmp_path / "nowhere"), tmp_path / "runs", tmp_path / "cache", seeds=0)
    assert not (tmp_path / "runs").exists()
