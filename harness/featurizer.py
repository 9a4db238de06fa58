"""WeightedSum: the SUPERB featurizer, a softmax-weighted sum over all hidden layers."""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class WeightedSum(nn.Module):
    """Learnable softmax weights over L+1 layers; blind to the task.

    Args:
        num_layers: L+1, the number of hidden states of the upstream.
        layer_norm: apply a parameter-free layer norm to each layer before summing (off by
            default, as in SUPERB; never mix both settings in one leaderboard). Not applied to a
            single layer (fbank, mfcc), which passes through untouched: s3prl's Featurizer
            unwraps a one-element hidden_states list and never reaches its weighted sum, where
            its `normalize` lives (upstream/interfaces.py). A per-frame layer norm would be a
            non-linear step before the mean-pool heads that s3prl's baselines never had.
    """

    def __init__(self, num_layers: int, layer_norm: bool = False):
        super().__init__()
        self.num_layers = num_layers
        self.layer_norm = layer_norm
        self.weights = nn.Parameter(torch.zeros(num_layers))

    def forward(self, layers: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Combine layers.

        Args:
            layers: L+1 tensors (B, T, D), or one tensor (L+1, B, T, D).

        Returns:
            (B, T, D) float32.
        """
        stacked = layers if isinstance(layers, torch.Tensor) else torch.stack(list(layers), dim=0)
        if stacked.shape[0] != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layers, got {stacked.shape[0]}")
        stacked = stacked.float()
        if self.layer_norm and self.num_layers > 1:
            stacked = F.layer_norm(stacked, stacked.shape[-1:])
        w = F.softmax(self.weights, dim=0)
        return (w.view(-1, 1, 1, 1) * stacked).sum(dim=0)

    def softmax_weights(self) -> List[float]:
        return F.softmax(self.weights.detach(), dim=0).tolist()


def corrected_contributions(weights: Sequence[float], layer_norms: Sequence[float]) -> List[float]:
    """c_l = w_l |h_l| / sum_k w_k |h_k| (docs/protocol.md section 5): weights corrected for layer magnitude."""
    w = torch.tensor(list(weights), dtype=torch.float64, device="cpu")  # plain numbers, for result.json
    n = torch.tensor(list(layer_norms), dtype=torch.float64, device="cpu")
    c = w * n
    total = c.sum()
    return (c / total).tolist() if total > 0 else [float("nan")] * len(w)
