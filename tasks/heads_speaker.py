"""The ASV heads (tasks/asv.py): the SUPERB x-vector head, speechbrain's ECAPA-TDNN and the
AM-softmax loss, helpers of tasks/heads.py (not a task). Every head: forward(x (B, T, D), lengths (B,))."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tasks.heads import length_mask


class XVectorHead(nn.Module):
    """SUPERB ASV head (s3prl downstream/sv_voxceleb1, configs/amsoftmax.yaml): Linear(D, hidden)
    -> 5 TDNN layers (context 5/3/3/1/1, dilation 1/2/3/1/1, the last `stats_dim` wide; each a
    dilated convolution without padding and a ReLU, `batch_norm: False`, `dropout_p: 0`) ->
    mean and standard deviation over the valid frames -> linear1 -> ReLU -> linear2 -> ReLU.
    `batch_norm=True` adds s3prl's optional BatchNorm after each TDNN ReLU (`batch_norm: True`;
    the SUPERB config has False).

    The TDNN stack reads 14 frames of context, so an item of n frames has n - 14 valid output
    frames, none of which reads padding; an item shorter than 15 frames is zero-padded to 15 and
    keeps one output frame. The standard deviation is torch.std's (unbiased), as s3prl's
    statistics pooling, with the variance floored at 1e-6.

    Output: (train_emb, trial_emb), each (B, emb_dim): train_emb = relu(linear2(relu(linear1(stats))))
    feeds the AM-softmax loss (s3prl UtteranceExtractor.forward), trial_emb = relu(linear1(stats))
    is what trials are scored on (UtteranceExtractor.inference).
    """

    CONTEXT = (5, 3, 3, 1, 1)
    DILATION = (1, 2, 3, 1, 1)
    #: frames of context the stack consumes: sum of (context - 1) x dilation
    SHRINK = sum((k - 1) * d for k, d in zip(CONTEXT, DILATION))

    def __init__(self, dim: int, hidden: int = 512, stats_dim: int = 1500, emb_dim: int = 512,
                 batch_norm: bool = False):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        chans = [hidden] * 4 + [stats_dim]
        layers, cin = [], hidden
        for c, k, d in zip(chans, self.CONTEXT, self.DILATION):
            layers += [nn.Conv1d(cin, c, k, dilation=d), nn.ReLU()] + ([nn.BatchNorm1d(c)] if batch_norm else [])
            cin = c
        self.tdnn = nn.Sequential(*layers)
        self.linear1 = nn.Linear(2 * stats_dim, emb_dim)
        self.linear2 = nn.Linear(emb_dim, emb_dim)

    def forward(self, x, lengths):
        if x.shape[1] <= self.SHRINK:
            x = F.pad(x, (0, 0, 0, self.SHRINK + 1 - x.shape[1]))
        h = self.tdnn(self.proj(x).transpose(1, 2)).transpose(1, 2)  # (B, T - 14, C)
        n_valid = (lengths - self.SHRINK).clamp(min=1)
        m = length_mask(n_valid, h.shape[1]).unsqueeze(-1).to(h.dtype)
        n = n_valid.to(h.dtype).unsqueeze(-1)
        mean = (h * m).sum(1) / n
        var = (((h - mean.unsqueeze(1)) ** 2) * m).sum(1) / (n - 1).clamp(min=1)
        # a ReLU channel that is zero on every frame has variance 0, where sqrt's gradient is
        # infinite: the floor keeps such steps finite (without it most quick-profile updates were NaN)
        stats = torch.cat([mean, var.clamp(min=1e-6).sqrt()], -1)
        trial = F.relu(self.linear1(stats))
        return F.relu(self.linear2(trial)), trial


class ECAPAHead(nn.Module):
    """ECAPA-TDNN from speechbrain on the weighted features (an option for ASV).

    Output: (train_emb, trial_emb), the same (B, emb_dim) embedding twice (see XVectorHead).
    """

    def __init__(self, dim: int, channels: int = 512, emb_dim: int = 192):
        super().__init__()
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

        self.net = ECAPA_TDNN(input_size=dim, channels=[channels] * 4 + [channels * 3], lin_neurons=emb_dim)

    def forward(self, x, lengths):
        rel = lengths.float() / x.shape[1]
        emb = self.net(x, rel).squeeze(1)
        return emb, emb


class AMSoftmax(nn.Module):
    """Additive-margin softmax loss (s, m) on L2-normalised embeddings and class weights."""

    def __init__(self, emb_dim: int, num_classes: int, s: float = 30.0, m: float = 0.4):
        super().__init__()
        self.s, self.m = s, m
        self.weight = nn.Parameter(torch.empty(num_classes, emb_dim))
        nn.init.xavier_normal_(self.weight)

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        return F.normalize(emb, dim=-1) @ F.normalize(self.weight, dim=-1).T

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.logits(emb)
        onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return F.cross_entropy(self.s * (cos - self.m * onehot), labels)
