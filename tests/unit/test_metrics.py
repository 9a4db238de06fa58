import jiwer
import numpy as np
import pytest
import torch

from tasks.metrics import (accuracy, char_error_rate, ctc_greedy, eer_and_mindcf, error_rate, macro_accuracy)


def _edit_distance(a, b):
    d = np.arange(len(b) + 1)
    for i, x in enumerate(a, 1):
        prev, d[0] = d.copy(), i
        for j, y in enumerate(b, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (x != y))
    return int(d[-1])


def test_error_rates_match_jiwer_and_a_direct_edit_distance():
    refs = ["the cat sat on the mat", "a b c", "hello world"]
    hyps = ["the cat sit on mat", "a b c d", ""]
    assert error_rate(refs, hyps) == pytest.approx(100 * jiwer.wer(refs, hyps))
    direct = sum(_edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps)) / sum(len(r.split()) for r in refs)
    assert error_rate(refs, hyps) == pytest.approx(100 * direct)
    assert char_error_rate(refs, hyps) == pytest.approx(100 * jiwer.cer(refs, hyps))
    assert error_rate(["a b"], ["a b"]) == 0.0


def test_accuracies():
    assert accuracy(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == 75.0
    # macro: class a 50 %, class b 100 %, class c 0 %
    assert macro_accuracy(["a", "a", "b", "c"], ["a", "b", "b", "a"]) == pytest.approx(50.0)
    # unbalanced classes: the majority class always right, the minority never -> macro 50, micro 75
    assert macro_accuracy(["a", "a", "a", "b"], ["a", "a", "a", "a"]) == pytest.approx(50.0)
    assert accuracy(["a", "a", "a", "b"], ["a", "a", "a", "a"]) == pytest.approx(75.0)


def test_eer_known_cases():
    perfect = eer_and_mindcf([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])
    assert perfect["eer"] == pytest.approx(0.0, abs=1e-6)
    inverted = eer_and_mindcf([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0])
    assert inverted["eer"] == pytest.approx(100.0, abs=1e-6)
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 4000), rng.normal(-1, 1, 4000)
    r = eer_and_mindcf(np.r_[pos, neg], [1] * 4000 + [0] * 4000)
    # two unit Gaussians at +-1: EER = Phi(-1) = 15.87 %
    assert r["eer"] == pytest.approx(15.87, abs=1.2)
    assert 0 < r["mindcf"] <= 1


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    seq = torch.tensor([[0, 1, 1, 0, 1, 2, 2, 0]])
    lp = torch.nn.functional.one_hot(seq, 3).float().log()
    assert ctc_greedy(lp, torch.tensor([8])) == [[1, 1, 2]]
    assert ctc_greedy(lp, torch.tensor([3])) == [[1]]
