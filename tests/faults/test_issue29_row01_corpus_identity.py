"""Issue 29, row 1: a run's identity includes which data it was run on.

Two LibriSpeech-layout folders of one corpus name and size (B = A with dev-clean and test-clean
swapped) evaluated into one --runs: B is not "finished" by A's run; it gets its own run folder,
config hash and result, and each result records its corpus content fingerprint. The same data
in another folder keeps its identity (the rerun is skipped).
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from harness.data.corpora import load_corpus
from harness.data.corpus import content_fingerprint
from harness.evaluate import evaluate
from harness.request import EvalRequest
from tests.unit.test_corpora import make_librispeech

FAST = {"steps": 4, "eval_every": 2, "batch_seconds": 6.0}


@pytest.fixture
def no_espeak(monkeypatch):
    monkeypatch.setitem(sys.modules, "harness.data.espeak", None)


def _swap_dev_test(a, b):
    shutil.copytree(a, b)
    ls = b / "LibriSpeech"
    (ls / "dev-clean").rename(ls / "tmp")
    (ls / "test-clean").rename(ls / "dev-clean")
    (ls / "tmp").rename(ls / "test-clean")
    return b


def test_row01_two_corpora_of_one_name_get_their_own_results(tmp_path, no_espeak):
    a = make_librispeech(tmp_path / "A")
    b = _swap_dev_test(a, tmp_path / "B")
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    ca = load_corpus(f"librispeech:{a}", cache_dir=cache / "corpora")
    cb = load_corpus(f"librispeech:{b}", cache_dir=cache / "corpora")
    assert (ca.name, ca.meta["size"]) == (cb.name, cb.meta["size"])  # name and size alone cannot tell them apart
    assert content_fingerprint(ca) != content_fingerprint(cb)

    la, lb = [], []
    ra = evaluate(EvalRequest("fbank", "asr", f"librispeech:{a}", runs, cache, lrs=[1e-3], overrides=FAST),
                  log=la.append)[0]
    rb = evaluate(EvalRequest("fbank", "asr", f"librispeech:{b}", runs, cache, lrs=[1e-3], overrides=FAST),
                  log=lb.append)[0]
    assert not any(ln.startswith("skip ") for ln in lb), lb
    assert ra["config_hash"] != rb["config_hash"]
    assert ra["corpus_fingerprint"] == content_fingerprint(ca) and rb["corpus_fingerprint"] == content_fingerprint(cb)
    found = sorted(runs.rglob("result.json"))
    assert len(found) == 2
    stored = {json.loads(p.read_text())["corpus_fingerprint"] for p in found}
    assert stored == {content_fingerprint(ca), content_fingerprint(cb)}
    # B's test set is A's dev set: its test metrics are computed on other utterances
    assert rb["metrics"]["test"] != ra["metrics"]["test"] or rb["metrics"]["dev"] != ra["metrics"]["dev"]

    # the same data moved elsewhere is the same run: finished, not redone
    moved = shutil.move(str(a), tmp_path / "A_moved")
    lm = []
    rm = evaluate(EvalRequest("fbank", "asr", f"librispeech:{moved}", runs, cache, lrs=[1e-3], overrides=FAST),
                  log=lm.append)[0]
    assert any(ln.startswith("skip ") for ln in lm) and rm["config_hash"] == ra["config_hash"]
