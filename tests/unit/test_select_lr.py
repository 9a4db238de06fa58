"""The one best-lr rule (harness.board.select.select_lr), read by the board, the sweep's summary
line and harness compare: the split, the mean per lr, NaN seeds and ties, with values."""

from __future__ import annotations

import math

import pytest

from harness.board.select import seed_mean, select_lr
from harness.errors import HarnessError
from harness.request import EvalRequest
from harness.sweep import run_job


def test_best_mean_in_the_metric_direction_on_dev():
    runs = [(1e-3, 10.0, 30.0), (1e-3, 12.0, 32.0), (1e-4, 20.0, 5.0), (1e-4, 22.0, 7.0)]
    low = select_lr(runs, higher_is_better=False)
    assert (low.lr, low.split) == (1e-3, "dev")
    assert low.means == {1e-4: 21.0, 1e-3: 11.0} and list(low.means) == [1e-4, 1e-3]  # by increasing lr
    assert select_lr(runs, higher_is_better=True).lr == 1e-4


def test_a_tie_goes_to_the_smaller_lr_whatever_the_order():
    runs = [(1e-2, 50.0, 1.0), (1e-3, 50.0, 2.0), (1e-4, 40.0, 3.0)]
    for order in (runs, runs[::-1]):
        assert select_lr(order, higher_is_better=True).lr == 1e-3
        assert select_lr(order, higher_is_better=False).lr == 1e-4
    # equal means of two seeds each: still the smaller lr
    assert select_lr([(3e-3, 1.0, 0.0), (3e-3, 3.0, 0.0), (1e-3, 2.0, 0.0), (1e-3, 2.0, 0.0)], True).lr == 1e-3


def test_an_lr_with_a_seed_without_a_value_is_never_chosen():
    # lr 1e-3's surviving seed is the best dev of all; its other seed diverged (NaN / None)
    for missing in (math.nan, None):
        c = select_lr([(1e-3, 99.0, 99.0), (1e-3, missing, missing), (1e-4, 60.0, 61.0), (1e-4, 62.0, 63.0)], True)
        assert c.lr == 1e-4 and c.split == "dev"
        assert math.isnan(c.means[1e-3]) and c.means[1e-4] == 61.0


def test_no_dev_value_chooses_on_test_and_no_value_at_all_the_smallest_lr():
    c = select_lr([(1e-3, None, 30.0), (1e-4, math.nan, 20.0)], higher_is_better=False)
    assert (c.lr, c.split, c.means) == (1e-4, "test", {1e-4: 20.0, 1e-3: 30.0})
    # one dev value anywhere: dev is the split, and the lrs without one are set aside
    c = select_lr([(1e-3, None, 1.0), (1e-4, 50.0, 90.0)], higher_is_better=False)
    assert (c.lr, c.split) == (1e-4, "dev") and math.isnan(c.means[1e-3])
    c = select_lr([(1e-2, math.nan, math.nan), (1e-3, math.nan, None)], higher_is_better=True)
    assert c.lr == 1e-3 and c.split == "test" and all(math.isnan(v) for v in c.means.values())
    with pytest.raises(HarnessError, match="no runs"):
        select_lr([], True)


def test_seed_mean():
    assert seed_mean([1.0, 2.0, 6.0]) == 3.0
    assert math.isnan(seed_mean([1.0, None])) and math.isnan(seed_mean([math.nan, 2.0]))


def test_the_sweep_summary_line_follows_the_rule(monkeypatch, tmp_path):
    """A tie on dev: the sweep's line names the smaller lr (it used to name the first one run) and
    the test mean over that lr's seeds; without dev values it says the lr was chosen on test."""
    import harness.evaluate

    def fake(results):
        def evaluate(*_, **__):
            return [{"primary_metric": "wer", "higher_is_better": False, "lr": lr,
                     "metrics": {"dev": {"wer": d} if d is not None else {}, "test": {"wer": t}}}
                    for lr, d, t in results]
        return evaluate

    job = EvalRequest("fbank", "asr", "synth", tmp_path, tmp_path)
    monkeypatch.setattr(harness.evaluate, "evaluate", fake([(1e-2, 10.0, 40.0), (1e-3, 10.0, 20.0),
                                                             (1e-3, 10.0, 22.0), (1e-4, math.nan, 1.0)]))
    line = run_job(job)
    assert "test wer 21.00 (lr 0.001, mean of 2 seeds)" in line
    monkeypatch.setattr(harness.evaluate, "evaluate", fake([(1e-2, None, 40.0), (1e-3, None, 20.0)]))
    assert "test wer 20.00 (lr 0.001, chosen on test: no dev values, 1 seed)" in run_job(job)
