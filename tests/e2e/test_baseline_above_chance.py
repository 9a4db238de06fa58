"""fbank, the board's zero point, is above chance on KS and SID of synth tiny (issue 28, item 3):
as SUPERB's FBANK reference row, its mean-pool tasks get filter banks without CMVN, which with
CMVN were a constant answer (8.33 and 13.64, the trivial answer's accuracy, before the change).

Quick profile as on the demo boards; about 40 s on one thread after the corpus fixture."""

import json
from pathlib import Path

import pytest

from harness.evaluate import evaluate
from harness.request import EvalRequest


@pytest.mark.parametrize("task, margin", [("ks", 5.0), ("sid", 30.0)])
def test_fbank_is_above_chance_on_the_mean_pool_tasks(tiny_corpus, tmp_path, task, margin):
    r = evaluate(EvalRequest("fbank", task, str(tiny_corpus), tmp_path / "runs", tmp_path / "cache"),
                 log=lambda *_: None)[0]
    trivial = r["extra"]["trivial_baseline"]["test"]["acc"]
    # quick profile, seed 1337: KS 19.44 (trivial 8.33), SID 100.00 (trivial 13.64)
    assert r["metrics"]["test"]["acc"] > trivial + margin
    assert r["metrics"]["dev"]["acc"] > r["trivial_dev"] and not r["learned_nothing"]
    run = next(Path(tmp_path / "runs").rglob("config.json"))
    spec = json.loads(run.read_text())["upstream_spec"]
    assert (spec["name"], spec["source"]) == ("fbank", "torchaudio.compliance.kaldi.fbank")
