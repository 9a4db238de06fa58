"""Issue 29, row 13: caches and run stores respect the umask, so a group can share them.

Under umask 002 every folder and file a run leaves (feature pool folder, its shards and
index.json, the prepared manifests, run folders, config.json and result.json) is group-writable
(on f051749 pool folders were 0700 and index/result files 0600 whatever the umask: mkdtemp's and
mkstemp's modes). Under umask 077 they stay private.
"""

from __future__ import annotations

import os
import stat
import sys

import pytest

from harness.data.corpora import load_corpus
from harness.evaluate import evaluate
from harness.request import EvalRequest
from tests.conftest import make_tone_corpus
from tests.unit.test_corpora import make_librispeech


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


def _modes(root):
    return {p: stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]
            if not p.name.startswith(".") and not p.is_symlink()}


@pytest.mark.parametrize("mask", [0o002, 0o077])
def test_row13_what_a_run_leaves_has_the_umask_modes(tmp_path, monkeypatch, umask, mask):
    monkeypatch.setitem(sys.modules, "harness.data.espeak", None)
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4)
    data = make_librispeech(tmp_path / "ls")
    umask(mask)
    evaluate(EvalRequest("fbank", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-3],
                         overrides={"steps": 2, "eval_every": 1, "batch_seconds": 8.0}), log=lambda *_: None)
    load_corpus(f"librispeech:{data}", cache_dir=tmp_path / "cache" / "corpora")
    modes = {**_modes(tmp_path / "runs"), **_modes(tmp_path / "cache")}
    names = {p.name for p in modes}
    assert {"index.json", "result.json", "config.json", "corpus.json", "shard_00000.npy"} <= names
    for p, m in modes.items():
        want = (0o777 if p.is_dir() else 0o666) & ~mask
        assert m == want, f"{p}: {m:o}, the umask gives {want:o}"
