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
from harness.pretrain.recipe import recipe_hash, recipe_to_dict
from harness.pretrain.recipe_files import available_recipes, deep_merge, read_recipe
from harness.pretrain.recipe_load import load_recipe

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


def test_pretrain_seed_zero_is_the_recipe_as_written_and_others_shift_every_seed():
    """Pre-training seeds (harness.pretrain.seeds): seed 0 keeps the name and the hash of every run
    made before seeds; seed s renames the recipe <name>-s<s>, adds s to each iteration's training
    and clustering seeds, records itself and changes nothing else."""
    import dataclasses

    from harness.pretrain.seeds import parse_upstream, pretrain_folder, seeded_name, with_pretrain_seed

    base = load_recipe("mshubert_tiny")
    assert load_recipe("mshubert_tiny", pretrain_seed=0) == base
    assert recipe_hash(load_recipe("mshubert_tiny", pretrain_seed=0)) == HASHES["mshubert_tiny"]
    s2 = load_recipe("mshubert_tiny", pretrain_seed=2)
    assert s2.name == "mshubert_tiny-s2" and s2.pretrain_seed == 2 and s2.iteration_name(1) == "mshubert_tiny-s2-it1"
    assert [(it.train.seed, it.cluster.seed) for it in s2.iterations] == \
        [(it.train.seed + 2, it.cluster.seed + 2) for it in base.iterations]
    for a, b in zip(base.iterations, s2.iterations):  # nothing else moved
        assert dataclasses.replace(b, train=a.train, cluster=a.cluster) == a
        assert dataclasses.replace(b.train, seed=a.train.seed) == a.train
    assert s2.data == base.data and recipe_to_dict(s2)["pretrain_seed"] == 2
    assert "pretrain_seed" not in recipe_to_dict(base) and recipe_hash(s2) != HASHES["mshubert_tiny"]
    with pytest.raises(ConfigError, match="already has pre-training seed 2"):
        with_pretrain_seed(s2, 1)
    with pytest.raises(ConfigError, match="integer >= 0, got -1"):
        load_recipe("mshubert_tiny", pretrain_seed=-1)
    assert seeded_name("x", 0) == "x" and seeded_name("x", 3) == "x-s3"
    assert pretrain_folder(Path("runs"), "x", 0) == Path("runs/pretrain/x")
    assert pretrain_folder(Path("runs"), "x", 3) == Path("runs/pretrain/x-s3")
    assert parse_upstream("x", "x-it2") == (0, 2) and parse_upstream("x", "x-s3-it1") == (3, 1)
    assert parse_upstream("x", "x_y-it1") is None and parse_upstream("x", "x-it1-step000100") is None


def test_wavlm_nodenoise_is_wavlm_tiny_without_mixing_and_sits_in_the_wavlm_ablation():
    """wavlm_tiny_nodenoise resolves to wavlm_tiny except the two mixing probabilities (0: every
    utterance trains clean), at equal updates; the WavLM ablation compares it with wavlm_tiny
    (reference) and hubert_tiny."""
    import dataclasses

    from harness.ablation import get_ablation

    w, n = load_recipe("wavlm_tiny"), load_recipe("wavlm_tiny_nodenoise")
    assert n.name == "wavlm_tiny_nodenoise" and n.data == w.data and len(n.iterations) == len(w.iterations) == 2
    for a, b in zip(w.iterations, n.iterations):
        assert (a.objective_options.mix_prob, a.objective_options.noise_prob) == (0.2, 0.1)
        assert (b.objective_options.mix_prob, b.objective_options.noise_prob) == (0.0, 0.0)
        assert not b.make_objective().needs_noise
        opts = dataclasses.replace(b.objective_options, mix_prob=a.objective_options.mix_prob,
                                   noise_prob=a.objective_options.noise_prob)
        assert dataclasses.replace(b, objective_options=opts) == a  # nothing else differs
    dw, dn = recipe_to_dict(w), recipe_to_dict(n)
    for d in (dw, dn):
        d.pop("name")
        for it in d["iterations"]:
            it["objective_options"].pop("mix_prob"), it["objective_options"].pop("noise_prob")
    assert dw == dn
    hub = load_recipe("hubert_tiny")
    assert [it.train.steps for it in n.iterations] == [it.train.steps for it in hub.iterations] == [1200, 1200]
    ab = get_ablation("wavlm")
    assert ab.recipes == ("wavlm_tiny", "wavlm_tiny_nodenoise", "hubert_tiny")
    assert set(ab.tasks) == {"sd", "ss", "asv", "pr"} and ab.seeds >= 3
