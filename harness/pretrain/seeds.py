"""Pre-training seeds: the same recipe pre-trained again from other seeds.

One pre-training run is one draw: its network's initialisation, data order, crops, masks,
dropout, WavLM's mixing and the k-means initialisation all come from the recipe's seeds
(`train.seed`, `cluster.seed`). A method claim that rests on one draw cannot tell the method from
the draw, so `harness ablate` and `./run demo --board pretrain` take `--pretrain-seeds N` and run
each recipe N times, pre-training seed s = 0 .. N-1:

- seed 0 is the recipe exactly as written: its resolved recipe, `recipe_hash`, run folder
  (runs/pretrain/<recipe>), export names (<recipe>-it<k>) and upstream.json are those of every
  run made before seeds existed, so existing result stores still match;
- seed s > 0 adds s to every iteration's `train.seed` and `cluster.seed` (so every random
  choice above changes), names the recipe "<recipe>-s<s>" (run folder runs/pretrain/<recipe>-s<s>,
  exports <recipe>-s<s>-it<k>), and records `pretrain_seed: s` in the run's recipe.json and in
  each export's upstream.json `pretraining` record (result.json's `upstream_facts`).

The data selection (`data.balance_seed`) is left alone: every seed trains on the same utterances,
so the seeds measure the training's variance, not the corpus draw's.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Optional, Tuple

from harness.errors import ConfigError

#: "<recipe>-s<seed>-it<k>" or "<recipe>-it<k>" (seed 0)
_UPSTREAM = r"^{recipe}(?:-s(\d+))?-it(\d+)$"


def seeded_name(recipe: str, seed: int) -> str:
    """The name of `recipe` pre-trained from seed `seed`: the recipe's own name for seed 0,
    "<recipe>-s<seed>" otherwise (its run folder's name and its exports' prefix)."""
    return recipe if seed == 0 else f"{recipe}-s{seed}"


def pretrain_folder(runs: Path, recipe: str, seed: int = 0) -> Path:
    """runs/pretrain/<recipe> (seed 0) or runs/pretrain/<recipe>-s<seed>."""
    return Path(runs) / "pretrain" / seeded_name(str(recipe), seed)


def parse_upstream(recipe: str, upstream: str) -> Optional[Tuple[int, int]]:
    """(pre-training seed, iteration) of an export named after `recipe` ("<recipe>-it<k>" is
    seed 0, "<recipe>-s<s>-it<k>" seed s), or None for any other name (another recipe, a step
    export)."""
    m = re.match(_UPSTREAM.format(recipe=re.escape(recipe)), str(upstream))
    return (int(m.group(1) or 0), int(m.group(2))) if m else None


def with_pretrain_seed(rec, seed: int):
    """Recipe `rec` (as written, pretrain_seed 0) pre-trained from seed `seed` (module docstring).

    Args:
        rec: a resolved harness.pretrain.recipe.Recipe with pretrain_seed 0.
        seed: the pre-training seed, >= 0.

    Returns:
        `rec` itself for seed 0; else a copy named "<name>-s<seed>" whose iterations' train.seed
        and cluster.seed are shifted by `seed`.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"pre-training seed must be an integer >= 0, got {seed!r}")
    if seed == 0:
        return rec
    if rec.pretrain_seed:
        raise ConfigError(f"recipe {rec.name} already has pre-training seed {rec.pretrain_seed}")
    its = tuple(dataclasses.replace(it, train=dataclasses.replace(it.train, seed=it.train.seed + seed),
                                    cluster=dataclasses.replace(it.cluster, seed=it.cluster.seed + seed))
                for it in rec.iterations)
    return dataclasses.replace(rec, name=seeded_name(rec.name, seed), iterations=its, pretrain_seed=seed)
