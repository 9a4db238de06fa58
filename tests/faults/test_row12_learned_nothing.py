"""Row 12 of issue 15: a probe whose dev metric never beats the task's trivial answer is marked
on its result and on the board; ties on the dev metric keep the later step, not the first."""

import random

from harness import leaderboard
from harness.evaluate import evaluate
from harness.registry import TASKS, load_all
from harness.request import EvalRequest
from harness.scores import METRIC_HIGHER_IS_BETTER
from tests.conftest import make_tone_corpus

QUIET = dict(log=lambda *_: None)


def _words(uid: str) -> str:
    """Four random 5-letter words per utterance, unrelated to its audio: nothing to learn."""
    rng = random.Random(uid)
    return " ".join("".join(rng.choice("abcdefghij") for _ in range(5)) for _ in range(4))


def test_row12_a_probe_that_never_beats_the_trivial_answer_is_marked(tmp_path):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=9, classes=("en",), text=_words)
    r = evaluate(EvalRequest("fbank", "asr", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-3],
                             overrides={"steps": 3, "eval_every": 1}), **QUIET)[0]
    assert r["trivial_dev"] == 100.0  # the empty transcript
    assert all(h["dev_wer"] >= 100.0 for h in r["history"])
    assert r["learned_nothing"] is True
    assert r["extra"]["trivial_baseline"]["dev"] == {"wer": 100.0}

    page = leaderboard.build(tmp_path / "runs", tmp_path / "boards")[0].read_text()
    row = next(ln for ln in page.splitlines() if ln.startswith("| fbank |") and "learned nothing" in ln)
    assert "⚠ learned nothing (1/1 seeds)" in row
    assert r["run_id"] in page.split("Run details")[-1]  # the runs behind the flagged row


def test_row12_a_probe_that_learns_is_not_marked_and_ties_keep_the_later_step(tmp_path):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4)
    # fbank_no_cmvn: tones differ in their mean spectrum, which per-utterance CMVN removes
    r = evaluate(EvalRequest("fbank_no_cmvn", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-3],
                             overrides={"steps": 3, "eval_every": 1}), **QUIET)[0]
    dev = [h["dev_acc"] for h in r["history"]]
    assert dev[1] == dev[2] == max(dev) > dev[0]  # a tie at the best value (steps 2 and 3) ...
    assert r["best_step"] == 3  # ... keeps the later step (dev macro_acc ties too)
    assert r["learned_nothing"] is False and r["trivial_dev"] < max(dev)
    page = leaderboard.build(tmp_path / "runs", tmp_path / "boards")[0].read_text()
    assert "⚠ learned nothing" not in page


def test_row12_secondary_metrics_have_a_direction():
    load_all()
    for name in TASKS.names():
        task = TASKS.get(name)()
        if task.secondary_metric:
            assert task.secondary_metric in METRIC_HIGHER_IS_BETTER, name
            assert task.secondary_metric != task.primary_metric, name
