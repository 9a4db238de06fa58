"""Building blocks of the HuBERT transformer (used by upstreams/hubert.py and wavlm.py; registers
nothing); the front ends are in upstreams/hubert_frontend.py.

Module names follow fairseq's HuBERT where it is practical (`self_attn`, `fc1`, `fc2`,
`self_attn_layer_norm`, `final_layer_norm`, `pos_conv`), so foreign checkpoints map by name.
Every block that mixes information over time takes per-item valid lengths, so that each item of a
zero-padded batch gives the same valid frames as the item run alone.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from upstreams.base import LayerHook

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

    def fuse_for_inference(self) -> None:
        """Replace the weight-normalised conv by a plain one holding its current weight (for an
        inference copy, harness.extraction.for_compute): the weight is then not recomputed from
        its parts on every call. A new module, because removing a parametrisation from a deep
        copy also removes it from the original (they share the parametrised class)."""
        old = self.conv
        plain = nn.Conv1d(old.in_channels, old.out_channels, old.kernel_size[0], padding=old.padding[0],
                          groups=old.groups, device=old.bias.device, dtype=old.bias.dtype)
        with torch.no_grad():
            plain.weight.copy_(old.weight)
            plain.bias.copy_(old.bias)
        plain.keep_float32 = True  # the CPU's FFT path computes in float32 (for_compute leaves it)
        self.conv = plain

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv
        if x.device.type == "cpu" and conv.weight.shape[1] <= FFT_MAX_GROUP_CHANNELS:
            y = grouped_conv_fft(x.transpose(1, 2), conv.weight, conv.bias, conv.padding[0]).to(x.dtype)
        elif x.device.type == "cpu":
            # x is time-major, so its (B, C, 1, T) view is a channels-last 2-D input: oneDNN takes
            # it without a copy (HuBERT Base, 4 x 399 frames, bf16: 92 ms against conv1d's 188)
            y = F.conv2d(x.transpose(1, 2).unsqueeze(2), conv.weight.unsqueeze(2), conv.bias,
                         padding=(0, conv.padding[0]), groups=conv.groups).squeeze(2)
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
        self.qkv_proj: Optional[nn.Linear] = None  # set by fuse_for_inference on inference copies

    def fuse_for_inference(self) -> None:
        """Project q, k and v with one Linear from here on (for an inference copy, made by
        harness.extraction.for_compute; the separate projections stay, unused). Under autocast the
        input is then cast once instead of three times, and one (D, 3D) product replaces three."""
        fused = nn.Linear(self.q_proj.in_features, 3 * self.q_proj.out_features,
                          device=self.q_proj.weight.device, dtype=self.q_proj.weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]))
            fused.bias.copy_(torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]))
        self.qkv_proj = fused

    def project(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """q, k, v (B, H, T, d) of x (B, T, D)."""
        B, T, _ = x.shape
        if self.qkv_proj is not None:
            # one copy to (3, B, H, T, d): SDPA's CPU kernel is faster on contiguous heads
            # (4 x 12 x 399 x 64 bf16: 16.8 ms against 17.4 on the strided views, 3.0 / 5.0 at 149)
            qkv = self.qkv_proj(x).view(B, T, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).contiguous()
            return qkv[0], qkv[1], qkv[2]
        shape = (B, T, self.heads, self.head_dim)
        return tuple(p(x).view(shape).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))

    def forward(self, x: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        B, T, D = x.shape
        q, k, v = self.project(x)
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
