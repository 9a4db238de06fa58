"""Building a Recipe (harness.pretrain.recipe) from a parsed YAML mapping: the recipe-wide tables
as every iteration's defaults, each iteration's overrides, `TABLE.KEY=VALUE` overrides from the
command line, and the checks across iterations (unknown keys are errors, with a close match).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

from harness.config import merge
from harness.errors import ConfigError, HarnessError
from harness.pretrain.recipe import ClusterConfig, DataConfig, FeatureConfig, IterationConfig, Recipe, TrainConfig
from harness.pretrain.recipe_files import read_recipe
from upstreams.base import get_family

TABLES = ("data", "model", "objective", "features", "cluster", "train")
TOP_KEYS = ("name", "iterations") + TABLES
ITER_KEYS = TABLES + ("continue", "warm_start")


def _check(keys, known, where: str) -> None:
    for k in keys:
        if k not in known:
            close = difflib.get_close_matches(str(k), known, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown recipe key {where}{k!r}{hint}; known: {', '.join(known)}")


def _table(d: Mapping[str, Any], key: str, where: str) -> Dict[str, Any]:
    v = d.get(key) or {}
    if not isinstance(v, Mapping):
        raise ConfigError(f"recipe key {where}{key!r} must be a table of keys")
    return dict(v)


def _model(defaults: Dict[str, Any], over: Dict[str, Any], where: str) -> Tuple[str, Any]:
    """(family name, family config) from a model table: family, preset, then any config key."""
    d = {**defaults, **over}
    if "family" in over and over["family"] != defaults.get("family", "hubert"):  # another family: its own keys only
        d = dict(over)
    family = str(d.pop("family", "hubert"))
    preset = d.pop("preset", "base")
    try:
        fam = get_family(family)
        base = fam.preset(preset)
    except HarnessError as e:
        raise ConfigError(f"recipe key {where}model: {e}") from None
    return family, merge(base, d, where=f"{where}model.")


def _objective(defaults: Dict[str, Any], over: Dict[str, Any], where: str) -> Tuple[str, Any]:
    """(objective name, its options) from an objective table: name, then any option key."""
    from harness.pretrain.objectives import get_objective

    d = {**defaults, **over}
    if "name" in over and over["name"] != defaults.get("name"):  # another objective: its own options only
        d = dict(over)
    name = str(d.pop("name", "masked_prediction"))
    try:
        cls = get_objective(name)
    except HarnessError as e:
        raise ConfigError(f"recipe key {where}objective.name: {e}") from None
    return name, cls.from_dict(d, where=f"{where}objective.").options


def recipe_from_dict(data: Mapping[str, Any], default_name: str = "recipe") -> Recipe:
    """Build a Recipe from a parsed YAML mapping (see the module docstring)."""
    _check(data, TOP_KEYS, "")
    name = str(data.get("name") or default_name)
    dcfg = merge(DataConfig(), _table(data, "data", ""), where="data.")
    defaults = {k: _table(data, k, "") for k in TABLES}
    iters_raw = data.get("iterations") or [{}]
    if not isinstance(iters_raw, (list, tuple)):
        raise ConfigError("recipe key 'iterations' must be a list of tables")
    iters = []
    for i, it in enumerate(iters_raw, 1):
        it = it or {}
        if not isinstance(it, Mapping):
            raise ConfigError(f"recipe iterations[{i}] must be a table")
        where = f"iterations[{i}]."
        _check(it, ITER_KEYS, where)
        over = {k: _table(it, k, where) for k in TABLES}
        cont = it.get("continue", False)
        if not isinstance(cont, bool):
            raise ConfigError(f"recipe key {where}continue must be true or false, got {cont!r}")
        if cont and i == 1:
            raise ConfigError("recipe iterations[1] cannot continue: there is no previous iteration")
        warm = it.get("warm_start", False)
        if not isinstance(warm, bool):
            raise ConfigError(f"recipe key {where}warm_start must be true or false, got {warm!r}")
        if warm and (i == 1 or cont):
            raise ConfigError(f"recipe {where}warm_start needs a previous iteration and its own labels "
                              "(not iterations[1], not with continue)")
        family, model = _model(defaults["model"], over["model"], where)
        objective, options = _objective(defaults["objective"], over["objective"], where)
        it_data = merge(dcfg, over["data"], where + "data.")
        feats = merge(merge(FeatureConfig(), defaults["features"], "features."), over["features"], where + "features.")
        clus = merge(merge(ClusterConfig(), defaults["cluster"], "cluster."), over["cluster"], where + "cluster.")
        train = merge(merge(TrainConfig(), defaults["train"], "train."), over["train"], where + "train.")
        if feats.source not in ("mfcc", "layer"):
            raise ConfigError(f"recipe {where}features.source must be 'mfcc' or 'layer', got {feats.source!r}")
        if feats.source == "layer" and i == 1:
            raise ConfigError("recipe iterations[1] cannot cluster a layer: there is no previous iteration")
        if not 0.0 < clus.sample_fraction <= 1.0:
            raise ConfigError(f"recipe {where}cluster.sample_fraction must be in (0, 1], got {clus.sample_fraction}")
        if not 2 <= clus.k <= 32767:
            raise ConfigError(f"recipe {where}cluster.k must be in [2, 32767], got {clus.k}")
        iters.append(IterationConfig(family=family, model=model, objective=objective, objective_options=options,
                                     data=it_data, features=feats, cluster=clus, train=train, continue_previous=cont,
                                     warm_start=warm))
        try:  # e.g. MS-HuBERT's levels and head layers against the model and cluster.k
            iters[-1].make_objective().check(iters[-1])
        except ConfigError as e:
            raise ConfigError(f"recipe {where}{e}") from None
    for i in range(1, len(iters)):
        it, prev = iters[i], iters[i - 1]
        if it.continue_previous:
            if (it.family, it.model) != (prev.family, prev.model):
                raise ConfigError(f"recipe iterations[{i + 1}] continues iteration {i}, so its model (family "
                                  f"and config) must be iteration {i}'s")
            if it.label_streams() != prev.label_streams():
                raise ConfigError(f"recipe iterations[{i + 1}] continues iteration {i}: its objective must "
                                  f"predict the same label streams (the labels are reused)")
            continue
        if it.warm_start and (it.family, it.model) != (prev.family, prev.model):
            raise ConfigError(f"recipe iterations[{i + 1}] starts from iteration {i}'s encoder (warm_start), so "
                              f"its model (family and config) must be iteration {i}'s")
        f = it.features
        if f.source == "layer" and not 0 <= f.layer <= prev.model.encoder_layers:
            raise ConfigError(f"recipe iterations[{i + 1}].features.layer = {f.layer}, but iteration {i} "
                              f"has {prev.model.encoder_layers} layers (0..{prev.model.encoder_layers})")
    return Recipe(name=name, data=dcfg, iterations=tuple(iters))


def load_recipe(recipe: Union[str, Path], overrides: Sequence[str] = (), pretrain_seed: int = 0) -> Recipe:
    """A recipe by packaged name ("hubert_tiny") or by path to a YAML file, its `base` chain
    resolved (`read_recipe`), with `overrides` ("train.steps=3", see `apply_overrides`)
    applied before it is resolved, and pre-training seed `pretrain_seed` (0: as written; see
    harness.pretrain.seeds)."""
    from harness.pretrain.seeds import with_pretrain_seed

    data, default_name = read_recipe(recipe)
    return with_pretrain_seed(recipe_from_dict(apply_overrides(data, overrides), default_name=default_name),
                              pretrain_seed)


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """`TABLE.KEY=VALUE` settings (VALUE parsed as YAML) applied to a parsed recipe: the recipe-wide
    table gets the value, and so does every iteration that sets the key itself, so that e.g.
    `train.steps=3` shortens every iteration (a smoke run of a Base recipe on the CPU). Unknown
    keys still fail when the recipe is resolved."""
    import copy

    import yaml

    out = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, raw = str(item).partition("=")
        table, dot, field = key.strip().partition(".")
        if not sep or not dot or table not in TABLES or not field or "." in field:
            raise ConfigError(f"recipe override {item!r} must read TABLE.KEY=VALUE with TABLE one of "
                              f"{', '.join(TABLES)}")
        value = yaml.safe_load(raw)
        top = out.get(table) or {}
        out[table] = {**top, field: value}
        for it in out.get("iterations") or []:
            if isinstance(it, dict) and isinstance(it.get(table), Mapping) and field in it[table]:
                it[table] = {**it[table], field: value}
    return out
