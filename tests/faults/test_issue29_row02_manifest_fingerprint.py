"""Issue 29, row 2: the manifest cache sees every file it was made from, and its own files.

`harness data prepare librispeech:A`, then one transcript line edited deep in a chapter folder,
or one .flac replaced by an 8 kHz 2 s file: preparing again rebuilds the manifests with the new
text and duration and says so in one line (on f051749 the old text and duration were kept: the
fingerprint read only the parts' top-level entries). A manifest file of the cache damaged in
place is named and rebuilt too.
"""

from __future__ import annotations

import gzip
import sys

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from harness.cli import app
from harness.data.corpora import load_corpus
from tests.unit.test_corpora import make_librispeech


@pytest.fixture
def no_espeak(monkeypatch):
    monkeypatch.setitem(sys.modules, "harness.data.espeak", None)


def _prepare(root, cache):
    r = CliRunner().invoke(app, ["data", "prepare", f"librispeech:{root}", "--cache-dir", str(cache)])
    assert r.exit_code == 0, r.output
    return r.output


def _rebuilt_lines(out):
    return [ln for ln in out.splitlines() if "rebuilding" in ln]


def _utt(root, cache, uid):
    return next(u for u in load_corpus(f"librispeech:{root}", cache_dir=cache).utterances if u.id == uid)


def test_row02_an_edited_transcript_line_deep_inside_rebuilds(tmp_path, no_espeak):
    root, cache = make_librispeech(tmp_path / "A"), tmp_path / "cache"
    assert _rebuilt_lines(_prepare(root, cache)) == []
    assert _rebuilt_lines(_prepare(root, cache)) == []  # unchanged: read back, not rebuilt
    trans = root / "LibriSpeech" / "train-clean-100" / "19" / "198" / "19-198.trans.txt"
    trans.write_text(trans.read_text().replace("THIS LITTLE WORK WAS FINISHED", "THIS LITTLE WORK WAS CHANGED"))
    lines = _rebuilt_lines(_prepare(root, cache))
    assert len(lines) == 1 and "source files" in lines[0]
    assert _utt(root, cache, "19-198-0001").text == "THIS LITTLE WORK WAS CHANGED"


def test_row02_a_replaced_flac_rebuilds_with_its_duration(tmp_path, no_espeak):
    root, cache = make_librispeech(tmp_path / "A"), tmp_path / "cache"
    _prepare(root, cache)
    assert _utt(root, cache, "26-495-0000").duration == pytest.approx(0.5)
    flac = root / "LibriSpeech" / "train-clean-100" / "26" / "495" / "26-495-0000.flac"
    sf.write(str(flac), (0.1 * np.sin(np.arange(16000) / 5)).astype("float32"), 8000)  # 8 kHz, 2 s
    lines = _rebuilt_lines(_prepare(root, cache))
    assert len(lines) == 1
    u = _utt(root, cache, "26-495-0000")
    assert u.duration == pytest.approx(2.0) and u.sampling_rate == 8000


def test_row02_a_damaged_manifest_file_is_named_and_rebuilt(tmp_path, no_espeak):
    root, cache = make_librispeech(tmp_path / "A"), tmp_path / "cache"
    _prepare(root, cache)
    folder = load_corpus(f"librispeech:{root}", cache_dir=cache).root
    sups = folder / "supervisions.jsonl.gz"
    text = gzip.decompress(sups.read_bytes()).replace(b"HELLO WORLD", b"HELLO THERE")  # still a valid manifest
    sups.write_bytes(gzip.compress(text))
    lines = _rebuilt_lines(_prepare(root, cache))
    assert len(lines) == 1 and "supervisions.jsonl.gz" in lines[0]
    assert _utt(root, cache, "26-495-0000").text == "HELLO WORLD"
