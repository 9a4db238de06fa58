"""The HuBERT family's conversions from fairseq checkpoints and to s3prl's (`Family.sources`,
contracts in upstreams/base_conversion.py): both use fairseq's layout. Families on HuBERT's front
end (WavLM) build theirs from the same classes; nothing here is registered.

- fairseq: fairseq HuBERT and wav2vec 2.0 (one encoder layout). fairseq's parameter names are
  ours except the CNN blocks (`conv_layers.i.0` = conv, `.2` = GroupNorm of block 0, `.2.1` =
  LayerNorm inside the transpose sandwich of layer-norm CNNs; torchaudio's `import_fairseq_model`
  documents the same layout) and the positional conv (`pos_conv.0`). Pre-training heads
  (`final_proj`, `label_embs_concat`, wav2vec 2.0's `quantizer`, `project_q`, `target_glu`) are
  dropped; absent config fields take fairseq's defaults, which equal HubertConfig's.
- s3prl: the checkpoint s3prl 0.4.18's `hubert_local` reads (converted HuBERT: task_cfg,
  model_cfg, model_weight, dictionaries_symbols), written through s3prl's own model class.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from harness.errors import HarnessError
from upstreams.base import SAMPLE_RATE
from upstreams.base_conversion import FairseqConversion, S3prlConversion
from upstreams.hubert_sources import Patterns, keep_mask_emb, match
from upstreams.source_fairseq import parse_conv_layers

_DROP = ("final_proj.", "label_embs_concat", "quantizer.", "project_q.", "target_glu.")
FAIRSEQ_PATTERNS = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)", r"feature_extractor.conv_layers.0.norm.\1"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", r"feature_extractor.conv_layers.\1.norm.\2"),
    (r"encoder\.pos_conv\.0\.bias", "encoder.pos_conv.conv.bias"),
    (r"encoder\.pos_conv\.0\.(?:weight_g|parametrizations\.weight\.original0)",
     "encoder.pos_conv.conv.parametrizations.weight.original0"),
    (r"encoder\.pos_conv\.0\.(?:weight_v|parametrizations\.weight\.original1)",
     "encoder.pos_conv.conv.parametrizations.weight.original1"),
    (r"(mask_emb|(?:post_extract_proj|layer_norm|encoder\.layer_norm)\.(?:weight|bias))", r"\1"),
    (r"(encoder\.layers\.\d+\.(?:self_attn\.(?:[qkv]|out)_proj|self_attn_layer_norm|fc1|fc2|final_layer_norm)"
     r"\.(?:weight|bias))", r"\1"),
]
# fairseq model field -> ours
_FAIRSEQ_NAMES = {
    "conv_bias": "conv_bias", "encoder_embed_dim": "encoder_dim", "encoder_layers": "encoder_layers",
    "encoder_attention_heads": "encoder_heads", "encoder_ffn_embed_dim": "encoder_ffn_dim",
    "layer_norm_first": "layer_norm_first", "conv_pos": "pos_conv_kernel", "conv_pos_groups": "pos_conv_groups",
    "dropout": "dropout", "attention_dropout": "attention_dropout", "activation_dropout": "activation_dropout",
    "dropout_input": "dropout_input", "encoder_layerdrop": "layerdrop", "feature_grad_mult": "feature_grad_mult",
    "final_dim": "final_dim"}
# fairseq fields whose other values the encoder does not implement
_REQUIRE = [("activation_fn", ("gelu",)), ("layer_type", ("transformer",)), ("pos_conv_depth", (1,)),
            ("extractor_mode", ("default", "layer_norm")), ("conv_pos_batch_norm", (False,)),
            ("quantize_input", (False,))]


class HubertFairseq(FairseqConversion):
    """fairseq HuBERT / wav2vec 2.0, or with `relative_position` a model of that layout with a
    relative position bias (unilm WavLM).

    Args:
        config_cls: the family config class.
        relative_position: claims the checkpoints that ask for a relative position embedding (or
            hold a `relative_attention_bias`) when True, the others when False.
        names: fairseq field -> our field, beyond `_FAIRSEQ_NAMES`.
        requires: (field, allowed values) beyond `_REQUIRE`.
        defaults: the format's defaults where they differ from `config_cls`'s.
        patterns: (regex, replacement) names beyond FAIRSEQ_PATTERNS.
    """

    def __init__(self, config_cls: type, relative_position: bool = False, names: Optional[Dict[str, str]] = None,
                 requires: Sequence[Tuple[str, tuple]] = (), defaults: Optional[Dict[str, Any]] = None,
                 patterns: Patterns = ()):
        self.config_cls, self.relative_position = config_cls, relative_position
        self.names, self.requires = {**_FAIRSEQ_NAMES, **(names or {})}, _REQUIRE + list(requires)
        self.defaults, self.patterns = dict(defaults or {}), FAIRSEQ_PATTERNS + list(patterns)

    def claims(self, cfg: Dict[str, Any], keys: Sequence[str]) -> bool:
        relative = bool(cfg.get("relative_position_embedding")) or any("relative_attention_bias" in k for k in keys)
        return relative == self.relative_position

    def config(self, cfg: Dict[str, Any], normalize: bool) -> Any:
        for key, allowed in self.requires:
            if key in cfg and cfg[key] not in allowed:
                raise HarnessError(f"fairseq config {key}={cfg[key]!r} is not supported (the project's "
                                   f"{self.config_cls.__name__} implements {', '.join(map(repr, allowed))})")
        cfg = {**self.defaults, **cfg}
        d = self.config_cls()
        kw: Dict[str, Any] = {"normalize": normalize}
        if "conv_feature_layers" in cfg:
            layers = parse_conv_layers(str(cfg["conv_feature_layers"]))
            kw.update(conv_channels=[c for c, _, _ in layers], conv_kernels=[k for _, k, _ in layers],
                      conv_strides=[s for _, _, s in layers])
        if "extractor_mode" in cfg:
            kw["extractor_mode"] = "group_norm" if cfg["extractor_mode"] == "default" else "layer_norm"
        for theirs, ours in self.names.items():
            if cfg.get(theirs) is not None:
                kw[ours] = type(getattr(d, ours))(cfg[theirs])
        if kw.get("final_dim") == 0:  # fairseq: 0 means encoder_embed_dim
            kw["final_dim"] = kw.get("encoder_dim", d.encoder_dim)
        try:
            return self.config_cls(**kw)
        except (ValueError, TypeError) as e:
            raise HarnessError(f"fairseq config gives no valid {self.config_cls.__name__}: {e}") from None

    def state_dict(self, sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """A fine-tuned model's `w2v_encoder.*` keys are an error with a hint."""
        out: Dict[str, Tensor] = {}
        for key, value in sd.items():
            if key.startswith(_DROP):
                continue
            ours = match(key, self.patterns)
            if ours is None:
                hint = " (a fine-tuned model: give its pre-trained checkpoint)" if key.startswith("w2v_encoder.") else ""
                raise HarnessError(f"fairseq state dict: unknown key {key!r}{hint}")
            out[ours] = value
        return out

    def complete(self, sd: Dict[str, Tensor], encoder: nn.Module) -> Dict[str, Tensor]:
        c = encoder.config
        if "post_extract_proj.weight" not in sd and c.conv_channels[-1] == c.encoder_dim:
            # fairseq and unilm omit the projection when the CNN already has the encoder's width
            sd["post_extract_proj.weight"] = torch.eye(c.encoder_dim)
            sd["post_extract_proj.bias"] = torch.zeros(c.encoder_dim)
        return keep_mask_emb(sd, encoder)


# ----------------------------------------------------------------------------- s3prl

#: s3prl 0.4.18's hubert and wavlm experts report a fixed 320-sample stride (get_downsample_rates)
S3PRL_STRIDE = 320


def _widen_last_conv(sd: Dict[str, Tensor], config: Any) -> int:
    """Make a model whose CNN width C equals its encoder width D representable in s3prl: fairseq's
    (and s3prl's) HuBERT / WavLM build no input projection when C == D, ours always has one.
    The last conv's output channels are duplicated (2C), and with them that block's norm (if any)
    and the LayerNorm before the projection; the projection reads the first copy ([W, 0], D x 2C).
    LayerNorm over two copies of x has the mean and variance of x, so every hidden state is the
    same function of the waveform. Modifies `sd` (our names); returns the new CNN width."""
    last = f"feature_extractor.conv_layers.{len(config.conv_channels) - 1}"
    for key in [f"{last}.conv.weight", f"{last}.conv.bias", f"{last}.norm.weight", f"{last}.norm.bias",
                "layer_norm.weight", "layer_norm.bias"]:
        if key in sd:
            sd[key] = torch.cat([sd[key], sd[key]])
    w = sd["post_extract_proj.weight"]
    sd["post_extract_proj.weight"] = torch.cat([w, torch.zeros_like(w)], dim=1)
    return 2 * config.conv_channels[-1]


def fairseq_fields(c: Any, last_width: int) -> Dict[str, Any]:
    """The fairseq / unilm model config fields of a project config (plain values only: s3prl
    reads the checkpoint with torch.load, which unpickles nothing else by default)."""
    widths = list(c.conv_channels[:-1]) + [last_width]
    layers = ", ".join(f"({w}, {k}, {s})" for w, k, s in zip(widths, c.conv_kernels, c.conv_strides))
    return {"extractor_mode": "default" if c.extractor_mode == "group_norm" else "layer_norm",
            "conv_feature_layers": f"[{layers}]", "conv_bias": c.conv_bias,
            "encoder_layers": c.encoder_layers, "encoder_embed_dim": c.encoder_dim,
            "encoder_ffn_embed_dim": c.encoder_ffn_dim, "encoder_attention_heads": c.encoder_heads,
            "activation_fn": "gelu", "layer_norm_first": c.layer_norm_first, "conv_pos": c.pos_conv_kernel,
            "conv_pos_groups": c.pos_conv_groups, "dropout": c.dropout, "attention_dropout": c.attention_dropout,
            "activation_dropout": c.activation_dropout, "encoder_layerdrop": c.layerdrop,
            "dropout_input": c.dropout_input, "feature_grad_mult": c.feature_grad_mult, "final_dim": c.final_dim}


class HubertS3prl(S3prlConversion):
    """The checkpoint of s3prl's `hubert_local`; a family of HuBERT's layout overrides `entry`
    and `build` (the s3prl model and checkpoint layout its entry reads).

    The weights are loaded into s3prl's own model class (strictly) before saving, so every key
    and shape is the one s3prl's loader expects. The checkpoint holds the encoder only: HuBERT's
    pre-training head, which s3prl's class requires, is written as zeros (final_proj) with no
    label dictionary (dictionaries_symbols [None]); evaluation never uses it. A model whose CNN
    is as wide as its encoder is widened (`_widen_last_conv`) unless its projection is the identity.

    Args:
        fairseq: the family's fairseq conversion, whose names are s3prl's.
    """

    entry = "hubert_local"

    def __init__(self, fairseq: HubertFairseq):
        self.fairseq = fairseq

    def build(self, fields: Dict[str, Any], c: Any) -> Tuple[nn.Module, Any]:
        """(s3prl's model of fairseq `fields` for config `c`, a function weights -> checkpoint)."""
        from harness import s3prl_compat

        hm = s3prl_compat.module("s3prl.upstream.hubert.hubert_model")
        label_rate = SAMPLE_RATE / c.stride
        task_cfg = {"label_rate": label_rate, "sample_rate": SAMPLE_RATE, "normalize": c.normalize}
        cfg = {**fields, "label_rate": label_rate}
        model = hm.HubertModel(hm.HubertConfig(**cfg), hm.HubertPretrainingConfig(**task_cfg), [None])
        return model, lambda w: {"task_cfg": task_cfg, "model_cfg": cfg, "model_weight": w,
                                 "dictionaries_symbols": [None]}

    def checkpoint(self, encoder: nn.Module, where: str) -> Dict[str, Any]:
        c = encoder.config
        if c.frontend != "cnn":
            raise HarnessError(f"{where}: the {c.frontend!r} front end has no counterpart in s3prl's {self.entry} "
                               "upstream (it reads waveforms through the CNN)")
        if c.stride != S3PRL_STRIDE:
            raise HarnessError(f"{where}: stride {c.stride} samples; s3prl's {self.entry} upstream assumes "
                               f"{S3PRL_STRIDE} (20 ms frames)")
        sd = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
        width = c.conv_channels[-1]
        if width == c.encoder_dim:
            w, b = sd["post_extract_proj.weight"], sd["post_extract_proj.bias"]
            if torch.equal(w, torch.eye(width)) and not b.any():  # fairseq's own layout: no projection
                del sd["post_extract_proj.weight"], sd["post_extract_proj.bias"]
            else:
                width = _widen_last_conv(sd, c)
        with torch.random.fork_rng(devices=[]):  # s3prl's constructors draw their init from the global RNG
            model, checkpoint = self.build(fairseq_fields(c, width), c)
        theirs = model.state_dict()
        # our name of each of s3prl's keys (the pre-training head has none: the fairseq mapping drops it)
        names = {k: next(iter(self.fairseq.state_dict({k: v})), None) for k, v in theirs.items()}
        mapped = {n for n in names.values() if n is not None}
        if mapped != set(sd):
            raise HarnessError(f"{where}: weights without an s3prl counterpart: {sorted(set(sd) ^ mapped)[:5]}")
        state = {k: sd[n] if n is not None else torch.zeros_like(theirs[k]) for k, n in names.items()}
        model.load_state_dict(state, strict=True)
        return checkpoint({k: v.contiguous() for k, v in model.state_dict().items()})
