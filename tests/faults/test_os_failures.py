"""Issue 15, rows 10 and 11: every operating-system failure is one line naming the path and
what to do, and a full cache leaves no temporary file behind.

Read-only, permission-denied and full disks are simulated by making the calls that write raise
the OSError the kernel would (chmod does not stop root, who may run these tests); a file where a
folder is expected is real.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError
from harness.evaluate import evaluate
from harness.request import EvalRequest
from tests.conftest import make_tone_corpus
from tests.unit.test_corpora import make_librispeech

FAST = {"steps": 4, "eval_every": 2, "batch_seconds": 8.0}
CAUSES = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.ENOSPC: "disk full at"}


@pytest.fixture
def tones(tmp_path):
    return make_tone_corpus(tmp_path / "tones", n_per_class=4)


def _eval(tmp_path, corpus, runs="runs", cache="cache"):
    return CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "lid", "--corpus", str(corpus),
                                    "--steps", "4", "--runs", str(tmp_path / runs), "--cache", str(tmp_path / cache)])


def _one_error_line(r) -> str:
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.output
    return errors[0]


def _refuse_mkdir_under(monkeypatch, root: Path, code: int) -> None:
    """Path.mkdir under `root` fails as on a read-only, protected or full disk."""
    real = Path.mkdir

    def mkdir(self, *a, **kw):
        if Path(self).absolute().is_relative_to(root.absolute()):
            raise OSError(code, os.strerror(code), str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", mkdir)


@pytest.mark.parametrize("code", sorted(CAUSES), ids=lambda c: errno.errorcode[c])
@pytest.mark.parametrize("which", ["runs", "cache"])
def test_row10_unwritable_runs_or_cache_is_one_line(tmp_path, tones, monkeypatch, which, code):
    if which == "runs":  # the features are cached already: the first write is the run folder
        evaluate(EvalRequest("fbank", "lid", str(tones), tmp_path / "warm", tmp_path / "cache", lrs=[1e-3],
                             overrides=FAST), log=lambda *_: None)
    _refuse_mkdir_under(monkeypatch, tmp_path / which, code)
    line = _one_error_line(_eval(tmp_path, tones))
    assert CAUSES[code] in line and f"choose another --{which}" in line and str(tmp_path / which) in line
    assert not list((tmp_path / "runs").rglob("result.json"))


def test_row10_full_cache_leaves_no_temporary_files(tmp_path, tones, monkeypatch):
    import harness.extraction as extraction

    def full_save(file, arr, *a, **kw):  # a partial shard, then the disk is full
        Path(file).write_bytes(b"\x93NUMPY partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # shards are written (and hashed on the way) by extraction.save_hashed
    monkeypatch.setattr(extraction, "save_hashed", full_save)
    line = _one_error_line(_eval(tmp_path, tones))
    assert "disk full at" in line and str(tmp_path / "cache" / "features") in line and "--cache" in line
    left = [p.name for p in (tmp_path / "cache").rglob("*") if ".tmp" in p.name or p.name.endswith(".npy")]
    assert left == [] and not list((tmp_path / "cache").rglob("index.json"))


def test_row10_full_manifest_cache_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import harness.data.corpora as corpora

    def full_save(folder, *a, **kw):  # part of the manifests, then the disk is full
        (Path(folder) / "recordings.jsonl.gz").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setitem(sys.modules, "harness.data.espeak", None)
    monkeypatch.setattr(corpora, "save_manifests", full_save)
    root = make_librispeech(tmp_path / "data")
    with pytest.raises(HarnessError, match=r"disk full at .*cache/librispeech-\w+: free \d+ MB; free some "
                                           r"space or choose another --cache"):
        corpora.load_corpus(f"librispeech:{root}", cache_dir=tmp_path / "cache")
    left = [p.name for p in (tmp_path / "cache").iterdir()]
    assert len(left) == 1 and left[0].endswith(".lock")  # no cache folder, no temporary folder


@pytest.mark.parametrize("which", ["runs", "cache"])
def test_row10_file_where_a_folder_is_expected(tmp_path, tones, which):
    (tmp_path / which).write_text("a file")
    line = _one_error_line(_eval(tmp_path, tones))
    assert f"{tmp_path / which} is a file, not a folder" in line and f"--{which}" in line


@pytest.mark.parametrize("prefix", ["", "librispeech:", "voxceleb1:", "fleurs:"])
def test_row11_corpus_is_a_file(tmp_path, prefix):
    f = tmp_path / "corpus.txt"
    f.write_text("not a folder")
    line = _one_error_line(_eval(tmp_path, f"{prefix}{f}"))
    assert f"{f} is a file, not a folder" in line
