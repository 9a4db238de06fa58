"""An iteration's exports: the final encoder (out/iter{k}/upstream), the step exports of a
learning curve (out/iter{k}/exports/step{NNNNNN}), and what each was trained on (`provenance`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import torch

from harness.pretrain import checkpoint, dump
from harness.pretrain.batches import Item
from harness.pretrain.recipe import IterationConfig, Recipe
from upstreams.base import export_encoder, get_family


def step_export_folder(root: Path, step: int) -> Path:
    """Where iteration folder `root` keeps the export of its weights after `step` updates."""
    return root / "exports" / f"step{step:06d}"


def provenance(rec: Recipe, k: int, kept: List[Item], out: Path, step: Optional[int] = None,
               train_seconds: Optional[float] = None) -> dict:
    """What iteration k's weights after `step` updates of its training (default: all) were
    trained on, for their export's upstream.json (the board reads it from the runs' result.json):
    the corpus (as given to `pretrain`, from out/recipe.json), the training utterances and hours
    actually used, the optimiser updates behind the weights (this iteration's `step`, plus those
    of the iterations it continues from), `step` and `train_seconds` (this iteration's training
    time up to that step: the minutes a learning curve shows) and, for a pre-training seed s > 0
    (harness.pretrain.seeds), `pretrain_seed` s (absent: seed 0, the record of every export made
    before seeds)."""
    updates = 0
    for j, it in enumerate(rec.iterations[:k], 1):
        updates = (updates if it.continue_previous or it.warm_start else 0) + (it.train.steps if j < k or step is None else step)
    ident = out / "recipe.json"
    corpus = json.loads(ident.read_text()).get("corpus") if ident.is_file() else None
    return {"corpus": corpus, "utterances": len(kept),
            "hours": round(sum(x.num_samples for x in kept) / dump.SAMPLE_RATE / 3600, 3), "updates": updates,
            "recipe": rec.name, "iteration": k, "objective": rec.iterations[k - 1].objective,
            "step": rec.iterations[k - 1].train.steps if step is None else step,
            "train_seconds": None if train_seconds is None else round(float(train_seconds), 3),
            **({"pretrain_seed": rec.pretrain_seed} if rec.pretrain_seed else {})}


def export_iteration(train_dir: Path, it: IterationConfig, folder: Path, name: str,
                     pretraining: Optional[dict] = None) -> Path:
    """The trained encoder (the objective's heads dropped) -> an export of its family, with what
    it was trained on (`provenance`) in its upstream.json."""
    sd = checkpoint.final_model_state(train_dir)
    enc_sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    encoder = get_family(it.family).encoder_cls(it.model)
    encoder.load_state_dict(enc_sd)
    return export_encoder(encoder, it.family, folder, name, pretraining=pretraining)


def export_step(encoder: torch.nn.Module, rec: Recipe, k: int, kept: List[Item], out: Path, step: int,
                train_seconds: float) -> Path:
    """Export iteration k's live `encoder` after `step` updates to its step export folder, named
    "<iteration name>-step<NNNNNN>", with its provenance (`kept`: the training utterances)."""
    it = rec.iterations[k - 1]
    return export_encoder(encoder, it.family, step_export_folder(out / f"iter{k}", step),
                          f"{rec.iteration_name(k)}-step{step:06d}",
                          pretraining=provenance(rec, k, kept, out, step=step, train_seconds=train_seconds))
