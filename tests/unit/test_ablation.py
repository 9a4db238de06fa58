"""Ablation tables on hand-made best-run rows, and the ablation list against the recipes."""

import pandas as pd
import pytest

from harness.ablation import ABLATIONS, Ablation, ablation_tables, board_upstream, get_ablation
from harness.errors import HarnessError
from harness.pretrain.recipe import available_recipes
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
