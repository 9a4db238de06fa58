"""Heads shared by tasks (PROTOCOL section 3). Every head: forward(x (B, T, D), lengths (B,))."""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn


def length_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) bool, True on valid frames."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames only: (B, T, D) -> (B, D)."""
    m = length_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


class FrameCTCHead(nn.Module):
    """PR head: Linear(D, hidden) -> Linear(hidden, V) per frame; returns CTC log-probs.

    Output: (log_probs (B, T, V), lengths (B,)).
    """

    def __init__(self, dim: int, hidden: int, vocab: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, lengths):
        return F.log_softmax(self.out(self.proj(x)), dim=-1), lengths


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each item's valid frames in place of order, padding stays at the end: (B, T, D)."""
    T = x.shape[1]
    t = torch.arange(T, device=x.device)[None, :]
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


class BiLSTM(nn.Module):
    """Bidirectional LSTM over padded batches, exact for every item's valid frames.

    The backward direction runs a forward LSTM over each item's reversed valid frames, so padding
    never enters a valid frame's state. This avoids packed sequences, whose backward pass is
    about ten times slower on the CPU, while giving the same result as packing.
    """

    def __init__(self, dim: int, hidden: int, layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.fwd = nn.ModuleList()
        self.bwd = nn.ModuleList()
        for i in range(layers):
            cin = dim if i == 0 else 2 * hidden
            self.fwd.append(nn.LSTM(cin, hidden, batch_first=True))
            self.bwd.append(nn.LSTM(cin, hidden, batch_first=True))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, 2 hidden); frames past each length are zero."""
        mask = length_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
        for i, (f, b) in enumerate(zip(self.fwd, self.bwd)):
            if i > 0:
                x = self.drop(x)
            hf, _ = f(x)
            hb, _ = b(reverse_padded(x, lengths))
            x = torch.cat([hf, reverse_padded(hb, lengths)], dim=-1) * mask
        return x


class BLSTMCTCHead(nn.Module):
    """ASR head: Linear(D, hidden) -> BLSTM (layers, hidden per direction) -> Linear(2 hidden, V).

    Output: (log_probs (B, T, V), lengths (B,)).
    """

    def __init__(self, dim: int, hidden: int, vocab: int, layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.lstm = BiLSTM(hidden, hidden, layers=layers, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, vocab)

    def forward(self, x, lengths):
        h = self.lstm(self.proj(x), lengths)
        return F.log_softmax(self.out(self.drop(h)), dim=-1), lengths


class MeanPoolClassifier(nn.Module):
    """Utterance classifier: Linear(D, hidden) -> mean over valid frames -> Linear(hidden, C).

    Output: logits (B, C).
    """

    def __init__(self, dim: int, hidden: int, num_classes: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x, lengths):
        return self.out(masked_mean(self.proj(x), lengths))


class FrameVoteClassifier(nn.Module):
    """Utterance classifier that decides per frame, then averages: Linear(D, hidden) -> ReLU ->
    Conv1d(k=5) -> ReLU -> Linear(hidden, C) per frame -> mean of logits over valid frames.

    A Linear -> mean-pool head is linear in the utterance's average frame, which carries the
    speaker but little of the language; frame-level decisions with local context see phones.
    Output: logits (B, C).
    """

    def __init__(self, dim: int, hidden: int, num_classes: int, kernel: int = 5):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.conv = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x, lengths):
        m = length_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        h = F.relu(self.proj(x)) * m  # zero padding: the item alone sees zeros there
        h = F.relu(self.conv(h.transpose(1, 2))).transpose(1, 2)
        return masked_mean(self.out(h), lengths)


class TDNN(nn.Module):
    """One x-vector TDNN layer: dilated 1-D conv + ReLU + batch norm, 'same' length."""

    def __init__(self, cin: int, cout: int, context: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, context, dilation=dilation, padding=dilation * (context - 1) // 2)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x):  # (B, C, T)
        return self.bn(F.relu(self.conv(x)))


class XVectorHead(nn.Module):
    """SUPERB ASV head: Linear(D, hidden) -> 5 TDNN (context 5/3/3/1/1, dilation 1/2/3/1/1,
    last `stats_dim` wide) -> mean+std pooling over valid frames -> Linear -> Linear = embedding.

    Output: embeddings (B, emb_dim).
    """

    def __init__(self, dim: int, hidden: int = 512, stats_dim: int = 1500, emb_dim: int = 512):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        ctx, dil = (5, 3, 3, 1, 1), (1, 2, 3, 1, 1)
        chans = [hidden] * 4 + [stats_dim]
        layers, cin = [], hidden
        for c, k, d in zip(chans, ctx, dil):
            layers.append(TDNN(cin, c, k, d))
            cin = c
        self.tdnn = nn.Sequential(*layers)
        self.seg1 = nn.Linear(2 * stats_dim, emb_dim)
        self.seg2 = nn.Linear(emb_dim, emb_dim)

    def forward(self, x, lengths):
        m = length_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
        h = (self.proj(x) * m).transpose(1, 2)  # (B, C, T)
        for layer in self.tdnn:
            # re-zero padding so each conv sees what the item alone would (zero padding)
            h = layer(h) * m.transpose(1, 2)
        h = h.transpose(1, 2)  # (B, T, C)
        n = m.sum(1).clamp(min=1)
        mean = (h * m).sum(1) / n
        var = (((h - mean.unsqueeze(1)) ** 2) * m).sum(1) / n
        stats = torch.cat([mean, var.clamp(min=1e-6).sqrt()], -1)
        return self.seg2(F.relu(self.seg1(stats)))


class ECAPAHead(nn.Module):
    """ECAPA-TDNN from speechbrain on the weighted features (an option for ASV).

    Output: embeddings (B, emb_dim).
    """

    def __init__(self, dim: int, channels: int = 512, emb_dim: int = 192):
        super().__init__()
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

        self.net = ECAPA_TDNN(input_size=dim, channels=[channels] * 4 + [channels * 3], lin_neurons=emb_dim)

    def forward(self, x, lengths):
        rel = lengths.float() / x.shape[1]
        return self.net(x, rel).squeeze(1)


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


class HeadWithLoss(nn.Module):
    """A head plus a loss module with parameters (e.g. AM-softmax); both train, only the head
    produces outputs."""

    def __init__(self, head: nn.Module, loss_module: nn.Module):
        super().__init__()
        self.head, self.loss_module = head, loss_module

    def forward(self, x, lengths):
        return self.head(x, lengths)


def ctc_loss(log_probs: torch.Tensor, out_lens: torch.Tensor, targets: list[list[int]]) -> torch.Tensor:
    """Mean-over-batch CTC loss (blank = 0), each item normalised by its target length."""
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
    tlens = torch.tensor([len(s) for s in targets], dtype=torch.long)
    return F.ctc_loss(log_probs.transpose(0, 1), flat, out_lens.cpu(), tlens, blank=0, reduction="mean",
                      zero_infinity=True)


def init_seed(seed: int) -> None:
    torch.manual_seed(seed)
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))


