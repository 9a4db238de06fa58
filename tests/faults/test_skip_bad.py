"""Issue 15, row 4: --skip-bad acts at manifest time too, for every real-corpus loader.

An empty, a text and a truncated audio file in a LibriSpeech tree: without --skip-bad the run
stops with one line naming a file; with it the run finishes, and the skipped files' count and
names are in its result, its skipped.json and on the board. Every other loader skips an
unreadable file the same way (meta["skipped_bad"]) and names it without the flag.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.data.corpora import load_corpus
from harness.errors import HarnessError
from harness.evaluate import evaluate
from harness.request import EvalRequest
from harness.leaderboard import build
from tests.unit.test_corpora import make_librispeech, make_speechcommands, make_voxceleb
from tests.unit.test_corpora_librimix import make_libri2mix, make_sd
from tests.unit.test_corpora_multilingual import make_cv, make_fleurs, make_mlsuperb

FAST = {"steps": 6, "eval_every": 3, "batch_seconds": 6.0}
BAD = {"19-198-0002": "empty", "19-198-0003": "text", "26-495-0001": "truncated"}


@pytest.fixture
def no_espeak(monkeypatch):
    monkeypatch.setitem(sys.modules, "harness.data.espeak", None)


def librispeech_with_bad_files(root: Path) -> Path:
    """The tiny LibriSpeech tree plus three unreadable train files listed in the transcripts."""
    make_librispeech(root)
    train = root / "LibriSpeech" / "train-clean-100"
    good = next(train.rglob("*.flac")).read_bytes()
    for uid, how in BAD.items():
        spk, ch, _ = uid.split("-")
        d = train / spk / ch
        f = d / f"{uid}.flac"
        f.write_bytes({"empty": b"", "text": b"this is not audio\n", "truncated": good[:30]}[how])
        with open(d / f"{spk}-{ch}.trans.txt", "a") as t:
            t.write(f"{uid} A BAD FILE\n")
    return root


def test_row04_skip_bad_at_manifest_time(tmp_path, no_espeak):
    root = librispeech_with_bad_files(tmp_path / "data")
    spec = f"librispeech:{root}"
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "asr", "--corpus", spec,
                                 "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "bad audio file" in lines[0] and any(f"{u}.flac" in lines[0] for u in BAD)

    res = evaluate(EvalRequest("fbank", "asr", spec, tmp_path / "runs", tmp_path / "cache", lrs=[1e-3],
                               overrides={**FAST, "skip_bad": True}), log=lambda *_: None)[0]
    assert res["skipped_bad"] == len(BAD)
    run_dir = next((tmp_path / "runs").rglob("result.json")).parent
    skipped = json.loads((run_dir / "skipped.json").read_text())
    assert set(skipped) == set(BAD) and all(f"{u}.flac" in skipped[u] for u in BAD)
    corpus = load_corpus(spec, cache_dir=tmp_path / "cache" / "corpora", skip_bad=True)
    assert set(corpus.meta["skipped_bad"]) == set(BAD) and not set(BAD) & {u.id for u in corpus.utterances}
    page = build(tmp_path / "runs", tmp_path / "boards")[0].read_text()
    assert f"{len(BAD)} unreadable audio file(s) skipped" in page and "19-198-0002.flac" in page


def _corrupt(root: Path, pattern: str) -> Path:
    """Overwrite the first file matching `pattern` under `root` with text; returns it."""
    f = sorted(root.glob(pattern))[0]
    f.write_text("not audio")
    return f.resolve()


LOADERS = {  # name -> (maker, glob of a file the loader reads at manifest time)
    "voxceleb1": (make_voxceleb, "wav/id*/*/*.wav"),
    "speechcommands": (make_speechcommands, "yes/*.wav"),
    "libri2mix": (make_libri2mix, "**/train-100/mix_clean/*.wav"),
    "librimix_sd": (make_sd, "**/*.wav"),
    "fleurs": (make_fleurs, "af_za/train/*.wav"),
    "commonvoice": (lambda r: make_cv(r, "cy"), "cy/clips/*.mp3"),
    "mlsuperb": (make_mlsuperb, "mls/eng/wav/*.wav"),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_row04_every_loader_skips_or_names_a_bad_file(tmp_path, name):
    maker, pattern = LOADERS[name]
    root = tmp_path / "data"
    made = maker(root)
    bad = _corrupt(root, pattern)
    spec = f"{name}:{made if name == 'libri2mix' else root}"
    with pytest.raises(HarnessError, match=rf"bad audio file .*{bad.name}"):
        load_corpus(spec, cache_dir=tmp_path / "cache")
    c = load_corpus(spec, cache_dir=tmp_path / "cache", skip_bad=True)
    (reason,) = c.meta["skipped_bad"].values()
    assert reason.startswith(f"{bad}: cannot read") and c.meta["skip_bad"] is True
    assert bad not in {Path(u.path).resolve() for u in c.utterances}
