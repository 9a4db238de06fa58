"""The probe engine learns, writes honest run folders, resumes, and handles bad audio."""

import json

import pytest

from tests.conftest import make_tone_corpus
from harness.errors import HarnessError
from harness.evaluate import evaluate
from harness.request import EvalRequest
from harness.results import iter_results

OVER = {"steps": 60, "eval_every": 20, "batch_seconds": 8.0}


def test_lid_on_tones_beats_chance_and_writes_a_complete_run(tmp_path):
    # fbank_no_cmvn: a steady tone's filter banks are constant in time, so per-utterance CMVN
    # (the `fbank` baseline) would leave nothing to classify
    corpus = make_tone_corpus(tmp_path / "tones")
    res = evaluate(EvalRequest("fbank_no_cmvn", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[3e-3],
                               overrides=OVER), log=lambda *_: None)
    assert len(res) == 1
    r = res[0]
    assert r["metrics"]["test"]["acc"] > 80.0  # chance is 33 %
    assert r["lr"] == 3e-3 and r["seed"] == 1337 and r["task"] == "lid" and r["upstream"] == "fbank_no_cmvn"
    assert len(r["layer_weights"]["softmax"]) == 1 and r["layer_weights"]["layer_norm"][0] > 0
    assert r["history"][0]["train_loss"] > r["history"][-1]["train_loss"]  # loss falls
    folder = next((tmp_path / "runs").rglob("result.json")).parent
    assert json.loads((folder / "config.json").read_text())["probe"]["steps"] == 60
    # asking again skips the finished run
    again = evaluate(EvalRequest("fbank_no_cmvn", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[3e-3],
                                 overrides=OVER), log=lambda *_: None)
    assert again[0]["finished_at"] == r["finished_at"]


def test_unfinished_run_folder_is_not_a_result(tmp_path):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=6)
    evaluate(EvalRequest("mfcc", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-3],
                         overrides={**OVER, "steps": 5, "eval_every": 5}), log=lambda *_: None)
    folder = next((tmp_path / "runs").rglob("result.json")).parent
    (folder / "result.json").unlink()  # as if killed before the last write
    assert list(iter_results(tmp_path / "runs")) == []
    res = evaluate(EvalRequest("mfcc", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-3],
                               overrides={**OVER, "steps": 5, "eval_every": 5}), log=lambda *_: None)
    assert (folder / "result.json").exists() and len(res) == 1


def test_bad_audio_is_named_or_skipped_and_counted(tmp_path):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=6, bad_ids=("bb_001",))
    with pytest.raises(HarnessError, match=r"bb_001\.wav.*not a readable audio file"):
        evaluate(EvalRequest("fbank", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-3],
                             overrides={**OVER, "steps": 5, "eval_every": 5}), log=lambda *_: None)
    res = evaluate(EvalRequest("fbank", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache2", lrs=[1e-3],
                               overrides={**OVER, "steps": 5, "eval_every": 5, "skip_bad": True}), log=lambda *_: None)
    assert res[0]["skipped_bad"] == 1


def test_average_of_the_lowest_dev_loss_checkpoints(tmp_path):
    """average_best = 3: the three evaluations with the lowest dev loss are averaged (ESPnet's
    valid.loss.ave) and that average is what dev and test score."""
    import torch

    from harness.probe import average_states

    a, b = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(7)}, {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)}
    avg = average_states([a, b])
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and int(avg["n"]) == 7
    corpus = make_tone_corpus(tmp_path / "tones")
    res = evaluate(EvalRequest("fbank_no_cmvn", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[3e-3],
                               overrides={**OVER, "eval_every": 10, "average_best": 3}), log=lambda *_: None)
    r = res[0]
    losses = {h["step"]: h["dev_loss"] for h in r["history"]}
    assert len(losses) == 6 and all(v > 0 for v in losses.values())
    best3 = sorted(sorted(losses, key=lambda s: (losses[s], s))[:3])
    assert r["extra"]["averaged_checkpoints"] == {"steps": best3, "by": "lowest dev loss"}
    assert r["metrics"]["test"]["acc"] > 80.0
    with pytest.raises(Exception, match="average_best"):
        evaluate(EvalRequest("fbank_no_cmvn", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[3e-3],
                             overrides={**OVER, "average_best": 0}), log=lambda *_: None)


def test_crop_frames_sets_the_training_crop_in_upstream_frames():
    from harness.config import ProbeConfig
    from harness.probe import TrainSampler

    class Source:
        ids = ["a", "b"]

        @staticmethod
        def frames(uid):
            return 5000

    for rate in (100.0, 50.0):
        s = TrainSampler(Source(), rate, ProbeConfig(crop_frames=2000, crop_seconds=3.0, batch_seconds=1e4,
                                                     max_batch_items=2), None, seed=0)
        _, crops = s.next()
        assert [n for _, n in crops] == [2000, 2000]  # 20 s at 10 ms, 40 s at 20 ms
