"""The HuBERT network's front ends (used by upstreams/hubert.py; registers nothing): the waveform
CNN and the log-Mel filterbank, plus the length arithmetic of unpadded convs.

Module names follow fairseq's HuBERT (`feature_extractor.conv_layers.N.conv`), so foreign
checkpoints map by name. Every block takes per-item valid lengths, so that each item of a
zero-padded batch gives the same valid frames as the item run alone.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

def valid_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B, max_len) bool, True on valid frames (index < length)."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def conv_out_lengths(lengths: Tensor, kernels: Sequence[int], strides: Sequence[int]) -> Tensor:
    """Frames after a stack of unpadded convs, conv by conv: floor((n - k) / s) + 1, >= 0."""
    n = torch.as_tensor(lengths, dtype=torch.long)
    for k, s in zip(kernels, strides):
        n = torch.clamp(torch.div(n - k, s, rounding_mode="floor") + 1, min=0)
    return n


def receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Samples seen by one output frame (400 for the HuBERT CNN)."""
    rf, jump = 1, 1
    for k, s in zip(kernels, strides):
        rf += (k - 1) * jump
        jump *= s
    return rf


class GradMultiply(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by `scale` (fairseq feature_grad_mult)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad * ctx.scale, None


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm over (channels of a group, time) whose statistics use valid frames only.

    Input (B, C, T) plus lengths (B,). With lengths None, or every item full length, it is the
    plain GroupNorm. Padded frames of the output are zero. Statistics are computed in fp32.
    """

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None) -> Tensor:  # type: ignore[override]
        B, C, T = x.shape
        if lengths is None or bool((lengths >= T).all()):
            return super().forward(x)
        m = valid_mask(lengths, T)[:, None, None, :].to(torch.float32)  # B,1,1,T
        G = self.num_groups
        xf = x.float().reshape(B, G, C // G, T)
        n = (m.sum(-1, keepdim=True) * (C // G)).clamp_min(1.0)
        mean = (xf * m).sum((2, 3), keepdim=True) / n
        var = (((xf - mean) * m) ** 2).sum((2, 3), keepdim=True) / n
        y = ((xf - mean) * torch.rsqrt(var + self.eps) * m).reshape(B, C, T)
        if self.affine:
            y = (y * self.weight.float()[None, :, None] + self.bias.float()[None, :, None]) * m[:, 0]
        return y.to(x.dtype)


TIME_BLOCK = 256  # frames per block of the CPU's time-major -> channel-major copy


def channel_major(x: Tensor, dtype: Optional[torch.dtype] = None) -> Tensor:
    """(B, T, C) -> contiguous (B, C, T) copy, in `dtype` (default x's).

    On the CPU the copy goes block by block of TIME_BLOCK frames: PyTorch's copy kernel is slow
    in this direction over long sequences (18 ms for 4 x 12,799 x 128 bf16 on 2 cores, 3.7 ms
    blocked, 2.3 ms for the opposite direction), and the result is bit-identical.
    """
    B, T, C = x.shape
    out = x.new_empty((B, C, T), dtype=dtype or x.dtype)
    if x.device.type != "cpu":
        return out.copy_(x.transpose(1, 2))
    for t0 in range(0, T, TIME_BLOCK):
        out[:, :, t0:t0 + TIME_BLOCK].copy_(x[:, t0:t0 + TIME_BLOCK].transpose(1, 2))
    return out


class _TimeMajor(torch.autograd.Function):
    """(B, C, T) -> contiguous (B, T, C) in `dtype`; the backward is `channel_major`."""

    @staticmethod
    def forward(ctx, x: Tensor, dtype: torch.dtype) -> Tensor:
        ctx.in_dtype = x.dtype
        B, C, T = x.shape
        return x.new_empty((B, T, C), dtype=dtype).copy_(x.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: Tensor):
        return channel_major(grad.contiguous(), ctx.in_dtype), None


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype autocast would run a conv in on x's device (x's own dtype without autocast)."""
    dev = x.device.type
    return torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype


class ConvBlock(nn.Module):
    """Conv1d -> (norm) -> GELU, time-major in and out: (B, T_in, C_in) -> (B, T_out, C_out).

    norm: "group" (masked GroupNorm, one group per channel; first block only), "layer"
    (LayerNorm over channels, per frame) or None. The weights are an nn.Conv1d's (checkpoints map
    by name), but the computation keeps time-major (channels-last) tensors throughout: oneDNN
    convolves channels-last, and on channel-major tensors PyTorch transposes each conv's output
    and input gradient back with a copy that is slow in that direction (19 ms of a 153 ms
    hubert_tiny bf16 step for layer 2's input gradient alone, 2 CPU cores). The first block
    (one input channel) is a matmul over strided frames of the waveform; the GroupNorm runs
    channel-major, because PyTorch's channels-last GroupNorm backward is slow on the CPU.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, norm: Optional[str]):
        super().__init__()
        if norm == "group" and c_in != 1:
            raise ValueError("the GroupNorm conv block must be the first (one input channel)")
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            self.norm: Optional[nn.Module] = MaskedGroupNorm(c_out, c_out, affine=True)
        elif norm == "layer":
            self.norm = nn.LayerNorm(c_out)
        else:
            self.norm = None

    def forward(self, x: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        lengths_out = conv_out_lengths(lengths, [self.kernel], [self.stride])
        w, b = self.conv.weight, self.conv.bias
        if self.conv.in_channels == 1:
            frames = x[..., 0].unfold(1, self.kernel, self.stride)  # (B, T, kernel), a strided view
            w2 = w[:, 0, :]  # (C, kernel)
            if self.norm_kind == "group" and not torch.is_grad_enabled():
                return self._group_norm_folded(frames, w2, lengths_out), lengths_out
            if self.norm_kind == "group":
                y = torch.bmm(w2.expand(frames.shape[0], -1, -1), frames.transpose(1, 2))  # (B, C, T)
                if b is not None:
                    y = y + b[:, None]
                y = F.gelu(self.norm(y, lengths_out))
                return _TimeMajor.apply(y, compute_dtype(y)), lengths_out
            y = F.linear(frames, w2, b)  # (B, T, C)
        else:
            y = F.conv2d(x.transpose(1, 2).unsqueeze(2), w.unsqueeze(2), b, stride=(1, self.stride))
            y = y.squeeze(2).transpose(1, 2).contiguous()  # channels-last out: already contiguous
        if self.norm_kind == "layer":
            y = self.norm(y)
        return F.gelu(y), lengths_out


    def _group_norm_folded(self, frames: Tensor, w: Tensor, lengths: Tensor) -> Tensor:
        """The first block without autograd: conv -> per-channel GroupNorm -> GELU as one product.

        A channel's output is linear in the frames, so its mean and variance over an item's
        valid frames follow from the frames' own (kernel-sized) mean and covariance: the
        normalised conv is the centred frames times the weight scaled per item and channel, plus
        the norm's bias, computed time-major in one batched matmul. This skips the (B, C, T)
        conv output, its float32 normalisation and the copy to time-major (4 x 8 s of HuBERT
        Base in bf16 on 2 cores: 400 ms -> 270 ms full length, 1.7 s -> 0.3 s padded). The
        statistics are exact up to rounding (1e-6 relative in float32); the conv's bias cancels.

        Args:
            frames: (B, T, kernel) strided waveform frames.
            w: (C, kernel) conv weight.
            lengths: (B,) valid frames.

        Returns:
            (B, T, C) in the compute dtype, padded frames zero.
        """
        out_dtype = compute_dtype(frames) if w.dtype == torch.float32 else w.dtype
        B, T, _ = frames.shape
        m = valid_mask(lengths, T).to(torch.float32)[..., None]  # (B, T, 1)
        n = lengths.to(torch.float32).clamp_min(1.0)[:, None]  # (B, 1)
        f = frames.float()
        centred = (f - (f * m).sum(1, keepdim=True) / n[..., None]) * m  # (B, T, kernel)
        cov = centred.transpose(1, 2) @ centred / n[..., None]  # (B, kernel, kernel)
        wf = w.float()
        var = torch.einsum("ck,bkl,cl->bc", wf, cov, wf)  # (B, C)
        scale = torch.rsqrt(var + self.norm.eps) * self.norm.weight.float()  # (B, C)
        w_item = (wf[None] * scale[..., None]).transpose(1, 2)  # (B, kernel, C)
        shift = self.norm.bias.float().expand(B, 1, -1)
        with torch.autocast(device_type=frames.device.type, enabled=False):
            y = F.gelu(torch.baddbmm(shift.to(out_dtype), centred.to(out_dtype), w_item.to(out_dtype)))
        return y.mul_(m.to(out_dtype)) if bool((lengths < T).any()) else y


class ConvFeatureExtractor(nn.Module):
    """The waveform CNN: (B, S) samples -> (B, T, C) frames plus (B,) valid frame counts."""

    def __init__(self, channels, kernels, strides, bias: bool, mode: str):
        super().__init__()
        layers, c_in = [], 1
        for i, (c, k, s) in enumerate(zip(channels, kernels, strides)):
            norm = "group" if (mode == "group_norm" and i == 0) else ("layer" if mode == "layer_norm" else None)
            layers.append(ConvBlock(c_in, c, k, s, bias, norm))
            c_in = c
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wavs: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        x = wavs.unsqueeze(-1)  # (B, S, 1): time-major like every block's input
        for layer in self.conv_layers:
            x, lengths = layer(x, lengths)
        return x, lengths


class FbankFrontEnd(nn.Module):
    """Log-Mel filterbank front end (MelHuBERT, Lin et al. 2023): no learned weights.

    `n_mels` log-Mel energies every 10 ms (25 ms Hamming window, 400-point FFT, HTK Mel scale,
    20 Hz - 8 kHz), `stack` consecutive frames concatenated per output frame, so that a 20 ms
    model (stack 2) gives exactly the CNN's frame count, floor((n - 400) / 320) + 1, and the
    label, mask and length machinery is the same for both front ends. The last output frame may
    lack its second 10 ms frame; that half is zero (as MelHuBERT pads). Frames of an item depend
    only on its own valid samples. Normalisation is left to the encoder's LayerNorm (per frame).

    MelHuBERT normalises with corpus statistics instead; a per-frame LayerNorm needs none and
    keeps each frame's spectral shape (speaker timbre), which per-utterance CMVN would remove.
    """

    def __init__(self, n_mels: int, stack: int, sample_rate: int = 16000):
        super().__init__()
        import torchaudio.functional as AF  # noqa: PLC0415 (only models with this front end need it)

        self.n_mels, self.stack, self.win, self.hop = n_mels, stack, 400, 160
        with torch.device("cpu"):  # fixed tables, also when the model is built on the meta device (catalog)
            window = torch.hamming_window(self.win, periodic=False)
            fb = AF.melscale_fbanks(self.win // 2 + 1, 20.0, sample_rate / 2, n_mels, sample_rate, None, "htk")
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel", fb, persistent=False)  # (freq, n_mels)

    @property
    def out_dim(self) -> int:
        return self.n_mels * self.stack

    def forward(self, wavs: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """wavs (B, S) float (S >= 400), lengths (B,) samples -> (B, T, n_mels * stack) log-Mel
        frames (padded frames zero) and (B,) valid output frames."""
        spec = torch.stft(wavs.float(), self.win, self.hop, self.win, self.window, center=False,
                          return_complex=True)  # (B, F, T10)
        logmel = (spec.abs().pow(2).transpose(1, 2) @ self.mel).clamp_min(1e-10).log()  # (B, T10, M)
        out_len = conv_out_lengths(lengths, [self.win], [self.hop * self.stack])
        T = int(out_len.max())
        need = T * self.stack
        logmel = F.pad(logmel, (0, 0, 0, max(0, need - logmel.shape[1])))[:, :need]
        valid10 = valid_mask(conv_out_lengths(lengths, [self.win], [self.hop]), need)
        logmel = logmel * valid10[..., None]
        return logmel.reshape(logmel.shape[0], T, self.out_dim).to(wavs.dtype), out_len
