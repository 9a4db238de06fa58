"""Heads shared by tasks (docs/protocol.md section 3). Every head: forward(x (B, T, D), lengths (B,)).

Here: the padding helpers, the BiLSTM, the classifiers, the PR/ASR CTC heads with their loss and
SpecAugment. The ASV heads are in tasks/heads_speaker.py, the ML-SUPERB head in
tasks/heads_mlsuperb.py, the SD/SS heads and their permutation-invariant losses in tasks/heads_pit.py."""

from __future__ import annotations

import math
from typing import Optional, Tuple

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

    framewise = True  # each output frame depends on its input frame only (tasks.base_ctc's floor)

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
    """ASR head: [SpecAugment in training] -> Linear(D, hidden) -> BLSTM (layers, hidden per
    direction) -> Linear(2 hidden, V).

    Output: (log_probs (B, T, V), lengths (B,)).
    """

    def __init__(self, dim: int, hidden: int, vocab: int, layers: int = 2, dropout: float = 0.2,
                 specaug: Optional[dict] = None):
        super().__init__()
        self.specaug = SpecAugment(**specaug) if specaug is not None else None
        self.proj = nn.Linear(dim, hidden)
        self.lstm = BiLSTM(hidden, hidden, layers=layers, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, vocab)

    def forward(self, x, lengths):
        if self.specaug is not None:
            x = self.specaug(x, lengths)
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


class HeadWithLoss(nn.Module):
    """A head plus a loss module with parameters (e.g. AM-softmax); both train, only the head
    produces outputs."""

    def __init__(self, head: nn.Module, loss_module: nn.Module):
        super().__init__()
        self.head, self.loss_module = head, loss_module

    def forward(self, x, lengths):
        return self.head(x, lengths)


class RepeatFrames(nn.Module):
    """Feeds `head` every input frame `factor` times in a row (a coarse upstream's frames brought
    to a finer head rate; CTCTask). Output: the head's, with lengths x factor going in."""

    def __init__(self, head: nn.Module, factor: int):
        super().__init__()
        self.head, self.factor = head, int(factor)

    def forward(self, x, lengths):
        return self.head(x.repeat_interleave(self.factor, dim=1), lengths * self.factor)


def ctc_loss(log_probs: torch.Tensor, out_lens: torch.Tensor, targets: list[list[int]],
             reduction: str = "mean") -> torch.Tensor:
    """CTC loss (blank = 0) of a batch; an unalignable item adds 0 (zero_infinity).

    Args:
        log_probs: (B, T, V).
        out_lens: (B,) valid frames.
        targets: per item, the target ids.
        reduction: "mean" = each item divided by its target length, then the batch mean (torch's
            default, s3prl's CTC heads); "batch" = summed over items, divided by the batch size
            (ESPnet's espnet2/asr/ctc.py, the ML-SUPERB head).
    """
    # on the log-probs' device: torch's CUDA CTC kernel reads targets there (cuDNN is not used
    # for int64 targets), the lengths are read on the host either way
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long, device=log_probs.device)
    tlens = torch.tensor([len(s) for s in targets], dtype=torch.long, device=log_probs.device)
    if reduction not in ("mean", "batch"):
        raise ValueError(f"ctc_loss reduction {reduction!r}: use 'mean' or 'batch'")
    loss = F.ctc_loss(log_probs.transpose(0, 1), flat, out_lens, tlens, blank=0,
                      reduction="mean" if reduction == "mean" else "sum", zero_infinity=True)
    return loss if reduction == "mean" else loss / log_probs.shape[0]


def init_seed(seed: int) -> None:
    torch.manual_seed(seed)
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))


class SpecAugment(nn.Module):
    """SpecAugment of (B, T, D) features in training mode (identity in eval mode), the
    algorithm of ESPnet's espnet2/asr/specaug/specaug.py, which s3prl's downstream/specaug.py
    copies: time warp, then frequency masks, then time masks, each mask set to zero.

    - Time warp (window W, bicubic): per item, on its valid frames t (skipped when t <= 2 W), a
      centre c ~ U[W, t - W) moves to w ~ U[c - W, c + W) + 1 by resizing [0, c) to w frames
      and [c, t) to t - w frames.
    - `freq_masks` bands per item, widths ~ U[freq_width[0], freq_width[1]) dimensions, starts
      ~ U[0, max(1, D - widest band of the batch)).
    - `time_masks` spans per item over the padded length T, widths ~ U[time_width[0],
      time_width[1]) frames, or with `time_width_ratio` (lo, hi) ~ U[floor(lo T), floor(hi T))
      (none when that range is empty); starts as for the bands.

    Draws come from torch's global generator (seeded per probe by init_seed).

    Args:
        time_warp: window W in frames (0 = no warping).
        freq_masks, freq_width: number and width range of frequency masks.
        time_masks, time_width: number and width range (frames) of time masks.
        time_width_ratio: width range as fractions of T, replacing `time_width`.
    """

    def __init__(self, time_warp: int = 5, freq_masks: int = 2, freq_width: Tuple[int, int] = (0, 27),
                 time_masks: int = 2, time_width: Tuple[int, int] = (0, 40),
                 time_width_ratio: Optional[Tuple[float, float]] = None):
        super().__init__()
        self.time_warp, self.freq_masks, self.freq_width = time_warp, freq_masks, tuple(freq_width)
        self.time_masks, self.time_width = time_masks, tuple(time_width)
        self.time_width_ratio = None if time_width_ratio is None else tuple(time_width_ratio)

    def extra_repr(self) -> str:
        t = f"time_width_ratio={self.time_width_ratio}" if self.time_width_ratio else f"time_width={self.time_width}"
        return (f"time_warp={self.time_warp}, freq_masks={self.freq_masks}, freq_width={self.freq_width}, "
                f"time_masks={self.time_masks}, {t}")

    def warp(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Time warping of each item's valid frames: (B, T, D) -> (B, T, D)."""
        W = self.time_warp
        out = []
        for b in range(x.shape[0]):
            t = int(lengths[b])
            item = x[b]
            if t - W > W:
                c = int(torch.randint(W, t - W, ()))
                w = int(torch.randint(c - W, c + W, ())) + 1
                v = item[None, None, :t]  # (1, 1, t, D)
                D = x.shape[2]
                left = F.interpolate(v[:, :, :c], (w, D), mode="bicubic", align_corners=False)
                right = F.interpolate(v[:, :, c:], (t - w, D), mode="bicubic", align_corners=False)
                item = torch.cat([left[0, 0], right[0, 0], item[t:]], 0)
            out.append(item)
        return torch.stack(out)

    @staticmethod
    def mask(x: torch.Tensor, dim: int, num: int, width: Tuple[int, int]) -> torch.Tensor:
        """Zero `num` spans per item along `dim` (1 = time, 2 = freq), widths ~ U[width)."""
        B, size = x.shape[0], x.shape[dim]
        lens = torch.randint(width[0], width[1], (B, num), device=x.device).unsqueeze(2)
        pos = torch.randint(0, max(1, size - int(lens.max())), (B, num), device=x.device).unsqueeze(2)
        ar = torch.arange(size, device=x.device)[None, None, :]
        hit = ((pos <= ar) & (ar < pos + lens)).any(1)  # (B, size)
        return x.masked_fill(hit.unsqueeze(2) if dim == 1 else hit.unsqueeze(1), 0.0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if self.time_warp > 0:
            x = self.warp(x, lengths)
        if self.freq_masks > 0:
            x = self.mask(x, 2, self.freq_masks, self.freq_width)
        if self.time_masks > 0:
            width = self.time_width
            if self.time_width_ratio is not None:
                T = x.shape[1]
                lo, hi = self.time_width_ratio
                width = (max(0, math.floor(T * lo)), min(T, math.floor(T * hi)))
            if width[1] > width[0]:
                x = self.mask(x, 1, self.time_masks, width)
        return x


#: s3prl downstream/asr/config.yaml `specaug` (on the weighted features, in training)
SUPERB_ASR_SPECAUG = dict(time_warp=5, freq_masks=4, freq_width=(0, 50), time_masks=2, time_width=(0, 40))
