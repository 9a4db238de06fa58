"""The ML-SUPERB CTC head (docs/protocol.md section 3; tasks/base_mlsuperb.py) and its parts: the
recipe's SpecAugment settings, utterance mean normalisation and ESPnet's conv2d2 subsampling;
helpers of tasks/heads.py (not a task)."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from tasks.heads import SpecAugment, length_mask

#: ESPnet egs2/ml_superb/asr1/conf/tuning/train_asr_s3prl_{10min,1h}.yaml `specaug_conf`
MLSUPERB_SPECAUG = dict(time_warp=5, freq_masks=2, freq_width=(0, 27), time_masks=10, time_width_ratio=(0.0, 0.05))


def utterance_mvn(x: torch.Tensor, lengths: torch.Tensor, norm_vars: bool = True, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance mean (and variance) normalisation over valid frames; padding set to 0.

    Args:
        x: (B, T, D).
        lengths: (B,) valid frames.
    Returns:
        (B, T, D).
    """
    m = length_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
    n = m.sum(1, keepdim=True).clamp(min=1)
    mean = (x * m).sum(1, keepdim=True) / n
    y = (x - mean) * m
    if norm_vars:
        var = (y**2).sum(1, keepdim=True) / n
        y = y / (var + eps).sqrt()
    return y


class Conv2dSubsampling2(nn.Module):
    """ESPnet's conv2d2 front: Conv2d(1, C, 3, stride 2) -> ReLU -> Conv2d(C, C, 3, stride 1) ->
    ReLU -> Linear(C * F', d) -> sinusoidal positions. Frames: T' = (T - 1) // 2 - 2.

    Without padding in time, valid output frames only see valid input frames (output t reads
    inputs 2t..2t+6 <= the item's last frame), so batching never leaks padding into them.
    """

    def __init__(self, idim: int, d: int, dropout: float = 0.1, channels: Optional[int] = None):
        super().__init__()
        c = channels or d  # ESPnet: d channels; fewer make the CPU profile affordable
        self.conv = nn.Sequential(nn.Conv2d(1, c, 3, 2), nn.ReLU(), nn.Conv2d(c, c, 3, 1), nn.ReLU())
        fdim = ((idim - 1) // 2) - 2
        self.out = nn.Linear(c * fdim, d)
        self.d = d
        self.drop = nn.Dropout(dropout)

    @staticmethod
    def out_lengths(lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths - 1, 2, rounding_mode="floor") - 2

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        h = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        B, C, T, F_ = h.shape
        h = self.out(h.transpose(1, 2).reshape(B, T, C * F_))
        pos = torch.arange(T, device=h.device, dtype=h.dtype)[:, None]
        div = torch.exp(torch.arange(0, self.d, 2, device=h.device, dtype=h.dtype) * (-math.log(10000.0) / self.d))
        pe = torch.zeros(T, self.d, device=h.device, dtype=h.dtype)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        h = self.drop(h * math.sqrt(self.d) + pe)
        return h, self.out_lengths(lengths).clamp(min=0)


class MLSuperbHead(nn.Module):
    """The ML-SUPERB CTC head (docs/protocol.md section 3), on the weighted features:

    SpecAugment (train only, `specaug` = SpecAugment's arguments, None = off) -> utterance mean
    normalisation -> Linear(D, 80) -> conv2d subsampling x2 -> `layers` pre-LN Transformer blocks
    (d, heads, ffn, dropout) -> LayerNorm -> Linear(d, V) -> log-softmax. `conv_channels`
    (default d, as in ESPnet) sets the width of the subsampling convolutions, the costliest part
    on a CPU. `norm_vars=False` (the default) normalises means only, as ESPnet's `utterance_mvn`
    does in the recipe, which configures no `normalize_conf`.

    Inputs shorter than 7 frames have no output frame of their own; they get one (length 1), so
    CTC still sees them (a one-token target such as a language tag fits).

    Output: (log_probs (B, T', V), lengths' (B,)), T' = (T - 1) // 2 - 2 (at least 1).
    """

    def __init__(self, dim: int, vocab: int, d_model: int = 256, heads: int = 8, ffn: int = 1024,
                 layers: int = 2, dropout: float = 0.1, specaug: Optional[dict] = None, feat_dim: int = 80,
                 conv_channels: Optional[int] = None, norm_vars: bool = False):
        super().__init__()
        self.norm_vars = norm_vars
        self.specaug = SpecAugment(**specaug) if specaug is not None else None
        self.proj = nn.Linear(dim, feat_dim)
        self.subsample = Conv2dSubsampling2(feat_dim, d_model, dropout, channels=conv_channels)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, heads, ffn, dropout, batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab)

    def forward(self, x, lengths):
        if self.specaug is not None:
            x = self.specaug(x, lengths)
        x = self.proj(utterance_mvn(x, lengths, norm_vars=self.norm_vars))
        if x.shape[1] < 7:  # the convolutions need 7 frames
            x = F.pad(x, (0, 0, 0, 7 - x.shape[1]))
        h, out_lens = self.subsample(x, lengths)
        out_lens = out_lens.clamp(min=1)
        pad = ~length_mask(out_lens, h.shape[1])
        for block in self.blocks:
            h = block(h, src_key_padding_mask=pad)
        return F.log_softmax(self.out(self.norm(h)), dim=-1), out_lens
