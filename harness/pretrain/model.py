"""HuBERT masked prediction around any family's encoder (docs/pretrain.md section 1, fairseq hubert.py).

- Masking (`compute_mask`): spans of `mask_length` frames; number of spans per row
  = floor(mask_prob * T / mask_length + u), u ~ U[0, 1) drawn once per batch, at least min_masks;
  distinct starts uniform in [0, T - mask_length); spans may overlap; then every row is cut down
  to the smallest masked count of the batch by dropping random masked frames (fairseq
  compute_mask_indices with require_same_masks). About 55-57% of the frames end up masked.
- Logits: final projection of the last layer to final_dim; logit of class c = cosine(proj(o_t),
  e_c) / logit_temp over all K codeword embeddings e (fairseq: positive + all K codewords as
  negatives with the positive removed = softmax over the K codewords).
- Loss (summed, not averaged: the loop divides by the GLOBAL masked-frame count), summed over
  label streams: cross-entropy over masked frames with a label
  + nomask_weight * cross-entropy over unmasked frames with a label (fairseq pred_nomask_weight;
    0 in every published HuBERT recipe, which is the default here)
  + feature_pen * mean(CNN output^2) * (masked frames of this batch); 0 for the log-Mel front
    end, which has no weights (the term would be a constant).
- Init: the encoder's (N(0, 0.02) linears, U[0, 1) mask vector); final projection N(0, 0.02),
  bias 0; codeword embeddings U[0, 1).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn



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


class MaskedPredictionModel(nn.Module):
    """A family's encoder + one final projection and codeword table per label stream.

    Every stream is predicted from the last layer unless `layers` says otherwise (one hidden-state
    index per stream, 1 = output of the first transformer layer; MS-HuBERT's heads on several
    layers); the loss is the sum over streams (fairseq HuBERT with several label sets).
    Accuracies are those of the first stream.
    """

    def __init__(self, encoder: nn.Module, streams: Sequence[Tuple[str, int]], logit_temp: float = 0.1,
                 feature_pen: float = 10.0, nomask_weight: float = 0.0, layers: Optional[Sequence[int]] = None):
        super().__init__()
        if not streams:
            raise ValueError("masked prediction needs at least one label stream")
        self.nomask_weight = float(nomask_weight)
        self.config = encoder.config
        self.streams = [(str(n), int(k)) for n, k in streams]
        L = self.config.encoder_layers
        self.layers = [L] * len(self.streams) if layers is None else [int(v) for v in layers]
        if len(self.layers) != len(self.streams) or not all(1 <= v <= L for v in self.layers):
            raise ValueError(f"layers {self.layers}: one layer in 1..{L} per label stream ({len(self.streams)})")
        self.logit_temp = float(logit_temp)
        self.feature_pen = float(feature_pen)
        self.encoder = encoder
        dim, final = self.config.encoder_dim, self.config.final_dim
        self.final_proj = nn.ModuleDict({n: nn.Linear(dim, final) for n, _ in self.streams})
        self.label_embs = nn.ParameterDict({n: nn.Parameter(torch.empty(k, final)) for n, k in self.streams})
        self.reset_head()

    @torch.no_grad()
    def reset_head(self) -> None:
        for n, _ in self.streams:
            nn.init.normal_(self.final_proj[n].weight, mean=0.0, std=0.02)
            nn.init.zeros_(self.final_proj[n].bias)
            nn.init.uniform_(self.label_embs[n])

    def logits(self, x: Tensor, stream: str) -> Tensor:
        """(..., D) states -> (..., K) cosine logits / temperature, in float32."""
        proj = self.final_proj[stream](x).float()
        with torch.autocast(device_type=proj.device.type, enabled=False):
            a = F.normalize(proj, dim=-1, eps=1e-8)
            b = F.normalize(self.label_embs[stream].float(), dim=-1, eps=1e-8)
            return (a @ b.t()) / self.logit_temp

    def forward(self, wavs: Tensor, labels: Dict[str, Tensor], mask: Tensor,
                wav_lens: Optional[Tensor] = None, step: Optional[int] = None) -> Dict[str, Tensor]:
        """wavs (B, S); labels {stream: (B, T) int64, -1 = no label}; mask (B, T) bool (T = CNN
        frames); step: the optimiser step of a training forward (None when evaluating), for
        objectives that draw per step (see MultiClusterSwapModel); plain HuBERT draws nothing.

        Returns a dict of tensors: loss (summed CE over masked frames of every stream + feature
        penalty term), ce (summed masked CE), feature_pen (mean CNN output^2), terms {stream:
        summed masked CE}, and for the first stream n_masked, correct_masked, n_unmasked,
        correct_unmasked (frames with a label)."""
        out = self.encoder(wavs, wav_lens, mask=mask)
        return self.masked_loss(out.hidden_states, labels, mask, out.padding_mask, out.features)

    def masked_loss(self, states: Sequence[Tensor], labels: Dict[str, Tensor], mask: Tensor, padding_mask: Tensor,
                    features: Tensor, active: Optional[Sequence[str]] = None) -> Dict[str, Tensor]:
        """The loss of `forward` from the encoder's hidden states (num_layers + 1 tensors (B, T, D),
        stream s read from states[layer of s]); `active`: the streams whose cross-entropy enters
        the loss (default all; the first stream's accuracies are counted either way)."""
        active = [n for n, _ in self.streams] if active is None else list(active)
        T = states[-1].shape[1]
        ce = states[-1].new_zeros((), dtype=torch.float32)
        loss_u = states[-1].new_zeros((), dtype=torch.float32)
        terms: Dict[str, Tensor] = {}
        stats = None
        for (name, _), layer in zip(self.streams, self.layers):
            if name not in active and stats is not None:
                continue
            x = states[layer]
            lab = labels[name]
            if lab.shape != mask.shape or lab.shape[1] != T:
                raise ValueError(f"labels[{name}] {tuple(lab.shape)} and mask {tuple(mask.shape)} must be (B, T={T})")
            has = (lab >= 0) & ~padding_mask
            m, u = mask & has, ~mask & has
            with torch.set_grad_enabled(torch.is_grad_enabled() and name in active):
                logit_m = self.logits(x[m], name)
                logit_u = self.logits(x[u], name) if self.nomask_weight > 0 and name in active else None
            if name in active:
                term = F.cross_entropy(logit_m, lab[m], reduction="sum")
                terms[name] = term.detach()
                ce = ce + term
                if logit_u is not None:
                    loss_u = loss_u + F.cross_entropy(logit_u, lab[u], reduction="sum")
            if stats is None:
                with torch.no_grad():
                    logit_u = self.logits(x[u].detach(), name) if logit_u is None else logit_u
                    stats = {"n_masked": m.sum(), "correct_masked": (logit_m.argmax(-1) == lab[m]).sum(),
                             "n_unmasked": u.sum(), "correct_unmasked": (logit_u.argmax(-1) == lab[u]).sum()}
        pen = features.float().pow(2).mean()
        if getattr(self.encoder.config, "frontend", "cnn") == "fbank":  # no weights to penalise
            pen = pen.new_zeros(())
        loss = ce + self.feature_pen * pen * stats["n_masked"].to(pen.dtype) + self.nomask_weight * loss_u
        return {"loss": loss, "ce": ce.detach(), "feature_pen": pen.detach(), "terms": terms, **stats}
