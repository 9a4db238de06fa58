"""`harness eval --corpus <name>:DIR` on tiny trees in each real corpus's layout."""

import pytest

from harness.evaluate import evaluate
from harness.request import EvalRequest
from tests.unit.test_corpora import make_librispeech, make_speechcommands, make_voxceleb

FAST = {"steps": 6, "eval_every": 3, "batch_seconds": 6.0}


@pytest.mark.parametrize("maker,prefix,task,metric", [
    (make_librispeech, "librispeech", "asr", "wer"),
    (make_librispeech, "librispeech", "pr", "per"),
    (make_speechcommands, "speechcommands", "ks", "acc"),
    (make_voxceleb, "voxceleb1", "sid", "acc"),
    (make_voxceleb, "voxceleb1", "asv", "eer"),
])
def test_eval_on_real_layout(tmp_path, maker, prefix, task, metric):
    root = maker(tmp_path / "data")
    res = evaluate(EvalRequest("fbank", task, f"{prefix}:{root}", tmp_path / "runs", tmp_path / "cache", lrs=[1e-3],
                               overrides=FAST), log=lambda *_: None)
    r = res[0]
    assert r["corpus_kind"] == "real" and r["corpus"] == prefix
    value = r["metrics"]["test"][metric]
    assert value == value and value >= 0  # a real number, computed on the test split
