"""HuBERT's objective: masked prediction of k-means labels (docs/pretrain.md section 1; harness/pretrain/model.py)."""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from harness.pretrain.model import MaskedPredictionModel
from harness.pretrain.objectives.base import LabelStream, Objective
from harness.registry import register_objective


@register_objective("masked_prediction")
class MaskedPrediction(Objective):
    """One label stream ("main", K from the iteration's clustering), cosine-logit heads on the
    last layer, masked cross-entropy (+ pred_nomask_weight x unmasked CE) + feature penalty."""

    name = "masked_prediction"

    def build_model(self, encoder: nn.Module, streams: Sequence[LabelStream], train_cfg: Any) -> nn.Module:
        return MaskedPredictionModel(encoder, [(s.name, s.k) for s in streams], train_cfg.logit_temp,
                                     train_cfg.feature_pen, train_cfg.pred_nomask_weight)
