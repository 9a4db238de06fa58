"""Building blocks of the HuBERT network (used by upstreams/hubert.py; registers nothing).

Module names follow fairseq's HuBERT where it is practical (`self_attn`, `fc1`, `fc2`,
`self_attn_layer_norm`, `final_layer_norm`, `pos_conv`), so foreign checkpoints map by name.
Every block that mixes information over time takes per-item valid lengths, so that each item of a
zero-padded batch gives the same valid frames as the item run alone.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from upstreams.base import LayerHook


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


#: on the CPU, a grouped conv with at most this many input channels per group runs through the
#: FFT (`grouped_conv_fft`): oneDNN's grouped conv with HuBERT's 128-tap kernel is slow at few
#: channels per group (bench/pretrain_step.py, hubert_tiny's 8 per group: forward + backward of
#: the positional conv 23 ms direct in bf16, 9 ms through the FFT; at Base's 48 per group the FFT
#: is 2.5x slower, hence the bound)
FFT_MAX_GROUP_CHANNELS = 16


def fast_fft_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (the lengths FFT libraries transform fastest)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def grouped_conv_fft(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: int) -> Tensor:
    """`F.conv1d(x, weight, bias, padding=padding, groups=C // weight.shape[1])`, computed in fp32
    as a product of real FFTs (exact up to fp32 rounding, ~1e-6).

    Args:
        x: (B, C, T) input.
        weight: (C_out, C // groups, K) kernel.
        bias: (C_out,) or None.
        padding: zeros added at both ends of time.

    Returns:
        (B, C_out, T + 2 * padding - K + 1) in fp32.
    """
    B, C, T = x.shape
    C_out, per_group, K = weight.shape
    G = C // per_group
    n = fast_fft_length(T + 2 * padding + K)  # >= the full linear convolution's length: no circular wrap
    with torch.autocast(device_type=x.device.type, enabled=False):
        X = torch.fft.rfft(F.pad(x.float(), (padding, padding)), n=n).reshape(B, G, per_group, -1)
        # conv1d is a cross-correlation: flip the kernel to make it a convolution
        W = torch.fft.rfft(weight.float().flip(-1), n=n).reshape(G, C_out // G, per_group, -1)
        Y = torch.einsum("bgif,goif->bgof", X, W).reshape(B, C_out, -1)
        y = torch.fft.irfft(Y, n=n)[..., K - 1: K - 1 + T + 2 * padding - K + 1]
        return y if bias is None else y + bias.float()[:, None]


class ConvPositionalEmbedding(nn.Module):
    """Grouped conv over time with weight norm (dim 2), "same" padding, last frame dropped when
    the kernel is even, GELU. Init as fairseq: N(0, sqrt(4 (1 - dropout) / (k D))), bias 0.
    On the CPU with few channels per group the conv runs through the FFT (`grouped_conv_fft`)."""

    def __init__(self, dim: int, kernel: int, groups: int, dropout: float):
        super().__init__()
        conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4 * (1.0 - dropout) / (kernel * dim)))
        nn.init.zeros_(conv.bias)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.num_remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv
        if x.device.type == "cpu" and conv.weight.shape[1] <= FFT_MAX_GROUP_CHANNELS:
            y = grouped_conv_fft(x.transpose(1, 2), conv.weight, conv.bias, conv.padding[0]).to(x.dtype)
        else:
            y = conv(x.transpose(1, 2))
        if self.num_remove:
            y = y[..., : -self.num_remove]
        return F.gelu(y).transpose(1, 2)


#: on the CPU under bf16 autocast, sequences up to this many frames attend through explicit
#: matmuls and softmax rather than F.scaled_dot_product_attention, whose CPU flash kernel is the
#: slower one there (forward + backward, 4 x 199 frames: 4 heads of 32 dims 6.1 ms SDPA, 3.2 ms
#: explicit; 12 heads of 64 dims 22 ms, 10 ms); at 400 frames neither wins throughout, and in
#: fp32 SDPA is as fast or faster
EXPLICIT_ATTENTION_MAX_FRAMES = 256


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Optional[Tensor], dropout: float) -> Tensor:
    """softmax(q k^T / sqrt(d)) v with the softmax in fp32, as F.scaled_dot_product_attention.

    Args:
        q, k, v: (B, H, T, d).
        attn_mask: None or (B, 1, 1, T) bool, True on keys that may be attended to.
        dropout: dropout probability on the attention weights (0 in eval).

    Returns:
        (B, H, T, d).
    """
    s = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf"))
    a = torch.softmax(s.float(), dim=-1).to(v.dtype)
    return F.dropout(a, dropout) @ v if dropout > 0 else a @ v


class SelfAttention(nn.Module):
    """Multi-head self attention through F.scaled_dot_product_attention, or `explicit_attention`
    where that is faster (short sequences on the CPU in bf16).

    attn_mask: None or (B, 1, 1, T) bool, True on keys that may be attended to.
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        B, T, D = x.shape
        shape = (B, T, self.heads, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        if (x.device.type == "cpu" and T <= EXPLICIT_ATTENTION_MAX_FRAMES and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16):
            y = explicit_attention(q, k, v, attn_mask, p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


class TransformerLayer(nn.Module):
    """One encoder layer; post-LN (Base) or pre-LN (Large) as in fairseq."""

    def __init__(self, dim, heads, ffn_dim, dropout, attention_dropout, activation_dropout, layer_norm_first,
                 attention: Optional[nn.Module] = None):
        super().__init__()
        self.layer_norm_first = layer_norm_first
        # another family's attention (WavLM's gated relative bias) slots in under the same name
        self.self_attn = attention if attention is not None else SelfAttention(dim, heads, attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(activation_dropout)
        self.dropout3 = nn.Dropout(dropout)

    def _ffn(self, x: Tensor) -> Tensor:
        return self.dropout3(self.fc2(self.dropout2(F.gelu(self.fc1(x)))))

    def forward(self, x: Tensor, *attn_args) -> Tensor:
        """x (B, T, D); attn_args go to the attention (attn_mask for SelfAttention)."""
        if self.layer_norm_first:
            x = x + self.dropout1(self.self_attn(self.self_attn_layer_norm(x), *attn_args))
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x + self.dropout1(self.self_attn(x, *attn_args)))
        return self.final_layer_norm(x + self._ffn(x))


def encoder_input(enc: nn.Module, x: Tensor, padding_mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
    """The transformer stack's input (its state 0) from x (B, T, D): padded frames zeroed (the pos
    conv then sees an item as if it were alone), + positional conv, LN for post-LN, dropout; for
    any stack with `pos_conv`, `layer_norm`, `layer_norm_first` and `dropout` (HuBERT's, WavLM's).
    Returns (x, padding mask or None when nothing is padded)."""
    pad = padding_mask if (padding_mask is not None and bool(padding_mask.any())) else None
    if pad is not None:
        x = x.masked_fill(pad[..., None], 0.0)
    x = x + enc.pos_conv(x)
    if not enc.layer_norm_first:
        x = enc.layer_norm(x)
    return enc.dropout(x), pad


def run_layers(enc: nn.Module, x: Tensor, pad: Optional[Tensor], n: int, layer_hook: Optional[LayerHook],
               *layer_args) -> List[Tensor]:
    """States 0..n of a stack (`layers`, `layerdrop`, `layer_norm_first`, `layer_norm`) from its
    input x (B, T, D): each of the first n layers runs on (x, *layer_args) unless LayerDrop skips
    it, layer_hook(i, x) follows every layer that ran; the final LN of a pre-LN stack when all
    layers ran; padded frames (pad (B, T) True) zero in every state."""
    states = [x]
    for i, layer in enumerate(enc.layers[:n], 1):
        if not (enc.training and enc.layerdrop > 0 and torch.rand(()).item() < enc.layerdrop):
            x = layer(x, *layer_args)
            if layer_hook is not None:
                x = layer_hook(i, x)
        states.append(x)
    if enc.layer_norm_first and n == len(enc.layers):
        states[-1] = enc.layer_norm(x)
    if pad is not None:
        states = [s.masked_fill(pad[..., None], 0.0) for s in states]
    return states


class TransformerEncoder(nn.Module):
    """Positional conv + (LN for post-LN) + layers (+ final LN for pre-LN).

    forward returns num_layers + 1 states: [input of layer 1, output of layer 1, ...]; with all
    layers run, the last state is the encoder output (after the final LN for pre-LN).
    """

    def __init__(self, dim, layers, heads, ffn_dim, pos_kernel, pos_groups, dropout,
                 attention_dropout, activation_dropout, layer_norm_first, layerdrop):
        super().__init__()
        self.layer_norm_first, self.layerdrop = layer_norm_first, layerdrop
        self.pos_conv = ConvPositionalEmbedding(dim, pos_kernel, pos_groups, dropout)
        self.layer_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(dim, heads, ffn_dim, dropout, attention_dropout, activation_dropout, layer_norm_first)
            for _ in range(layers)
        )

    def forward(self, x: Tensor, padding_mask: Optional[Tensor] = None, num_layers: Optional[int] = None,
                layer_hook: Optional[LayerHook] = None) -> List[Tensor]:
        """x (B, T, D); padding_mask (B, T) bool, True on padding; layer_hook(i, x) -> x is called
        on the output of layer i (1-based) of every layer that ran (not on one LayerDrop skipped),
        and what it returns is the state and the next layer's input (MS-HuBERT's swap)."""
        n = len(self.layers) if num_layers is None else num_layers
        x, pad = encoder_input(self, x, padding_mask)
        attn_mask = None if pad is None else (~pad)[:, None, None, :]
        return run_layers(self, x, pad, n, layer_hook, attn_mask)
