"""Ablation tables on hand-made best-run rows, and the ablation list against the recipes."""

import pandas as pd
import pytest

from harness.ablation import ABLATIONS, Ablation, ablation_tables, board_runs, board_upstream, get_ablation
from harness.errors import HarnessError
from harness.pretrain.recipe_files import available_recipes
from harness.registry import TASKS, load_all


def _row(task, pm, hib, up, mean, ci, n=3, train_s=10.0):
    return {"task": task, "primary_metric": pm, "higher_is_better": hib, "upstream": up, "n_seeds": n,
            f"test.{pm}.mean": mean, f"test.{pm}.ci": ci, "train_s": train_s}


def test_every_ablation_names_known_recipes_and_tasks():
    load_all()
    for ab in ABLATIONS.values():
        assert set(ab.recipes) <= set(available_recipes()), ab.name
        assert all(t in TASKS for t in ab.tasks), ab.name
        assert len(ab.recipes) >= 2 and ab.seeds >= 3
        assert all(t in ab.tasks for t, _ in ab.extra), ab.name
        for t, m in ab.extra:
            assert m in {s.name for s in TASKS.get(t).metrics}, (ab.name, t, m)
    with pytest.raises(HarnessError, match="unknown ablation 'nope'"):
        get_ablation("nope")


def test_ablation_table_marks_differences_beyond_the_intervals():
    ab = Ablation("t", "Test ablation", "Q?", ("hubert_tiny", "wavlm_tiny"), ("pr", "ks"))
    ref, other = "hubert_tiny-it2", "wavlm_tiny-it1"
    assert board_upstream("hubert_tiny", ["hubert_tiny-it1", ref, "hubert_tiny_x-it3"]) == ref
    rows = [_row("pr", "per", False, "hubert_tiny-it1", 60.0, 1.0),  # an earlier iteration: not the variant
            _row("pr", "per", False, ref, 40.0, 1.0), _row("pr", "per", False, other, 30.0, 1.0),  # better apart
            _row("ks", "acc", True, ref, 50.0, 5.0), _row("ks", "acc", True, other, 52.0, 5.0),  # within
            _row("ks", "acc", True, "fbank", 90.0, 1.0)]  # not part of the ablation
    (block,) = ablation_tables(pd.DataFrame(rows), [ab])
    lines = [x for x in block.splitlines() if x.startswith("| ")]
    assert lines[0].startswith("| variant (recipe) | upstream | pr per ↓ | ks acc ↑ |")
    assert lines[1].startswith("| hubert_tiny (reference) |") and "▲" not in lines[1] and "≈" not in lines[1]
    assert "30.00 ± 1.00 (3) ▲" in lines[2] and "52.00 ± 5.00 (3) ≈" in lines[2]
    assert "| 20.00 |" in lines[2]  # probe time summed over the two tasks
    assert "fbank" not in block
    # one variant alone is no ablation
    assert ablation_tables(pd.DataFrame(rows[:2]), [ab]) == []
    assert "60.00" not in block


def test_pool_runs_hand_computed():
    """Two levels: the mean of the runs' probe-seed means, a 95% t-interval over the runs (t
    quantiles from a printed table: t_0.975,1 = 12.7062, t_0.975,2 = 4.3027), the mean probe-seed
    half-width beside it."""
    import math

    from harness.board.pooling import apart, pool_runs

    # runs 30 and 32: mean 31, sd sqrt(2), se sqrt(2)/sqrt(2) = 1 -> 12.7062 * 1
    p = pool_runs([30.0, 32.0], [1.0, 3.0], [3, 3])
    assert (p.mean, p.runs, p.probe_seeds, p.probe_ci) == (31.0, 2, (3, 3), 2.0)
    assert p.ci == pytest.approx(12.7062, abs=1e-4) and p.over_pretraining
    # runs 1, 2, 3: mean 2, sd 1, se 1/sqrt(3) -> 4.3027 / 1.7321 = 2.4841
    q = pool_runs([1.0, 2.0, 3.0], [0.5, math.nan, 1.5], [3, 1, 3])
    assert q.mean == 2.0 and q.ci == pytest.approx(2.4841, abs=1e-4) and q.probe_ci == 1.0  # NaN left out
    # one run: its probe-seed interval, as boards before pre-training seeds
    one = pool_runs([30.0], [1.5], [3])
    assert (one.mean, one.ci, one.probe_ci, one.runs, one.over_pretraining) == (30.0, 1.5, 1.5, 1, False)
    # a diverged run (NaN mean) is left out
    assert pool_runs([30.0, math.nan], [1.5, 2.0], [3, 3]) == one
    # apart: the intervals do not overlap; no interval -> nothing can be said
    assert apart(p, pool_runs([50.0], [5.0], [3])) is True  # 31 + 12.71 < 50 - 5
    assert apart(p, pool_runs([40.0], [5.0], [3])) is False
    assert apart(p, pool_runs([40.0], [math.nan], [1])) is None
    with pytest.raises(ValueError, match="one of each per pre-training run"):
        pool_runs([1.0, 2.0], [1.0], [3, 3])


def test_board_runs_groups_pretraining_seeds_of_the_latest_iteration():
    ups = ["hubert_tiny-it1", "hubert_tiny-it2", "hubert_tiny-s1-it2", "hubert_tiny-s2-it1",  # s2 stopped at it1
           "hubert_tiny_x-s1-it3", "hubert_tiny-s1-it2-step000100", "fbank"]
    assert board_runs("hubert_tiny", ups) == {0: "hubert_tiny-it2", 1: "hubert_tiny-s1-it2"}
    assert board_runs("hubert_tiny_x", ups) == {1: "hubert_tiny_x-s1-it3"}
    assert board_runs("wavlm_tiny", ups) == {}


def test_ablation_table_pools_pretraining_seeds_and_marks_only_beyond_their_interval():
    ab = Ablation("t", "Test ablation", "Q?", ("hubert_tiny", "wavlm_tiny"), ("pr", "ks"))
    ref = ["hubert_tiny-it2", "hubert_tiny-s1-it2", "hubert_tiny-s2-it2"]
    oth = ["wavlm_tiny-it2", "wavlm_tiny-s1-it2", "wavlm_tiny-s2-it2"]
    rows = [_row("pr", "per", False, ref[0], 40.0, 1.0), _row("pr", "per", False, ref[1], 42.0, 1.0),
            # each run's probe interval (±1) says "apart", the runs' spread does not: 21 ± 12.71 vs 41 ± 12.71
            _row("pr", "per", False, oth[0], 20.0, 1.0, train_s=4.0), _row("pr", "per", False, oth[1], 22.0, 1.0, train_s=6.0),
            _row("pr", "per", False, "wavlm_tiny-s3-it1", 90.0, 1.0),  # an earlier iteration: not pooled
            # 11 ± 2.48 vs 21 ± 2.48 over three runs: apart
            *[_row("ks", "acc", True, u, m, 2.0, train_s=10.0) for u, m in zip(ref, (10.0, 11.0, 12.0))],
            *[_row("ks", "acc", True, u, m, 4.0, n=2, train_s=10.0) for u, m in zip(oth, (20.0, 21.0, 22.0))]]
    (block,) = ablation_tables(pd.DataFrame(rows), [ab])
    lines = [x for x in block.splitlines() if x.startswith("| ")]
    assert lines[0].startswith("| variant (recipe) | upstream | pr per ↓ | ks acc ↑ |")
    assert lines[1] == ("| hubert_tiny (reference) | hubert_tiny-it2 (pre-training seeds 0, 1, 2) | "
                        "41.00 ± 12.71 (2×3) [probe ± 1.00] | 11.00 ± 2.48 (3×3) [probe ± 2.00] | 20.00 |")
    assert lines[2] == ("| wavlm_tiny | wavlm_tiny-it2 (pre-training seeds 0, 1, 2) | "
                        "21.00 ± 12.71 (2×3) [probe ± 1.00] ≈ | 21.00 ± 2.48 (3×2) [probe ± 4.00] ▲ | 15.00 |")
    assert "`harness ablate t --pretrain-seeds 3`" in block and "t-interval over the runs" in block
    assert "90.00" not in block


def test_ablation_table_adds_the_extra_metric_columns_pooled_and_marked():
    """mHuBERT-147's few-shot CER: a column after the primary ones, pooled over pre-training runs
    like them, marked against the reference with the metric's own direction; the probe time
    counts each task once; a board whose rows lack the metric's spec gets no such column."""
    ab = ABLATIONS["mhubert147"]
    specs = [{"name": "cer_normal", "higher_is_better": False}, {"name": "cer_fewshot", "higher_is_better": False}]

    def row(up, normal, few, train_s):
        r = _row("ml_asr_10min", "cer_normal", False, up, normal, 1.0, train_s=train_s)
        return {**r, "test.cer_fewshot.mean": few, "test.cer_fewshot.ci": 1.0, "metric_specs": specs}

    rows = [row("mhubert147_tiny-it3", 60.0, 80.0, 10.0), row("mhubert147_tiny-s1-it3", 61.0, 81.0, 10.0),
            row("mhubert147_tiny_noupsample-it3", 60.5, 50.0, 20.0),
            row("mhubert147_tiny_noupsample-s1-it3", 61.5, 51.0, 20.0)]
    (block,) = ablation_tables(pd.DataFrame(rows), [ab])
    lines = [x for x in block.splitlines() if x.startswith("| ")]
    assert lines[0] == ("| variant (recipe) | upstream | ml_asr_10min cer_normal ↓ | ml_asr_10min cer_fewshot ↓ | "
                        "probe train s (sum of task means) |")
    # few-shot: 50.5 ± 6.35 against 80.5 ± 6.35 over two runs each: apart, and lower is better
    assert lines[1].endswith("| 80.50 ± 6.35 (2×3) [probe ± 1.00] | 10.00 |")
    assert lines[2].endswith("| 61.00 ± 6.35 (2×3) [probe ± 1.00] ≈ | 50.50 ± 6.35 (2×3) [probe ± 1.00] ▲ | 20.00 |")
    bare = [{k: v for k, v in r.items() if k != "metric_specs"} for r in rows]
    (old_board,) = ablation_tables(pd.DataFrame(bare), [ab])
    assert "cer_fewshot" not in old_board


def test_language_group_table_pools_each_class_over_pretraining_runs():
    """mHuBERT-147's per-language-group table: per run the mean CER of a class's languages, then
    pooled over pre-training runs (12.7062 = t_0.975,1 for two runs 1 apart); marked against the
    reference; absent when the results do not record the classes."""
    ab = ABLATIONS["mhubert147"]
    classes = {"en": "high", "de": "high", "it": "low", "sv": "fewshot"}

    def row(up, cer):
        r = _row("ml_asr_10min", "cer_normal", False, up, 60.0, 1.0)
        return {**r, "language_classes": classes, "per_language_cer": cer}

    rows = [row("mhubert147_tiny-it3", {"en": 50.0, "de": 60.0, "it": 70.0, "sv": 90.0}),
            row("mhubert147_tiny-s1-it3", {"en": 52.0, "de": 60.0, "it": 71.0, "sv": 91.0}),
            row("mhubert147_tiny_noupsample-it3", {"en": 50.0, "de": 60.0, "it": 70.5, "sv": 40.0}),
            row("mhubert147_tiny_noupsample-s1-it3", {"en": 52.0, "de": 60.0, "it": 71.5, "sv": 41.0})]
    (block,) = ablation_tables(pd.DataFrame(rows), [ab])
    table = block.split("Per language group (ml_asr_10min test CER, %)")[1]
    lines = [x for x in table.splitlines() if x.startswith("| ")]
    assert lines[0] == "| variant (recipe) | high (de, en) CER ↓ | low (it) CER ↓ | fewshot (sv) CER ↓ |"
    # high: runs 55 and 56 -> 55.5 ± 12.71 * 0.5 = 6.35
    assert lines[1] == "| mhubert147_tiny (reference) | 55.50 ± 6.35 (2 runs) | 70.50 ± 6.35 (2 runs) | 90.50 ± 6.35 (2 runs) |"
    assert lines[2] == ("| mhubert147_tiny_noupsample | 55.50 ± 6.35 (2 runs) ≈ | 71.00 ± 6.35 (2 runs) ≈ | "
                        "40.50 ± 6.35 (2 runs) ▲ |")
    bare = [{k: v for k, v in r.items() if k != "language_classes"} for r in rows]
    (old_board,) = ablation_tables(pd.DataFrame(bare), [ab])
    assert "Per language group" not in old_board


def test_ablation_table_of_one_run_per_variant_keeps_the_board_text():
    """Boards made before pre-training seeds re-render unchanged (the committed synth board's
    MS-HuBERT rows, leaderboards/synth.md)."""
    ab = ABLATIONS["mshubert"]
    rows = [_row("pr", "per", False, "mshubert_tiny-it2", 61.39, 4.56, train_s=27.14),
            _row("pr", "per", False, "mshubert_tiny_noswap-it2", 60.44, 1.49, train_s=27.55)]
    (block,) = ablation_tables(pd.DataFrame(rows), [ab])
    assert block.splitlines()[2] == (
        "Does the swap help, and do several label sets beat one (equal updates)? Recipes trained at equal "
        "updates; each cell: test mean ± 95% CI (probe seeds); ▲ / ▼ better / worse than the reference beyond "
        "both intervals, ≈ within them. `harness ablate mshubert`.")
    assert block.splitlines()[-1] == "| mshubert_tiny_noswap | mshubert_tiny_noswap-it2 | 60.44 ± 1.49 (3) ≈ | 27.55 |"


def test_run_ablation_trains_and_probes_every_pretraining_seed(tmp_path, monkeypatch):
    """--pretrain-seeds 2 on MS-HuBERT (its variants share the reference's iteration 1): the
    reference's two seeds train first, then the variants' (each seed may reuse its own seed's
    iteration 1), and every run's last export is probed on every task with the probe seeds."""
    from harness import sweep
    from harness.ablation import run_ablation
    from harness.pretrain import run_folder

    calls = []
    monkeypatch.setattr(run_folder, "reuse_iterations",
                        lambda r, corpus, out, others, log, pretrain_seed: calls.append(("reuse", r, out.name, pretrain_seed)))

    def pretrainings(recipes, corpus, runs, workers, log, seeds):
        calls.append(("train", tuple(recipes), tuple(seeds)))
        return [runs / "pretrain" / (r if s == 0 else f"{r}-s{s}") for r in recipes for s in seeds]

    jobs = []
    monkeypatch.setattr(sweep, "run_pretrainings", pretrainings)
    monkeypatch.setattr(sweep, "run_jobs", lambda js, workers, log: jobs.extend(js) or 0)
    ab = get_ablation("mshubert")
    assert run_ablation(ab, "c", tmp_path, tmp_path / "cache", pretrain_seeds=2) == 0
    assert calls == [("reuse", "mshubert_tiny", "mshubert_tiny", 0), ("reuse", "mshubert_tiny", "mshubert_tiny-s1", 1),
                     ("train", ("mshubert_tiny",), (0, 1)),
                     ("reuse", "mshubert_tiny_noswap", "mshubert_tiny_noswap", 0),
                     ("reuse", "mshubert_tiny_noswap", "mshubert_tiny_noswap-s1", 1),
                     ("reuse", "mshubert_tiny_single", "mshubert_tiny_single", 0),
                     ("reuse", "mshubert_tiny_single", "mshubert_tiny_single-s1", 1),
                     ("train", ("mshubert_tiny_noswap", "mshubert_tiny_single"), (0, 1))]
    got = {(j.upstream, j.task, j.seeds) for j in jobs}
    assert len(jobs) == len(got) == 3 * 2 * 3
    p = tmp_path / "pretrain"
    assert (str(p / "mshubert_tiny_single-s1" / "iter2" / "upstream"), "lid", ab.seeds) in got
    assert (str(p / "mshubert_tiny" / "iter2" / "upstream"), "pr", ab.seeds) in got


def test_the_cli_lists_every_ablation():
    """`harness ablate --help` names each ablation (the help string is written out so the CLI
    imports no torch)."""
    from harness import cli_pretrain

    import inspect

    default = inspect.signature(cli_pretrain.ablate).parameters["name"].default
    assert default.help.split(" | ") == list(ABLATIONS)
