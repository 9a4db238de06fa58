"""The heads and permutation-invariant losses of the two-speaker tasks, diarization (tasks/sd.py)
and separation (tasks/ss.py), helpers of tasks/heads.py (not a task)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tasks.heads import BiLSTM, length_mask


class DiarizationHead(nn.Module):
    """SUPERB SD head: 1-layer LSTM (hidden) -> Linear(hidden, speakers); logits per frame.

    Unidirectional, so the padding after an item's frames never reaches its valid frames.
    Output: (logits (B, T, speakers), lengths (B,)); sigmoid gives speaker activity.
    """

    def __init__(self, dim: int, hidden: int = 512, speakers: int = 2):
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, speakers)

    def forward(self, x, lengths):
        h, _ = self.lstm(x)
        return self.out(h), lengths


def pit_bce_loss(logits: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Permutation-invariant binary cross-entropy for speaker activity (s3prl's SD loss).

    Per utterance: BCE summed over valid frames (mean over speakers within a frame), minimised
    over the speaker permutations of the labels; the batch total is divided by all valid frames.

    Args:
        logits: (B, T, C) activity logits.
        labels: (B, T, C) 0/1 targets (padding frames arbitrary).
        lengths: (B,) valid frames.
    """
    from itertools import permutations

    m = length_mask(lengths, logits.shape[1]).to(logits.dtype)  # (B, T)
    per_perm = []
    for p in permutations(range(labels.shape[-1])):
        bce = F.binary_cross_entropy_with_logits(logits, labels[..., list(p)], reduction="none")
        per_perm.append((bce.mean(-1) * m).sum(1))  # (B,)
    best = torch.stack(per_perm, 1).min(1).values
    return best.sum() / lengths.to(logits.dtype).sum().clamp(min=1)


class MaskSeparationHead(nn.Module):
    """SUPERB SS head: BLSTM stack (layers, hidden per direction, dropout) -> dropout -> one
    Linear(2 hidden, subframes x bins) + ReLU per source: a non-negative STFT magnitude mask per
    source, `subframes` consecutive STFT frames per feature frame (1 unless the upstream's frames
    are coarser than the STFT hop, see tasks/ss.py).

    Output: (masks (B, sources, T x subframes, bins), lengths x subframes (B,)).
    """

    def __init__(self, dim: int, bins: int = 257, hidden: int = 896, layers: int = 3, dropout: float = 0.5,
                 sources: int = 2, subframes: int = 1):
        super().__init__()
        self.bins, self.subframes = bins, subframes
        self.rnn = BiLSTM(dim, hidden, layers=layers, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.masks = nn.ModuleList(nn.Linear(2 * hidden, subframes * bins) for _ in range(sources))

    def forward(self, x, lengths):
        h = self.drop(self.rnn(x, lengths))
        B, T = h.shape[:2]
        masks = [F.relu(lin(h)).reshape(B, T * self.subframes, self.bins) for lin in self.masks]
        return torch.stack(masks, 1), lengths * self.subframes


def upit_mse_loss(masks: torch.Tensor, mix_mag: torch.Tensor, target_mag: torch.Tensor,
                  lengths: torch.Tensor) -> torch.Tensor:
    """Utterance-level PIT MSE on masked magnitudes (s3prl separation_stft's MSE loss).

    Per utterance and permutation: sum over valid frames and bins of
    (mask_s * |Y| - target_{p(s)})^2, summed over sources and divided by the frames; the minimum
    over permutations is averaged over utterances and sources.

    Args:
        masks: (B, C, T, F) estimated masks.
        mix_mag: (B, T, F) mixture STFT magnitude.
        target_mag: (B, C, T, F) per-source targets (e.g. phase-sensitive magnitudes).
        lengths: (B,) valid frames.
    """
    from itertools import permutations

    B, C = masks.shape[:2]
    m = length_mask(lengths, masks.shape[2]).to(masks.dtype)[:, None, :, None]  # (B, 1, T, 1)
    est = masks * mix_mag[:, None]
    # err[b, i, j] = squared error of estimate i against target j
    err = (((est[:, :, None] - target_mag[:, None]) ** 2) * m[:, :, None]).sum((-1, -2))  # (B, C, C)
    per_perm = torch.stack([sum(err[:, i, p[i]] for i in range(C)) for p in permutations(range(C))], 1)
    best = per_perm.min(1).values / lengths.to(masks.dtype).clamp(min=1)
    return best.sum() / (C * B)
