"""Issue 29, row 8: non-UTF-8 bytes in a transcript (or a trial list) are one line naming the
file and the line (on f051749: a 127-line UnicodeDecodeError traceback naming no file)."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.data.corpus import read_trials
from harness.errors import HarnessError
from tests.unit.test_corpora import make_librispeech


@pytest.fixture
def no_espeak(monkeypatch):
    monkeypatch.setitem(sys.modules, "harness.data.espeak", None)


def test_row08_latin1_bytes_in_a_transcript_name_the_file_and_line(tmp_path, no_espeak):
    make_librispeech(tmp_path / "data")
    trans = tmp_path / "data" / "LibriSpeech" / "test-clean" / "1089" / "134686" / "1089-134686.trans.txt"
    lines = trans.read_bytes().splitlines()
    lines[1] = lines[1].replace(b"STUFF", "STÜFF".encode("latin-1"))
    trans.write_bytes(b"\n".join(lines) + b"\n")
    r = CliRunner().invoke(app, ["data", "prepare", f"librispeech:{tmp_path / 'data'}",
                                 "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    out = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(out) == 1 and f"{trans}:2: not UTF-8 text" in out[0] and "0xdc" in out[0], out


def test_row08_a_trial_list_with_binary_bytes(tmp_path):
    (tmp_path / "trials_dev.txt").write_bytes(b"1 a b\n0 a \xff\xfe\n")
    with pytest.raises(HarnessError, match=r"trials_dev\.txt:2: not UTF-8 text \(byte 5 of the line is 0xff\)"):
        read_trials(tmp_path / "trials_dev.txt")
