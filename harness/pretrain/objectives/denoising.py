"""WavLM's objective: masked prediction of the clean utterance's labels from a mixed waveform
(docs/pretrain.md section 2). The network side (gated relative position bias) is the `wavlm` family; this
objective only adds utterance mixing (harness/pretrain/mixing.py) as the batch transform applied
to every micro-batch after cropping. Labels stay those of the clean primary utterance."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from harness.pretrain.mixing import MixConfig, mix_batch
from harness.pretrain.model import MaskedPredictionModel
from harness.pretrain.objectives.base import LabelStream, Objective
from harness.registry import register_objective


@register_objective("denoising")
class Denoising(Objective):
    """Masked prediction + utterance mixing. Options (MixConfig): mix_prob 0.2, noise_prob 0
    (WavLM Base; 0.1 for Base+ and Large), SNR U(-5, 20) dB, energy ratio U(-5, 5) dB, added
    segment at most half the crop."""

    name = "denoising"
    Options = MixConfig

    def build_model(self, encoder: nn.Module, streams: Sequence[LabelStream], train_cfg: Any) -> nn.Module:
        return MaskedPredictionModel(encoder, [(s.name, s.k) for s in streams], train_cfg.logit_temp,
                                     train_cfg.feature_pen, train_cfg.pred_nomask_weight)

    @property
    def needs_noise(self) -> bool:
        return self.options.noise_prob > 0

    def transform(self, wavs: Tensor, generator: torch.Generator, noise: Optional[Any] = None) -> Tensor:
        return mix_batch(wavs, generator, self.options, noise)[0]
