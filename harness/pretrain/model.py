"""HuBERT masked prediction around `upstreams.hubert.HubertEncoder` (PRETRAIN.md 1, fairseq hubert.py).

- Masking (`compute_mask`): spans of `mask_length` frames; number of spans per row
  = floor(mask_prob * T / mask_length + u), u ~ U[0, 1) drawn once per batch, at least min_masks;
  distinct starts uniform in [0, T - mask_length); spans may overlap; then every row is cut down
  to the smallest masked count of the batch by dropping random masked frames (fairseq
  compute_mask_indices with require_same_masks). About 55-57% of the frames end up masked.
- Logits: final projection of the last layer to final_dim; logit of class c = cosine(proj(o_t),
  e_c) / logit_temp over all K codeword embeddings e (fairseq: positive + all K codewords as
  negatives with the positive removed = softmax over the K codewords).
- Loss (summed, not averaged: the loop divides by the GLOBAL masked-frame count):
  cross-entropy over masked frames with a label
  + nomask_weight * cross-entropy over unmasked frames with a label (fairseq pred_nomask_weight;
    0 in every published HuBERT recipe, which is the default here)
  + feature_pen * mean(CNN output^2) * (masked frames of this batch).
- Init: the encoder's (N(0, 0.02) linears, U[0, 1) mask vector); final projection N(0, 0.02),
  bias 0; codeword embeddings U[0, 1).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from upstreams.hubert import HubertConfig, HubertEncoder


def compute_mask(batch: int, frames: int, mask_prob: float = 0.8, mask_length: int = 10, min_masks: int = 2,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    """(batch, frames) bool span mask with the same number of masked frames in every row."""
    B, T = int(batch), int(frames)
    if B == 0 or T == 0:
        return torch.zeros(B, T, dtype=torch.bool)
    u = float(torch.rand((), generator=generator))
    num = max(int(min_masks), int(mask_prob * T / float(mask_length) + u))
    span_range = T - mask_length
    if span_range <= num:  # fairseq: min_len = sz - num_mask - 1 -> choose among num + 1 starts
        span_range = num + 1
    starts = torch.rand(B, span_range, generator=generator).argsort(dim=1)[:, :num]  # distinct starts
    idx = (starts[:, :, None] + torch.arange(mask_length)[None, None, :]).reshape(B, -1)
    hit = idx < T  # spans are cut at the end of the row
    mask = torch.zeros(B, T, dtype=torch.bool)
    rows = torch.arange(B)[:, None].expand_as(idx)
    mask[rows[hit], idx[hit]] = True
    counts = mask.sum(1)
    m = int(counts.min())
    if bool((counts > m).any()):
        score = torch.rand(B, T, generator=generator)
        score = torch.where(mask, score, torch.full_like(score, -1.0))
        keep = score.topk(m, dim=1).indices
        mask = torch.zeros(B, T, dtype=torch.bool)
        mask.scatter_(1, keep, True)
    return mask


class HubertPretrainModel(nn.Module):
    """HubertEncoder + final projection + codeword embeddings; forward returns loss parts."""

    def __init__(self, config: HubertConfig, num_classes: int, logit_temp: float = 0.1, feature_pen: float = 10.0,
                 nomask_weight: float = 0.0):
        super().__init__()
        self.nomask_weight = float(nomask_weight)
        self.config = config
        self.num_classes = int(num_classes)
        self.logit_temp = float(logit_temp)
        self.feature_pen = float(feature_pen)
        self.encoder = HubertEncoder(config)
        self.final_proj = nn.Linear(config.encoder_dim, config.final_dim)
        self.label_embs = nn.Parameter(torch.empty(self.num_classes, config.final_dim))
        self.reset_head()

    @torch.no_grad()
    def reset_head(self) -> None:
        nn.init.normal_(self.final_proj.weight, mean=0.0, std=0.02)
        nn.init.zeros_(self.final_proj.bias)
        nn.init.uniform_(self.label_embs)

    def logits(self, x: Tensor) -> Tensor:
        """(..., D) last-layer states -> (..., K) cosine logits / temperature, in float32."""
        proj = self.final_proj(x).float()
        with torch.autocast(device_type=proj.device.type, enabled=False):
            a = F.normalize(proj, dim=-1, eps=1e-8)
            b = F.normalize(self.label_embs.float(), dim=-1, eps=1e-8)
            return (a @ b.t()) / self.logit_temp

    def forward(self, wavs: Tensor, labels: Tensor, mask: Tensor, wav_lens: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """wavs (B, S); labels (B, T) int64, -1 = no label; mask (B, T) bool (T = CNN frames).

        Returns a dict of tensors: loss (summed CE over masked frames + feature penalty term),
        ce (summed masked CE), feature_pen (mean CNN output^2), n_masked, correct_masked,
        n_unmasked, correct_unmasked (frames with a label)."""
        out = self.encoder(wavs, wav_lens, mask=mask)
        T = out.hidden_states[-1].shape[1]
        if labels.shape != mask.shape or labels.shape[1] != T:
            raise ValueError(f"labels {tuple(labels.shape)} and mask {tuple(mask.shape)} must be (B, T={T})")
        has = (labels >= 0) & ~out.padding_mask
        m, u = mask & has, ~mask & has
        x = out.hidden_states[-1]
        logit_m = self.logits(x[m])
        target_m = labels[m]
        ce = F.cross_entropy(logit_m, target_m, reduction="sum")
        pen = out.features.float().pow(2).mean()
        n_masked = m.sum()
        loss = ce + self.feature_pen * pen * n_masked.to(pen.dtype)
        if self.nomask_weight > 0:
            logit_u = self.logits(x[u])
            loss = loss + self.nomask_weight * F.cross_entropy(logit_u, labels[u], reduction="sum")
        else:
            with torch.no_grad():
                logit_u = self.logits(x[u].detach())
        with torch.no_grad():
            correct_m = (logit_m.argmax(-1) == target_m).sum()
            correct_u = (logit_u.argmax(-1) == labels[u]).sum()
        return {"loss": loss, "ce": ce.detach(), "feature_pen": pen.detach(), "n_masked": n_masked,
                "correct_masked": correct_m, "n_unmasked": u.sum(), "correct_unmasked": correct_u}
