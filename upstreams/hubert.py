"""The HuBERT network family: config, encoder, upstream adapter, checkpoint conversions; registered
as family "hubert" (upstreams/base.py: export/load keyed by family, `random:hubert_<preset>`).

Architecture and init follow docs/pretrain.md section 1 (fairseq HuBERT). The pre-training heads
(harness/pretrain/objectives) wrap the encoder and use `mask=`, `EncoderOutput.features` and
`.padding_mask`.

Conventions
- Frames: lengths are computed conv by conv, floor((n - k) / s) + 1 (1 s -> 49 frames, 20 ms).
- Short input: a waveform shorter than the CNN receptive field (400 samples) is zero-padded to
  400 samples, so any non-empty input gives at least 1 frame; an empty item is an error.
- Padding: samples past `wav_lens` are ignored (zeroed); the first-layer GroupNorm uses valid
  frames only, padded frames are zeroed before the positional conv, attention masks padded keys,
  and padded frames of every returned state are zero. Each item of a padded batch therefore
  gives the same valid frames as the item alone.
- Hidden states (docs/protocol.md section 1): L+1 states; 0 = input of the first layer (after pos conv, and after
  LN for post-LN), L = encoder output (after the final LN for pre-LN models).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from harness.errors import ConfigError, HarnessError
from upstreams.base import (
    RANDOM_SEED,
    SAMPLE_RATE,
    EncoderOutput,
    Family,
    HiddenStates,
    LayerHook,
    Upstream,
    UpstreamSpec,
    register_family_upstreams,
)
from upstreams.hubert_fairseq import HubertFairseq, HubertS3prl
from upstreams.hubert_frontend import (
    ConvFeatureExtractor,
    FbankFrontEnd,
    GradMultiply,
    conv_out_lengths,
    receptive_field,
    valid_mask,
)
from upstreams.hubert_modules import TransformerEncoder
from upstreams.hubert_sources import HubertHf, HubertTorchaudio


@dataclass(frozen=True)
class HubertConfig:
    """HuBERT architecture; defaults = the published Base model (fairseq hubert_base)."""

    conv_channels: Tuple[int, ...] = (512,) * 7
    conv_kernels: Tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_strides: Tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    extractor_mode: str = "group_norm"  # GroupNorm on the first conv only; "layer_norm": LN on all
    encoder_dim: int = 768
    encoder_layers: int = 12
    encoder_heads: int = 12
    encoder_ffn_dim: int = 3072
    layer_norm_first: bool = False  # False: post-LN (Base); True: pre-LN (Large)
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    dropout_input: float = 0.1  # after the projection to encoder_dim
    layerdrop: float = 0.05
    feature_grad_mult: float = 0.1  # 0 freezes the CNN (no grad)
    final_dim: int = 256  # used by the pre-training wrapper, not by the encoder
    normalize: bool = False  # zero mean, unit variance per waveform (fairseq task.normalize; mHuBERT-147)
    # "cnn": the waveform CNN above; "fbank": log-Mel frames (MelHuBERT), no CNN weights. The
    # conv_* fields then only fix the frame geometry, which must be the 20 ms CNN's (400 / 320).
    frontend: str = "cnn"
    fbank_mels: int = 40  # log-Mel bins per 10 ms frame (frontend "fbank"); 2 frames are stacked

    def __post_init__(self):
        for name in ("conv_channels", "conv_kernels", "conv_strides"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not len(self.conv_channels) == len(self.conv_kernels) == len(self.conv_strides) > 0:
            raise ConfigError("conv_channels, conv_kernels and conv_strides must have the same length")
        if self.extractor_mode not in ("group_norm", "layer_norm"):
            raise ConfigError(f"extractor_mode must be 'group_norm' or 'layer_norm', got {self.extractor_mode!r}")
        if self.encoder_dim % self.encoder_heads or self.encoder_dim % self.pos_conv_groups:
            raise ConfigError("encoder_dim must be divisible by encoder_heads and pos_conv_groups")
        if self.frontend not in ("cnn", "fbank"):
            raise ConfigError(f"frontend must be 'cnn' or 'fbank', got {self.frontend!r}")
        if self.frontend == "fbank" and (self.receptive_field != 400 or self.stride % 160):
            raise ConfigError(f"frontend 'fbank' needs the 20 ms frame geometry (receptive field 400, "
                              f"stride a multiple of 160 samples), got {self.receptive_field} / {self.stride}")

    @classmethod
    def base(cls) -> "HubertConfig":
        return cls()

    @classmethod
    def tiny(cls) -> "HubertConfig":
        """CPU toy (docs/pretrain.md section 7): same kernels/strides (20 ms), 128 channels, 4 x 128, 4 heads."""
        return cls(conv_channels=(128,) * 7, encoder_dim=128, encoder_layers=4, encoder_heads=4,
                   encoder_ffn_dim=512, final_dim=64)

    @classmethod
    def small(cls) -> "HubertConfig":
        """CPU model on the log-Mel front end (MelHuBERT): 6 x 256, 4 heads, FFN 1024, no CNN,
        so that the transformer gets the whole CPU budget (the tiny CNN costs most of a tiny
        model's step)."""
        return cls(conv_channels=(128,) * 7, encoder_dim=256, encoder_layers=6, encoder_heads=4,
                   encoder_ffn_dim=1024, final_dim=128, frontend="fbank")

    def at_frame_ms(self, ms: int) -> "HubertConfig":
        """The same network with `ms` ms frames (CV-HuBERT's 40 / 80 ms models): the last CNN
        layer's stride is multiplied by ms / 20 and its kernel set equal to that stride, so
        consecutive frames still tile the input (a kernel shorter than its stride would skip
        samples). Everything else, parameter count included up to that kernel, is unchanged.

        UNVERIFIED against the CV-HuBERT configs: the text of Shi et al. (Interspeech 2023,
        arXiv 2306.01084) was not readable from here; which CNN layer the authors changed is our
        choice (the last one: the cheapest change that keeps 20 ms's receptive field at the front).
        """
        base_ms = 1000 * self.stride // SAMPLE_RATE
        if ms % base_ms or ms < base_ms:
            raise ConfigError(f"frame length {ms} ms is not a whole multiple of this config's {base_ms} ms")
        factor = ms // base_ms
        s = self.conv_strides[-1] * factor
        return replace(self, conv_kernels=self.conv_kernels[:-1] + (max(self.conv_kernels[-1], s),),
                       conv_strides=self.conv_strides[:-1] + (s,))

    def num_frames(self, num_samples) -> Tensor:
        """Valid frames for `num_samples` samples: conv by conv; short non-empty inputs count as
        the receptive field (400 samples), empty ones give 0."""
        n = torch.as_tensor(num_samples, dtype=torch.long)
        n = torch.where(n > 0, n.clamp_min(self.receptive_field), n.clamp_min(0))
        return conv_out_lengths(n, self.conv_kernels, self.conv_strides)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.conv_kernels, self.conv_strides)

    @property
    def stride(self) -> int:
        s = 1
        for v in self.conv_strides:
            s *= v
        return s

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in fields(cls)}
        for k in d:
            if k not in known:
                raise ConfigError(f"unknown {cls.__name__} key {k!r}")
        return cls(**d)


class HubertEncoder(nn.Module):
    """CNN (or log-Mel frames) -> LayerNorm -> Linear(C, D) -> dropout -> (mask embedding) ->
    transformer encoder.

    The `Encoder` of upstreams/base.py. Subclasses (other families on the same front end, e.g.
    WavLM) override `build_transformer`. Objectives that run the transformer on something other
    than one masked view (MS-HuBERT's two swapped views) call `front_end`, `apply_mask` and
    `transformer_states` themselves.
    """

    def __init__(self, config: HubertConfig):
        super().__init__()
        c = config
        self.config = c
        if c.frontend == "fbank":
            self.feature_extractor: nn.Module = FbankFrontEnd(c.fbank_mels, c.stride // 160, SAMPLE_RATE)
            feat_dim = self.feature_extractor.out_dim
        else:
            self.feature_extractor = ConvFeatureExtractor(c.conv_channels, c.conv_kernels, c.conv_strides,
                                                          c.conv_bias, c.extractor_mode)
            feat_dim = c.conv_channels[-1]
        self.layer_norm = nn.LayerNorm(feat_dim)
        self.post_extract_proj = nn.Linear(feat_dim, c.encoder_dim)
        self.dropout_input = nn.Dropout(c.dropout_input)
        self.mask_emb = nn.Parameter(torch.empty(c.encoder_dim))
        self.encoder = self.build_transformer(c)
        self.reset_parameters()

    @staticmethod
    def build_transformer(c: HubertConfig) -> nn.Module:
        """The transformer stack: forward(x (B, T, D), padding_mask (B, T), num_layers) -> states."""
        return TransformerEncoder(
            c.encoder_dim, c.encoder_layers, c.encoder_heads, c.encoder_ffn_dim, c.pos_conv_kernel,
            c.pos_conv_groups, c.dropout, c.attention_dropout, c.activation_dropout,
            c.layer_norm_first, c.layerdrop,
        )

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """docs/pretrain.md section 1: Linear N(0, 0.02), bias 0; mask embedding U[0, 1); CNN convs Kaiming
        normal (fairseq); norms weight 1 bias 0; pos conv keeps its fairseq init."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for block in getattr(self.feature_extractor, "conv_layers", ()):
            nn.init.kaiming_normal_(block.conv.weight)
            if block.conv.bias is not None:
                nn.init.zeros_(block.conv.bias)
        nn.init.uniform_(self.mask_emb)

    @property
    def num_layers(self) -> int:
        return self.config.encoder_layers

    def num_frames(self, num_samples) -> Tensor:
        return self.config.num_frames(num_samples)

    def _prepare_input(self, wavs: Tensor, wav_lens: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        if wavs.ndim != 2:
            raise ValueError(f"wavs must be (batch, samples), got shape {tuple(wavs.shape)}")
        wavs = wavs.to(self.post_extract_proj.weight.dtype)
        B, S = wavs.shape
        if wav_lens is None:
            wav_lens = torch.full((B,), S, dtype=torch.long, device=wavs.device)
        wav_lens = torch.as_tensor(wav_lens, device=wavs.device).long()
        if bool((wav_lens <= 0).any()) or bool((wav_lens > S).any()):
            raise HarnessError(f"{type(self).__name__} needs 1..{S} samples per item, got lengths {wav_lens.tolist()}")
        valid = valid_mask(wav_lens, S).to(wavs.dtype)
        wavs = wavs * valid  # ignore whatever lies past each length
        if self.config.normalize:  # F.layer_norm over each item's valid samples, as fairseq's dataset does
            n = wav_lens[:, None].to(wavs.dtype)
            mean = wavs.sum(1, keepdim=True) / n
            var = (((wavs - mean) * valid) ** 2).sum(1, keepdim=True) / n
            wavs = (wavs - mean) * torch.rsqrt(var + 1e-5) * valid
        rf = self.config.receptive_field
        if S < rf:
            wavs = nn.functional.pad(wavs, (0, rf - S))
        return wavs, wav_lens.clamp_min(rf)

    def front_end(self, wavs: Tensor, wav_lens: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """The part before the transformer: wavs (B, S) float 16 kHz, wav_lens (B,) samples (None:
        all S) -> x (B, T, D) transformer input before masking, features (B, T, C) front-end output
        (padded frames zero), lengths (B,) valid frames, padding_mask (B, T) bool."""
        wavs, wav_lens = self._prepare_input(wavs, wav_lens)
        mult = self.config.feature_grad_mult
        if mult > 0:
            feats, lengths = self.feature_extractor(wavs, wav_lens)
            if mult != 1.0 and torch.is_grad_enabled():
                feats = GradMultiply.apply(feats, mult)
        else:
            with torch.no_grad():
                feats, lengths = self.feature_extractor(wavs, wav_lens)
        T = feats.shape[1]
        padding_mask = ~valid_mask(lengths, T)
        feats = feats.masked_fill(padding_mask[..., None], 0.0)
        x = self.dropout_input(self.post_extract_proj(self.layer_norm(feats)))
        return x, feats, lengths, padding_mask

    def apply_mask(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, T, D) with the frames where mask (B, T) is True replaced by the mask embedding."""
        if mask.shape != x.shape[:2]:
            raise ValueError(f"mask must be (B, T) = {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
        return torch.where(mask[..., None], self.mask_emb.to(x.dtype), x)

    def transformer_states(self, x: Tensor, padding_mask: Optional[Tensor] = None, num_layers: Optional[int] = None,
                           layer_hook: Optional[LayerHook] = None) -> List[Tensor]:
        """x (B, T, D) (front_end's, masked or not); padding_mask (B, T) bool -> num_layers + 1
        states (B, T, D), padded frames zero; layer_hook(i, x) -> x after every layer that ran."""
        return self.encoder(x, padding_mask, num_layers, layer_hook)

    def forward(self, wavs: Tensor, wav_lens: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                num_layers: Optional[int] = None) -> EncoderOutput:
        """wavs (B, S) float 16 kHz; wav_lens (B,) samples (None: all S); mask (B, T) bool: frames
        replaced by the mask embedding (pre-training); num_layers: stop after that many layers."""
        x, feats, lengths, padding_mask = self.front_end(wavs, wav_lens)
        if mask is not None:
            x = self.apply_mask(x, mask)
        states = self.transformer_states(x, padding_mask, num_layers)
        return EncoderOutput(states, lengths, padding_mask, feats)


class HubertUpstream(Upstream):
    """A HuBERT encoder behind the Upstream interface (L+1 states of size D; 50 Hz for the
    published CNN, whatever the config's strides give otherwise)."""

    family = "hubert"

    def __init__(self, encoder: HubertEncoder, name: str, source: str = ""):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.spec = UpstreamSpec(
            name=name, family=self.family, sample_rate=SAMPLE_RATE, num_layers=self.config.encoder_layers + 1,
            hidden_size=self.config.encoder_dim, frame_rate_hz=SAMPLE_RATE / self.config.stride, source=source,
        )
        self.eval()

    def num_frames(self, num_samples) -> Tensor:
        return self.encoder.num_frames(num_samples)

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> HiddenStates:
        out = self.encoder(wavs, wav_lens)
        return HiddenStates(layers=out.hidden_states, lengths=out.lengths)

    def hidden_states(self, wavs: Tensor, wav_lens: Tensor, upto: Optional[int] = None) -> HiddenStates:
        out = self.encoder(wavs, wav_lens, num_layers=upto)
        return HiddenStates(layers=out.hidden_states, lengths=out.lengths)


def _sources() -> Dict[str, object]:
    """HuBERT's checkpoint conversions (upstreams/hubert_sources.py, hubert_fairseq.py): wav2vec
    2.0 shares its encoder layout exactly, so its torchaudio factories are read as HuBERT."""
    fairseq = HubertFairseq(HubertConfig)
    return {"hf": HubertHf(HubertConfig, "hubert", "HubertModel", "HubertConfig"), "fairseq": fairseq,
            "torchaudio": HubertTorchaudio(HubertConfig, ("wav2vec2_", "hubert_")), "s3prl": HubertS3prl(fairseq)}


HUBERT = register_family_upstreams(Family(
    name="hubert", config_cls=HubertConfig,
    # CV-HuBERT's frame rates (docs/pretrain.md section 5): <preset>_40ms / <preset>_80ms, 25 / 12.5 Hz
    presets={"tiny": HubertConfig.tiny, "small": HubertConfig.small, "base": HubertConfig.base,
             **{f"{p}_{ms}ms": (lambda p=p, ms=ms: getattr(HubertConfig, p)().at_frame_ms(ms))
                for p in ("tiny", "base") for ms in (40, 80)}},
    encoder_cls=HubertEncoder, upstream_cls=HubertUpstream, sources=_sources()))


def build_random_encoder(config: HubertConfig, seed: int = RANDOM_SEED) -> HubertEncoder:
    """An untrained HuBERT encoder whose weights depend only on (config, seed)."""
    return HUBERT.random_encoder(config, seed)
