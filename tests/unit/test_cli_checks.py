"""Issue 12 item 5: the CLI checks names and values before it generates or reads a corpus."""

import pytest
from typer.testing import CliRunner

from harness.cli import app


@pytest.mark.parametrize("device,message", [
    ("gpu", "config key 'device' must be cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("cuda:7", "device 'cuda:7' asked for, but this machine has"),
])
def test_unknown_or_absent_device_is_one_line(tmp_path, device, message):
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "lid", "--device", device,
                                 "--corpus", str(tmp_path / "nowhere"), "--runs", str(tmp_path / "runs"),
                                 "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 1, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "runs").exists()
