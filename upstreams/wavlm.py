"""The WavLM network family: HuBERT's front end and layers plus a gated relative position bias in
self-attention; registered as family "wavlm" (`random:wavlm_<preset>`, export/load by family).

Architecture (docs/pretrain.md section 2, checked against torchaudio 2.11 `wavlm_attention.py` /
`_get_wavlm_encoder`, HF `modeling_wavlm.py` and unilm `wavlm/modules.py`):
- Relative positions d = key - query are put into `num_buckets` buckets, half per direction
  (d > 0 adds num_buckets/2): |d| < num_buckets/4 exactly, then logarithmically up to
  `max_distance`, saturating at the last bucket of the side.
- One table `relative_attention_bias` (Embedding(num_buckets, heads)) lives in the first layer's
  attention; the un-gated bias (heads, T, T) it gives is shared by every layer.
- Every layer gates it with its own input (the attention input: after the LN for pre-LN):
  split per head, `grep_linear` Linear(head_dim, 8), sum over 2 groups of 4, sigmoid -> a, b;
  g = a * (b * grep_a - 1) + 2 with `grep_a` (1, heads, 1, 1); logits = q.k / sqrt(d) + g * bias.
- The convolutional positional embedding is kept. Padding, hidden-state and length conventions
  are HuBERT's (upstreams/hubert.py); padded keys get -inf in the float attention mask.

Parameter names follow unilm (`relative_attention_bias`, `grep_linear`, `grep_a`) and fairseq
(`self_attn.q_proj`, `fc1`, ...), so foreign checkpoints map by name; the family's checkpoint
conversions (`WAVLM.sources`) are HuBERT's with the bucket fields and these names added.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError, HarnessError
from upstreams import hubert_sources
from upstreams.base import Family, LayerHook, register_family_upstreams
from upstreams.hubert import HubertConfig, HubertEncoder, HubertUpstream
from upstreams.hubert_fairseq import HubertFairseq, HubertS3prl
from upstreams.hubert_modules import (ConvPositionalEmbedding, SelfAttention, TransformerLayer, encoder_input,
                                      run_layers)
from upstreams.hubert_sources import ATT, OUR_ATT, HubertHf, HubertTorchaudio, match


@dataclass(frozen=True)
class WavlmConfig(HubertConfig):
    """WavLM architecture: HubertConfig plus the relative position buckets; defaults = Base."""

    num_buckets: int = 320  # 160 per direction
    max_distance: int = 800  # frames (16 s at 50 Hz); farther keys share the last bucket

    def __post_init__(self):
        super().__post_init__()
        if self.num_buckets < 4 or self.num_buckets % 2:
            raise ConfigError(f"num_buckets must be even and >= 4, got {self.num_buckets}")
        if self.max_distance <= self.num_buckets // 4:
            raise ConfigError(f"max_distance must exceed num_buckets // 4 = {self.num_buckets // 4} (the exact "
                              f"range), got {self.max_distance}")

    @classmethod
    def tiny(cls) -> "WavlmConfig":
        """CPU toy: HubertConfig.tiny sizes, published bucket settings."""
        return super().tiny()

    @classmethod
    def base(cls) -> "WavlmConfig":
        """Published WavLM Base (torchaudio wavlm_base / WAVLM_BASE bundle): group-norm CNN, no conv
        bias, post-LN, 12 x 768, 12 heads, FFN 3072, 320 buckets, max distance 800."""
        return cls()

    @classmethod
    def base_plus(cls) -> "WavlmConfig":
        """Published WavLM Base+: the same network as Base (more and noisier data, p_noise 0.1)."""
        return cls()

    @classmethod
    def large(cls) -> "WavlmConfig":
        """Published WavLM Large (torchaudio wavlm_large / WAVLM_LARGE bundle): layer-norm CNN, no
        conv bias, pre-LN, 24 x 1024, 16 heads, FFN 4096. feature_grad_mult 1.0 and final_dim 768
        are the HuBERT Large recipe's (fairseq hubert_large_librivox.yaml). The published Large
        expects per-utterance normalised waveforms (bundle _normalize_waveform=True)."""
        return cls(extractor_mode="layer_norm", encoder_dim=1024, encoder_layers=24, encoder_heads=16,
                   encoder_ffn_dim=4096, layer_norm_first=True, feature_grad_mult=1.0, final_dim=768)



def relative_position_bucket(relative_positions: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    """Bidirectional bucket index of each relative position (key - query).

    Args:
        relative_positions: int64 tensor of any shape.
        num_buckets: total buckets (even); keys after the query use the upper half.
        max_distance: distances >= max_distance share the last bucket of their side.

    Returns:
        int64 tensor of the same shape, values in [0, num_buckets).
    """
    half = num_buckets // 2
    buckets = (relative_positions > 0).long() * half
    dist = relative_positions.abs()
    max_exact = half // 2
    # Same float32 expression as the references, so borderline distances land in the same bucket;
    # clamp_min keeps log() finite where the exact branch is taken anyway.
    log_ratio = torch.log(dist.clamp_min(max_exact).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (half - max_exact)).long()).clamp_max(half - 1)
    return buckets + torch.where(dist < max_exact, dist, large)


class WavlmSelfAttention(SelfAttention):
    """SelfAttention (q/k/v/out_proj, SDPA) plus the gated relative position bias.

    The first layer's instance owns the bias table (`has_relative_attention_bias`); every instance
    owns its gate (`grep_linear`, `grep_a`).
    """

    def __init__(self, dim: int, heads: int, dropout: float, num_buckets: int, max_distance: int,
                 has_relative_attention_bias: bool):
        super().__init__(dim, heads, dropout)
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, heads) if has_relative_attention_bias else None
        self.grep_linear = nn.Linear(self.head_dim, 8)
        self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))
        self.gate_proj: Optional[nn.Linear] = None  # set by fuse_for_inference

    def fuse_for_inference(self) -> None:
        """q, k, v in one Linear (SelfAttention's), and the gate's two logits per head in one
        (D, 2 heads) Linear of the whole input: `grep_linear` summed over its groups of 4 rows
        (a sum of linear maps is one), placed block-diagonally per head. Same values up to rounding."""
        super().fuse_for_inference()
        H, d, lin = self.heads, self.head_dim, self.grep_linear
        w2 = lin.weight.view(2, 4, d).sum(1)  # (2, d): the summed rows of each group
        fused = nn.Linear(H * d, H * 2, device=lin.weight.device, dtype=lin.weight.dtype)
        with torch.no_grad():
            fused.weight.zero_()
            for h in range(H):
                fused.weight[2 * h: 2 * h + 2, h * d: (h + 1) * d] = w2
            fused.bias.copy_(lin.bias.view(2, 4).sum(1).repeat(H))
        self.gate_proj = fused

    def compute_bias(self, length: int, device: torch.device) -> Tensor:
        """Un-gated bias (1, heads, T, T) for T = `length` frames: [0, h, i, j] is for query i, key j."""
        pos = torch.arange(length, dtype=torch.long, device=device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)

    def forward(  # type: ignore[override]
        self, x: Tensor, position_bias: Tensor, key_bias: Optional[Tensor] = None
    ) -> Tensor:
        """x (B, T, D) attention input; position_bias (1 or B, H, T, T) un-gated; key_bias None or
        (B, 1, 1, T) float, 0 on valid keys and -inf on padded ones. Returns (B, T, D)."""
        B, T, D = x.shape
        shape = (B, T, self.heads, self.head_dim)
        # The gate reads the attention input (not the projected query), per head: (B, H, T, 1) each.
        if self.gate_proj is not None:
            logits = self.gate_proj(x).view(B, T, self.heads, 2).transpose(1, 2)
        else:
            logits = self.grep_linear(x.view(shape).transpose(1, 2)).view(B, self.heads, T, 2, 4).sum(-1)
        a, b = torch.sigmoid(logits).chunk(2, dim=-1)
        # the (B, H, T, T) product in position_bias's dtype: the compute dtype at inference (below)
        bias = (a * (b * self.grep_a - 1.0) + 2.0).to(position_bias.dtype) * position_bias
        if key_bias is not None:
            bias = bias + key_bias
        q, k, v = self.project(x)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


def WavlmTransformerLayer(dim, heads, ffn_dim, dropout, attention_dropout, activation_dropout, layer_norm_first,
                          num_buckets, max_distance, has_relative_attention_bias) -> TransformerLayer:
    """hubert_modules.TransformerLayer with WavlmSelfAttention (same names, post-LN or pre-LN);
    forward(x, position_bias, key_bias)."""
    return TransformerLayer(dim, heads, ffn_dim, dropout, attention_dropout, activation_dropout, layer_norm_first,
                            attention=WavlmSelfAttention(dim, heads, attention_dropout, num_buckets, max_distance,
                                                         has_relative_attention_bias))


class WavlmTransformerEncoder(nn.Module):
    """Positional conv + (LN for post-LN) + WavLM layers (+ final LN for pre-LN); the interface and
    the state convention of hubert_modules.TransformerEncoder."""

    def __init__(self, c: WavlmConfig):
        super().__init__()
        self.layer_norm_first, self.layerdrop = c.layer_norm_first, c.layerdrop
        self.pos_conv = ConvPositionalEmbedding(c.encoder_dim, c.pos_conv_kernel, c.pos_conv_groups, c.dropout)
        self.layer_norm = nn.LayerNorm(c.encoder_dim)
        self.dropout = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(
            WavlmTransformerLayer(c.encoder_dim, c.encoder_heads, c.encoder_ffn_dim, c.dropout, c.attention_dropout,
                                  c.activation_dropout, c.layer_norm_first, c.num_buckets, c.max_distance,
                                  has_relative_attention_bias=(i == 0))
            for i in range(c.encoder_layers)
        )

    def forward(self, x: Tensor, padding_mask: Optional[Tensor] = None,
                num_layers: Optional[int] = None, layer_hook: Optional[LayerHook] = None) -> List[Tensor]:
        """x (B, T, D); padding_mask (B, T) bool, True on padding; returns num_layers + 1 states
        (B, T, D): [input of layer 1, output of layer 1, ...], padded frames zero. layer_hook as
        in hubert_modules.TransformerEncoder."""
        n = len(self.layers) if num_layers is None else num_layers
        x, pad = encoder_input(self, x, padding_mask)
        position_bias = key_bias = None
        if n > 0:
            # Computed once from the first layer's table, outside the layer loop: in unilm and
            # torchaudio a LayerDrop of layer 1 silently removes the bias from every other layer.
            position_bias = self.layers[0].self_attn.compute_bias(x.shape[1], x.device)
            dev, bias_dtype = x.device.type, x.dtype
            if not torch.is_grad_enabled() and torch.is_autocast_enabled(dev):
                # inference under autocast: the bias enters attention in the compute dtype anyway;
                # gating it there halves the (B, H, T, T) traffic and drops a cast per layer
                bias_dtype = torch.get_autocast_dtype(dev)
                position_bias = position_bias.to(bias_dtype)
            if pad is not None:
                key_bias = torch.zeros(pad.shape, dtype=bias_dtype, device=x.device).masked_fill(pad, float("-inf"))
                key_bias = key_bias[:, None, None, :]
        return run_layers(self, x, pad, n, layer_hook, position_bias, key_bias)


class WavlmEncoder(HubertEncoder):
    """HuBERT's CNN front end, projection and mask embedding with the WavLM transformer."""

    @staticmethod
    def build_transformer(c: WavlmConfig) -> nn.Module:  # type: ignore[override]
        return WavlmTransformerEncoder(c)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """HuBERT's init (Linear N(0, 0.02), bias 0, which covers `grep_linear`) plus unilm's
        init_bert_params for the bias table (Embedding N(0, 0.02)) and `grep_a` = 1 (unilm,
        torchaudio and HF all start it at ones)."""
        super().reset_parameters()
        for m in self.modules():
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, WavlmSelfAttention):
                nn.init.ones_(m.grep_a)


class WavlmUpstream(HubertUpstream):
    """A WavLM encoder behind the Upstream interface (L+1 states of size D)."""

    family = "wavlm"


# ----------------------------------------------------------------------------- checkpoint conversions

_TA_ATT = [  # torchaudio WavLMSelfAttention (fused in_proj handled in from_torchaudio_state_dict)
    (ATT + r"attention\.out_proj\.(weight|bias)", OUR_ATT + r"out_proj.\2"),
    (ATT + r"rel_attn_embed\.weight", OUR_ATT + "relative_attention_bias.weight"),
    (ATT + r"gru_rel_pos_linear\.(weight|bias)", OUR_ATT + r"grep_linear.\2"),
    (ATT + r"gru_rel_pos_const", OUR_ATT + "grep_a"),
]
_HF_ATT = _TA_ATT[1:]  # transformers' WavLMAttention: the same names, q/k/v/out as HubertModel's
_FAIRSEQ_ATT = [(r"(encoder\.layers\.\d+\.self_attn\.(?:relative_attention_bias\.weight|grep_linear\.(?:weight|bias)"
                 r"|grep_a))", r"\1")]  # unilm's names are ours


def from_torchaudio_state_dict(sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Map a torchaudio `wavlm_model` (Wav2Vec2Model) state dict to our names.

    torchaudio keeps nn.MultiheadAttention's fused `in_proj_weight` (3D, D) / `in_proj_bias` (3D):
    rows [0, D) are q, [D, 2D) k, [2D, 3D) v. Everything outside the attention maps as for HuBERT
    (upstreams.hubert_sources.from_torchaudio_state_dict: `aux.*` skipped, weight norm in either
    naming). A Wav2Vec2Model has no mask embedding: load with strict=False (only `mask_emb` missing).

    Raises:
        HarnessError: naming the first key that has no counterpart.
    """
    out: Dict[str, Tensor] = {}
    rest: Dict[str, Tensor] = {}
    for key, value in sd.items():
        k = key[len("wav2vec2."):] if key.startswith("wav2vec2.") else key
        m = re.fullmatch(ATT + r"attention\.in_proj_(weight|bias)", k)
        if m:
            for name, part in zip("qkv", value.chunk(3, dim=0)):
                out[f"encoder.layers.{m.group(1)}.self_attn.{name}_proj.{m.group(2)}"] = part
        elif (ours := match(k, _TA_ATT)) is not None:
            out[ours] = value
        elif re.match(ATT, k):
            raise HarnessError(f"torchaudio state dict: unknown key {key!r}")
        else:
            rest[key] = value
    out.update(hubert_sources.from_torchaudio_state_dict(rest))
    return out


class WavlmS3prl(HubertS3prl):
    """The checkpoint of s3prl's `wavlm_local` (unilm's layout: cfg, model)."""

    entry = "wavlm_local"

    def build(self, fields: Dict[str, Any], c: WavlmConfig) -> Tuple[nn.Module, Any]:
        from harness import s3prl_compat

        wm = s3prl_compat.module("s3prl.upstream.wavlm.WavLM")
        cfg = {**fields, "relative_position_embedding": True, "num_buckets": c.num_buckets,
               "max_distance": c.max_distance, "gru_rel_pos": True, "normalize": c.normalize}
        return wm.WavLM(wm.WavLMConfig(cfg)), lambda w: {"cfg": cfg, "model": w}


def _sources() -> Dict[str, Any]:
    """HuBERT's conversions (upstreams/hubert_sources.py, hubert_fairseq.py) plus the bucket
    fields and the gated relative position bias's names."""
    buckets = [("num_buckets", "num_buckets"), ("max_distance", "max_distance")]
    fairseq = HubertFairseq(WavlmConfig, relative_position=True, names=dict(buckets),
                            requires=[("gru_rel_pos", (True,))], patterns=_FAIRSEQ_ATT,
                            defaults={"max_distance": 1280})  # unilm WavLMConfig's, where ours is 800
    return {"hf": HubertHf(WavlmConfig, "wavlm", "WavLMModel", "WavLMConfig",
                           fields=[("num_buckets", "num_buckets"), ("max_distance", "max_bucket_distance")],
                           patterns=_HF_ATT),
            "fairseq": fairseq,
            "torchaudio": HubertTorchaudio(WavlmConfig, ("wavlm_",), from_torchaudio_state_dict, buckets),
            "s3prl": WavlmS3prl(fairseq)}


WAVLM = register_family_upstreams(Family(
    name="wavlm", config_cls=WavlmConfig,
    presets={"tiny": WavlmConfig.tiny, "base": WavlmConfig.base, "base_plus": WavlmConfig.base_plus,
             "large": WavlmConfig.large},
    encoder_cls=WavlmEncoder, upstream_cls=WavlmUpstream, sources=_sources()))
