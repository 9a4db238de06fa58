"""Issue 29, row 9: a config file that cannot be read is one line naming the file and where.

A YAML or TOML syntax error (line and column), a binary file, and a "billion laughs" file (nine
levels of nine-fold YAML aliases, 9^9 values, under a known key) are refused in one line, with
no run folder; the aliases are refused before anything expands them (on f051749: 61-180-line
tracebacks, and the bomb took 3.7 GB and ended in MemoryError while its value was printed).
"""

from __future__ import annotations

import re
import resource

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import MAX_CONFIG_VALUES, ProbeConfig, merge, read_config_file
from harness.errors import ConfigError
from tests.conftest import make_tone_corpus


def _laughs(levels: int = 9, width: int = 9) -> str:
    names = "abcdefghijklmnop"
    parts = [f"&a [{', '.join(['1.0'] * width)}]"]
    for k in range(1, levels):
        parts.append(f"&{names[k]} [{', '.join([f'*{names[k - 1]}'] * width)}]")
    return "probe:\n  lrs: [" + ", ".join(parts) + "]\n"


CASES = [
    ("c.yaml", b"probe:\n  steps: [1, 2\n  lrs: 3\n", r"c\.yaml: YAML syntax error at line \d+, column \d+"),
    ("c.yaml", b"probe:\n\tsteps: 3\n", r"c\.yaml: YAML syntax error at line 2, column 1"),
    ("c.toml", b"[probe]\nsteps = = 3\n", r"c\.toml: TOML syntax error: .*line 2"),
    ("c.yaml", bytes(range(256)) * 4, r"c\.yaml: not UTF-8 text \(byte 128 is 0x80\)"),
    ("c.yaml", _laughs().encode(), rf"c\.yaml: holds more than {MAX_CONFIG_VALUES:,} values .*aliases"),
]


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return make_tone_corpus(tmp_path_factory.mktemp("tones"), n_per_class=4)


@pytest.mark.parametrize("name,content,message", CASES)
def test_row09_unreadable_config_files_fail_in_one_line(tmp_path, tones, name, content, message):
    (tmp_path / name).write_bytes(content)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "lid", "--corpus", str(tones),
                                 "--config", str(tmp_path / name),
                                 "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert re.search(message, " ".join(lines)), lines[0]
    assert not (tmp_path / "runs").exists()
    # peak memory (KiB) grew by less than 200 MiB: nothing expanded the aliases
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024


def test_row09_a_few_aliases_are_still_fine(tmp_path):
    (tmp_path / "c.yaml").write_text("probe:\n  lrs: &grid [0.001, 0.003]\ntasks:\n  lid:\n    lrs: *grid\n")
    assert read_config_file(tmp_path / "c.yaml")["tasks"]["lid"]["lrs"] == [0.001, 0.003]
    (tmp_path / "d.yaml").write_text(_laughs(levels=3))  # 9^3 values: under the bound, refused by type
    with pytest.raises(ConfigError, match=r"'probe\.lrs': cannot use \[\[1\.0, 1\.0") as e:
        merge(ProbeConfig(), read_config_file(tmp_path / "d.yaml")["probe"], "probe.")
    assert len(str(e.value)) < 1000  # the value is shown abridged
