"""Issue 29, row 7: audio a transcript lists but that is not there is counted and named.

A transcript line whose .flac is missing, and one whose .flac is a symlink loop: without
--skip-bad `harness data prepare` stops with one line naming the file; with it both are left out,
counted and named (on f051749 both were dropped without a word, skipped_bad 0).
"""

from __future__ import annotations

import os
import sys

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.data.corpora import load_corpus
from tests.unit.test_corpora import make_librispeech

CHAPTER = ("train-clean-100", "19", "198")


@pytest.fixture
def no_espeak(monkeypatch):
    monkeypatch.setitem(sys.modules, "harness.data.espeak", None)


def _tree(root, how):
    make_librispeech(root)
    d = root / "LibriSpeech" / CHAPTER[0] / CHAPTER[1] / CHAPTER[2]
    uid = "19-198-0009"
    with open(d / "19-198.trans.txt", "a") as f:
        f.write(f"{uid} A LINE WITHOUT ITS AUDIO\n")
    if how == "loop":
        os.symlink(f"{uid}.flac", d / f"{uid}.flac")  # points at itself
    return uid, d / f"{uid}.flac"


@pytest.mark.parametrize("how", ["missing", "loop"])
def test_row07_listed_audio_that_is_not_there_is_named(tmp_path, no_espeak, how):
    uid, flac = _tree(tmp_path / "data", how)
    spec = f"librispeech:{tmp_path / 'data'}"
    r = CliRunner().invoke(app, ["data", "prepare", spec, "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(flac) in lines[0] and "19-198.trans.txt" in lines[0], lines
    reason = "No such file" if how == "missing" else "symbolic links"
    assert reason in lines[0]

    r = CliRunner().invoke(app, ["data", "prepare", spec, "--cache-dir", str(tmp_path / "cache"), "--skip-bad"])
    assert r.exit_code == 0, r.output
    assert "skipped unreadable files: 1" in r.output and str(flac) in r.output
    c = load_corpus(spec, cache_dir=tmp_path / "cache", skip_bad=True)
    assert list(c.meta["skipped_bad"]) == [uid] and uid not in {u.id for u in c.utterances}
    assert len(c.utterances) == 6  # the fixture's utterances, none of the others dropped
