"""Recipes that inherit (`base:`): every packaged recipe resolves to what it resolved to before
the recipes were rewritten to inherit (tests/unit/data/recipe_hashes.json, written by
scripts/recipe_hashes.py on the tree before the rewrite), the merge rules, and the one-line
errors of a cycle and an unknown base."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.pretrain.recipe import (available_recipes, deep_merge, load_recipe, read_recipe, recipe_hash,
                                     recipe_to_dict)

HASHES = json.loads((Path(__file__).parent / "data" / "recipe_hashes.json").read_text())
RECIPES = Path(__file__).resolve().parents[2] / "harness" / "recipes"


def test_the_table_covers_every_packaged_recipe():
    assert sorted(HASHES) == sorted(available_recipes())


@pytest.mark.parametrize("name", sorted(HASHES))
def test_each_recipe_resolves_as_before(name):
    rec = load_recipe(name)
    # the hash computed here independently of recipe_hash, and recipe_hash itself
    own = hashlib.sha256(json.dumps(recipe_to_dict(rec), sort_keys=True).encode()).hexdigest()
    assert own == HASHES[name]
    assert recipe_hash(rec) == HASHES[name]
    assert rec.name == name


def test_recipes_inherit_where_it_shortens_them():
    """The rewrite happened: the tiny variants name a base and are short."""
    for name in ("mshubert_tiny", "mshubert_tiny_noswap", "wavlm_tiny", "cvhubert_tiny_40ms", "hubert_ci",
                 "mhubert147_tiny_noupsample", "cvhubert_base", "wavlm_base"):
        data = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
        assert "base" in data, name
    noswap = yaml.safe_load((RECIPES / "mshubert_tiny_noswap.yaml").read_text())
    assert set(noswap) == {"base", "name", "iterations"}


def test_a_changed_value_changes_the_hash(tmp_path):
    """The table can fail: one differing value moves the hash."""
    p = tmp_path / "x.yaml"
    p.write_text("base: mshubert_tiny_noswap\nname: mshubert_tiny_noswap\ntrain: {steps: 1201}\n")
    assert recipe_hash(load_recipe(p)) != HASHES["mshubert_tiny_noswap"]
    p.write_text("base: mshubert_tiny_noswap\nname: mshubert_tiny_noswap\n")
    assert recipe_hash(load_recipe(p)) == HASHES["mshubert_tiny_noswap"]


def test_deep_merge_tables_merge_lists_replace():
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "l": [1, 2, 3], "s": 1}
    over = {"a": {"y": {"q": 5}, "z": 3}, "l": [9], "s": 2}
    assert deep_merge(base, over) == {"a": {"x": 1, "y": {"p": 1, "q": 5}, "z": 3}, "l": [9], "s": 2}
    assert base == {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "l": [1, 2, 3], "s": 1}  # not mutated


def test_a_file_inherits_from_a_packaged_recipe_and_from_a_file(tmp_path):
    (tmp_path / "mid.yaml").write_text("base: hubert_tiny\ntrain: {steps: 7}\ncluster: {k: 40}\n")
    (tmp_path / "leaf.yaml").write_text("base: mid.yaml\ntrain: {lr: 2.0e-3}\n")
    rec = load_recipe(tmp_path / "leaf.yaml")
    tiny = load_recipe("hubert_tiny")
    assert rec.name == "leaf"  # the name is the file's, not the base's
    for it, t in zip(rec.iterations, tiny.iterations):
        assert (it.train.steps, it.train.lr, it.cluster.k) == (7, 2e-3, 40)
        assert it.train.batch_samples == t.train.batch_samples == 128000
        assert it.model == t.model
    assert len(rec.iterations) == 2
    data, name = read_recipe(tmp_path / "leaf.yaml")
    assert "base" not in data and name == "leaf" and data["train"]["steps"] == 7


def test_overrides_apply_after_inheritance(tmp_path):
    rec = load_recipe("hubert_ci", ["train.steps=3"])
    assert [i.train.steps for i in rec.iterations] == [3]
    assert rec.iterations[0].cluster.k == 50


def test_a_cycle_fails_with_one_line_naming_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(tmp_path / "a.yaml")
    msg = str(e.value)
    assert "\n" not in msg and "cycle" in msg and "a -> b -> a" in msg
    assert str(tmp_path / "a.yaml") in msg
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    with pytest.raises(ConfigError, match=r"self\.yaml: base cycle self -> self"):
        load_recipe(tmp_path / "self.yaml")


def test_an_unknown_base_fails_with_one_line_naming_the_file(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("base: hubert_tinny\n")
    with pytest.raises(ConfigError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and "'hubert_tinny'" in msg and "did you mean hubert_tiny" in msg
    p.write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: base 'missing\.yaml': no such file"):
        load_recipe(p)
    p.write_text("base: [hubert_tiny]\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: base must be a recipe name"):
        load_recipe(p)


def test_an_unknown_recipe_name_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown recipe 'hubert_tinny' \(did you mean hubert_tiny"):
        load_recipe("hubert_tinny")
