"""Heads shared by tasks (docs/protocol.md section 3). Every head: forward(x (B, T, D), lengths (B,))."""

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
