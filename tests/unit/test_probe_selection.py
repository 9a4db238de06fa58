"""Which checkpoint and which lr a number comes from (issue 36).

The probe must report its dev-best evaluation and score those weights on test; the board must
pick each (upstream, task)'s lr on the dev mean over seeds, from the newest config. A bug in
either changes every number on every board without failing a learning threshold, so the tests
here pin the choice itself: a probe whose dev metric peaks early (90, 95, 80) reports the peak's
step and that step's weights' test metric; error rates are minimised, ties go to the later step,
NaN ranks last; the board ignores test when dev exists and an lr with a diverged seed.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from harness import leaderboard
from harness import probe as probe_mod
from harness.evaluate import evaluate
from harness.probe import dev_rank
from harness.request import EvalRequest
from tests.conftest import make_tone_corpus
from tests.unit.test_leaderboard import write_run

# -- dev_rank: the order of dev evaluations --------------------------------------------------------


def _task(primary: str, hib: bool, secondary=None, secondary_hib=None):
    directions = {primary: hib, secondary: secondary_hib}
    return SimpleNamespace(primary_metric=primary, higher_is_better=hib, secondary_metric=secondary,
                           metric=lambda name: SimpleNamespace(name=name, higher_is_better=directions[name]))


def _best_step(task, devs):
    """The step train_probe keeps for dev evaluations at steps 1, 2, ...: the first strict
    improvement of dev_rank wins, as in its loop."""
    best_key, best = None, None
    for step, dev in enumerate(devs, 1):
        key = dev_rank(task, dev, step)
        if best_key is None or key > best_key:
            best_key, best = key, step
    return best


@pytest.mark.parametrize("primary, hib, values, expected", [
    ("acc", True, [90.0, 95.0, 80.0], 2),   # peaks early: the peak, not the last
    ("per", False, [30.0, 20.0, 25.0], 2),  # an error rate: the lowest
    ("per", False, [20.0, 30.0, 40.0], 1),
    ("acc", True, [90.0, 90.0, 80.0], 2),   # a tie: the later step (a stuck probe keeps its last weights)
    ("acc", True, [90.0, math.nan, 80.0], 1),  # NaN ranks below every number
    ("per", False, [math.nan, 40.0, 50.0], 2),
])
def test_dev_rank_orders_evaluations(primary, hib, values, expected):
    assert _best_step(_task(primary, hib), [{primary: v} for v in values]) == expected


def test_dev_rank_breaks_ties_on_the_secondary_metric_in_its_own_direction():
    lid = _task("acc", True, "macro_acc", True)
    devs = [{"acc": 80.0, "macro_acc": 70.0}, {"acc": 80.0, "macro_acc": 75.0}, {"acc": 80.0, "macro_acc": 60.0}]
    assert _best_step(lid, devs) == 2
    asv = _task("eer", False, "mindcf", False)  # both lower-is-better
    devs = [{"eer": 10.0, "mindcf": 0.5}, {"eer": 10.0, "mindcf": 0.4}, {"eer": 10.0, "mindcf": 0.9}]
    assert _best_step(asv, devs) == 2


# -- train_probe: the dev-best weights are the ones scored on test -------------------------------


def _params(featurizer, head) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in [*featurizer.parameters(), *head.parameters()]])


def test_probe_reports_the_dev_peak_and_scores_its_weights_on_test(tmp_path, monkeypatch):
    """Dev evaluations at steps 20, 40, 60 are made to read 90, 95, 80 (monkeypatched), so the
    peak is at step 40. The test metric is made to name the evaluation whose weights it sees
    (1000 + its index): the result must say step 40, dev 95 and test 1001."""
    real = probe_mod.evaluate_split
    snapshots, dev_values = [], [90.0, 95.0, 80.0]

    def fake(task, featurizer, head, source, refs, info, split, frame_rate, layer_norms=None):
        metrics, preds = real(task, featurizer, head, source, refs, info, split, frame_rate, layer_norms)
        if split == "dev" and layer_norms is None:  # an evaluation in the training loop
            snapshots.append(_params(featurizer, head))
            return {**metrics, "acc": dev_values[len(snapshots) - 1]}, preds
        if split == "test":
            now = _params(featurizer, head)
            seen = [k for k, s in enumerate(snapshots) if torch.equal(s, now)]
            return {**metrics, "acc": 1000.0 + (seen[0] if seen else -1)}, preds
        return metrics, preds

    monkeypatch.setattr(probe_mod, "evaluate_split", fake)
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=6)
    r = evaluate(EvalRequest("fbank_no_cmvn", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[3e-3],
                             overrides={"steps": 60, "eval_every": 20, "batch_seconds": 8.0}), log=lambda *_: None)[0]
    assert len(snapshots) == 3 and not torch.equal(snapshots[1], snapshots[2])  # the weights moved
    assert [h["step"] for h in r["history"]] == [20, 40, 60]
    assert [h["dev_acc"] for h in r["history"]] == dev_values
    assert r["best_step"] == 40
    assert r["metrics"]["dev"]["acc"] == 95.0
    assert r["metrics"]["test"]["acc"] == 1001.0  # the step-40 weights, not the last ones


# -- the board: lr on the dev mean of the newest config ---------------------------------------------


def _board(root):
    return leaderboard.select_best(leaderboard.collect(root)).set_index(["upstream", "task"])


def test_board_picks_the_lr_on_dev_in_the_metric_direction_never_on_test(tmp_path):
    root = tmp_path / "runs"
    # asr (WER, lower is better): dev prefers 1e-3 (12 < 20) while test prefers 1e-4 (9 < 30)
    for seed, (d3, t3, d4, t4) in enumerate([(11.0, 29.0, 19.0, 8.0), (13.0, 31.0, 21.0, 10.0)], 1):
        write_run(root, "synth", "synth", "fbank", "asr", 1e-3, seed, d3, t3, 1)
        write_run(root, "synth", "synth", "fbank", "asr", 1e-4, seed, d4, t4, 1)
    # ks (accuracy): dev prefers 1e-4 (80 > 60), test prefers 1e-3 (90 > 50)
    for seed, (d3, t3, d4, t4) in enumerate([(59.0, 89.0, 79.0, 49.0), (61.0, 91.0, 81.0, 51.0)], 1):
        write_run(root, "synth", "synth", "fbank", "ks", 1e-3, seed, d3, t3, 1)
        write_run(root, "synth", "synth", "fbank", "ks", 1e-4, seed, d4, t4, 1)
    b = _board(root)
    asr, ks = b.loc[("fbank", "asr")], b.loc[("fbank", "ks")]
    assert asr["lr"] == 1e-3 and asr["selected_on"] == "dev" and asr["test.wer.mean"] == pytest.approx(30.0)
    assert ks["lr"] == 1e-4 and ks["selected_on"] == "dev" and ks["test.acc.mean"] == pytest.approx(50.0)


def test_board_sets_aside_an_lr_whose_seed_diverged(tmp_path):
    root = tmp_path / "runs"
    # lr 1e-3: seed 1 has the best dev of all, seed 2 diverged (NaN): its mean is unknown
    write_run(root, "synth", "synth", "fbank", "asr", 1e-3, 1, 5.0, 6.0, 1)
    write_run(root, "synth", "synth", "fbank", "asr", 1e-3, 2, math.nan, math.nan, 1)
    write_run(root, "synth", "synth", "fbank", "asr", 1e-4, 1, 20.0, 21.0, 1)
    write_run(root, "synth", "synth", "fbank", "asr", 1e-4, 2, 22.0, 23.0, 1)
    r = _board(root).loc[("fbank", "asr")]
    assert r["lr"] == 1e-4 and r["test.wer.mean"] == pytest.approx(22.0)
    assert math.isnan(r["lr_scores"][1e-3]) and r["lr_scores"][1e-4] == pytest.approx(21.0)


def test_board_shows_the_newest_config_only(tmp_path):
    root = tmp_path / "runs"
    # an older config (finished first) with a better dev: set aside, never pooled or preferred
    write_run(root, "synth", "synth", "fbank", "asr", 1e-3, 1, 5.0, 6.0, 1, config_hash="old",
              finished_at="2025-01-01T00:00:00+00:00")
    write_run(root, "synth", "synth", "fbank", "asr", 1e-3, 2, 30.0, 31.0, 1, config_hash="new",
              finished_at="2025-02-01T00:00:00+00:00")
    r = _board(root).loc[("fbank", "asr")]
    assert r["n_seeds"] == 1 and r["seeds"] == [2] and r["test.wer.mean"] == pytest.approx(31.0)
    assert r["set_aside"] == {"old": 1}
