"""The controls every board carries (issue 28 item 4): the random-init twin of each pre-trained
network on the board and the un-normalised filter bank.

A twin has the pre-trained model's exact architecture with untrained weights, so the gap between
the two rows is what pre-training learned; `fbank_no_cmvn` is the long-term spectrum a mean-pool
head reads without any representation, so a number near it is the front end's, not the model's.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import List, Sequence

from harness.errors import HarnessError

#: the front-end control: log-mel filter banks without per-utterance normalisation
FRONT_END = "fbank_no_cmvn"


def _network(cfg: dict) -> dict:
    """A model config without its training-only knobs (dropouts, layer drop, the CNN's gradient
    scale, masking): what the frozen forward pass of an export depends on."""
    return {k: v for k, v in cfg.items()
            if not any(w in k for w in ("dropout", "layerdrop", "grad_mult", "mask"))}


def random_twin(recipe: str) -> str:
    """`random:<family>_<preset>` whose network equals the recipe's last iteration's exactly.

    Raises:
        HarnessError: no preset of the family has the recipe's model config (a recipe that
            changes sizes beyond a preset has no registered twin).
    """
    from harness.pretrain.recipe_load import load_recipe
    from upstreams.base import get_family

    it = load_recipe(recipe).iterations[-1]
    fam = get_family(it.family)
    want = _network(asdict(it.model))
    for preset in fam.presets:
        if _network(asdict(fam.preset(preset))) == want:
            return f"random:{fam.name}_{preset}"
    raise HarnessError(f"recipe {recipe!r}: no {fam.name} preset has its model config, so it has no "
                       "random-init twin; add the preset to upstreams/" + f"{fam.name}.py")


def controls(recipes: Sequence[str]) -> List[str]:
    """The control upstreams of a board whose pre-trained rows come from `recipes`, in order:
    the filter bank without CMVN, then one twin per distinct network."""
    out = [FRONT_END]
    for r in recipes:
        twin = random_twin(r)
        if twin not in out:
            out.append(twin)
    return out
