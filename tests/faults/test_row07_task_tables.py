"""Row 7 of issue 15: a config file's `tasks:` section is checked against the task registry: a
misspelt task name is an error with the closest names, not a table silently ignored."""

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import ConfigError
from harness.evaluate import build_task, resolve_config


def test_row07_misspelt_task_table_is_an_error(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("tasks:\n  sidd:\n    steps: 10\n")
    with pytest.raises(ConfigError, match=r"unknown task 'sidd' under 'tasks' \(did you mean sid"):
        resolve_config(build_task("lid"), "quick", str(f))
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "sid", "--config", str(f), "--corpus",
                                 str(tmp_path / "nowhere"), "--runs", str(tmp_path / "runs")])
    assert r.exit_code == 1 and "unknown task 'sidd'" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "runs").exists()


def test_row07_task_table_values_are_checked_and_named(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("tasks:\n  sid:\n    stepz: 10\n")
    with pytest.raises(ConfigError, match=r"tasks\.sid\.'?stepz"):
        resolve_config(build_task("sid"), "quick", str(f))
    f.write_text("tasks:\n  sid: 10\n")
    with pytest.raises(ConfigError, match="'tasks.sid' must be a table"):
        resolve_config(build_task("sid"), "quick", str(f))
    f.write_text("tasks:\n  sid:\n    steps: 10\n  ks:\n    steps: 20\n")  # known names: fine
    assert resolve_config(build_task("sid"), "quick", str(f)).probe.steps == 10
