"""The board as an instrument: the absolute score (hand-computed), ranks with ties, and versions
that are never pooled (issue 28 items 5-7)."""

import math

import pytest

from harness import leaderboard
from harness.board import absolute
from harness.board.ranks import fmt_rank, rank_ranges
from harness.board.versions import split_by_version
from tasks.base import Metric, accuracy_metric, error_rate_metric
from tests.unit.test_leaderboard import write_run


def row(up, task, pm, hib, mean, ci, spec, trivial=None, oracle=math.nan, n=3):
    return {"upstream": up, "task": task, "primary_metric": pm, "higher_is_better": hib,
            f"test.{pm}.mean": mean, f"test.{pm}.ci": ci, "n_seeds": n, "metric_specs": [spec.to_dict()],
            "trivial": {"test": {pm: trivial}} if trivial is not None else None, "oracle": oracle}


def board(up, per=(40.0, 2.0), ks=(50.0, 5.0), ss=(3.0, 0.5), eer=(10.0, 1.0)):
    return [
        row(up, "pr", "per", False, *per, error_rate_metric("per"), trivial=100.0),  # empty output: PER 100
        row(up, "ks", "acc", True, *ks, accuracy_metric("acc"), trivial=100 / 12),
        row(up, "sid", "acc", True, 60.0, 4.0, accuracy_metric("acc"), trivial=2.5),
        row(up, "asr", "wer", False, 80.0, 3.0, error_rate_metric("wer"), trivial=100.0),
        row(up, "asv", "eer", False, *eer, Metric("eer", False, perfect=0.0, trivial=50.0)),
        row(up, "sd", "der", False, 30.0, 2.0, error_rate_metric("der"), trivial=95.0),
        row(up, "ss", "si_sdri", True, *ss, Metric("si_sdri", True, "dB"), trivial=0.0, oracle=12.0),
    ]


def test_absolute_score_by_hand():
    s = absolute.absolute_scores(board("a"))["a"]
    pts = {"pr": 600.0, "ks": 1000 * (50 - 100 / 12) / (100 - 100 / 12), "sid": 1000 * 57.5 / 97.5,
           "asr": 200.0, "asv": 800.0, "sd": 1000 * 65 / 95, "ss": 250.0}
    for t, p in pts.items():
        assert s.points[t][0] == pytest.approx(p)
    assert s.points["pr"][1] == pytest.approx(20.0) and s.points["ss"][1] == pytest.approx(1000 * 0.5 / 12)
    assert s.value == pytest.approx(sum(pts.values()) / 7)
    halves = [20.0, 5 * 1000 / (100 - 100 / 12), 4 * 1000 / 97.5, 30.0, 20.0, 2 * 1000 / 95, 500 / 12]
    assert s.ci == pytest.approx(math.sqrt(sum(h * h for h in halves)) / 7)


def test_a_task_where_fbank_is_best_still_counts_and_adding_runs_moves_no_score():
    one = absolute.absolute_scores(board("fbank", ss=(2.5, 0.1)) + board("hubert", ss=(2.4, 0.3)))
    # SS: fbank is best on it, yet SS stays in both scores (v1 dropped the task or blew up its scale)
    assert set(one["fbank"].points) == set(one["hubert"].points) == set(absolute.SYNTH_SCORE_TASKS)
    assert one["fbank"].points["ss"][0] > one["hubert"].points["ss"][0] > 0
    two = absolute.absolute_scores(board("fbank", ss=(2.5, 0.1)) + board("hubert", ss=(2.4, 0.3))
                                   + board("best", per=(5.0, 1.0), ks=(99.0, 0.5), ss=(11.0, 0.2)))
    assert two["fbank"].value == one["fbank"].value and two["hubert"].value == one["hubert"].value


def test_a_missing_task_or_a_single_seed():
    rows = [r for r in board("a") if r["task"] != "sd"]
    assert math.isnan(absolute.absolute_scores(rows)["a"].value)
    assert absolute.absolute_scores(rows)["a"].missing == ["sd"]
    rows = board("a", eer=(10.0, math.nan))
    s = absolute.absolute_scores(rows)["a"]
    assert math.isfinite(s.value) and math.isnan(s.ci) and s.one_seed == ["asv"]
    assert "One seed (no interval) on: asv." in absolute.score_note(absolute.SYNTH_SCORE_TASKS, {"a": s})


def test_rank_ranges_and_format():
    got = rank_ranges({"a": (10.0, 1.0), "b": (11.5, 1.0), "c": (20.0, 1.0), "d": (math.nan, 1.0)}, True)
    assert got == {"c": (1, 1), "b": (2, 3), "a": (2, 3)}
    assert [fmt_rank(got["c"]), fmt_rank(got["a"])] == ["#1", "#2-3"]
    assert rank_ranges({"a": (10.0, 1.0), "b": (13.0, 1.0)}, False) == {"a": (1, 1), "b": (2, 2)}


def _specs(version):
    return [Metric("wer", False, perfect=0.0, version=version).to_dict()]


def test_runs_differing_only_in_task_version_never_share_a_row(tmp_path):
    root = tmp_path / "runs"
    for seed in (1, 2):
        write_run(root, "synth", "synth", "fbank", "asr", 1e-3, seed, 50.0, 50.0 + seed, 1,
                  task_version=2, metric_specs=_specs(1), corpus_version="synth-v2",
                  finished_at=f"2026-12-07T10:0{seed}:00+00:00")
    # the same config and seed, made by code whose task definition was version 1: never pooled
    write_run(root, "synth", "synth", "fbank", "asr", 1e-3, 3, 50.0, 90.0, 1,
              task_version=1, metric_specs=_specs(1), corpus_version="synth-v2")
    # another upstream with a v2 metric formula, and a run on the v1 corpus
    write_run(root, "synth", "synth", "mfcc", "asr", 1e-3, 1, 50.0, 70.0, 1, task_version=2,
              metric_specs=_specs(2), corpus_version="synth-v2", finished_at="2026-12-07T09:00:00+00:00")
    write_run(root, "synth", "synth", "mfcc", "ks", 1e-3, 1, 50.0, 70.0, 1, task_version=2,
              corpus_version="unversioned")
    kept, notes = split_by_version(leaderboard.scan(root).runs)
    assert sorted(kept["seed"]) == [1, 2] and set(kept["upstream"]) == {"fbank"}
    assert "synth: 1 run(s) of corpus version unversioned set aside (this board: synth-v2)." in notes
    assert any("1 run(s) of task v1 (wer:1) set aside" in n and "fbank" in n for n in notes)
    assert any("1 run(s) of task v2 (wer:2) set aside" in n and "mfcc" in n for n in notes)
    leaderboard.build(root, tmp_path / "lb")
    md = (tmp_path / "lb" / "synth.md").read_text()
    assert "51.50 ± 6.35" in md  # seeds 1 and 2 only: (51, 52), t(0.975, 1) s / sqrt(2) = 6.353
    assert "of task v1 (wer:1) set aside" in md and "task versions: asr v2" in md


def test_every_task_declares_its_metrics_and_version():
    import tasks  # noqa: F401  (registers every task)
    from harness.registry import TASKS

    for name in TASKS.names():
        t = TASKS.get(name)()
        assert t.version >= 2, name
        m = t.metric(t.primary_metric)
        assert m.higher_is_better == t.higher_is_better, name
        if t.secondary_metric:
            t.metric(t.secondary_metric)
        assert t.identity()["metric_specs"][0]["name"] == t.primary_metric, name


def test_mlsuperb_absolute_score_by_hand():
    def r(task, pm, values, trivials):
        specs = [(error_rate_metric(m) if m.startswith("cer") else accuracy_metric(m)).to_dict() for m in values]
        out = {"upstream": "u", "task": task, "primary_metric": pm, "metric_specs": specs,
               "trivial": {"test": trivials}}
        out.update({f"test.{m}.mean": v for m, v in values.items()})
        return out

    rows = [r("mono_asr_10min", "cer", {"cer": 20.0}, {"cer": 100.0}),
            r("ml_asr_10min", "cer_normal", {"cer_normal": 30.0, "cer_fewshot": 60.0},
              {"cer_normal": 100.0, "cer_fewshot": 100.0}),
            r("lid_ctc_10min", "acc", {"acc": 60.0}, {"acc": 25.0}),
            r("asr_lid_10min", "lid_acc", {"lid_acc": 90.0, "cer_normal": 30.0, "cer_fewshot": 70.0},
              {"lid_acc": 25.0, "cer_normal": 100.0, "cer_fewshot": 100.0})]
    s = absolute.mlsuperb_absolute(rows, "10min")
    assert s.task_scores["mono"]["u"] == pytest.approx(800.0)
    assert s.task_scores["multi"]["u"] == pytest.approx(550.0)
    assert s.task_scores["lid"]["u"] == pytest.approx(1000 * 35 / 75)
    assert s.task_scores["asr_lid"]["u"] == pytest.approx((1000 * 65 / 75 + 700 + 300) / 3)
    assert s["u"] == pytest.approx((800 + 550 + 1000 * 35 / 75 + (1000 * 65 / 75 + 1000) / 3) / 4)
    assert math.isnan(absolute.mlsuperb_absolute(rows[:3], "10min")["u"])  # no asr_lid: no score
