"""The HuBERT family's conversions from and to transformers (hf) and torchaudio (`Family.sources`,
contracts in upstreams/base_conversion.py; fairseq and s3prl: upstreams/hubert_fairseq.py).
Families on HuBERT's front end (WavLM) build theirs from the same classes, adding their own config
fields and parameter names; nothing here is registered.

- hf: transformers HubertModel folders (config fields `_SAME` / `_FIXED`, names `HF_PATTERNS`).
- torchaudio: `Wav2Vec2Model` factories wav2vec2_* / hubert_*: the architecture is read from the
  factory built on the meta device, as torchaudio's `import_fairseq_model` reads a fairseq model
  (CNN blocks, projection, positional conv, layer sizes, LN placement).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from harness.errors import HarnessError
from upstreams.base_conversion import HfConversion, TorchaudioConversion

Patterns = Sequence[Tuple[str, str]]


def match(key: str, patterns: Patterns) -> Optional[str]:
    """Our name of `key`: the replacement of the first pattern that matches all of it, or None."""
    for pat, rep in patterns:
        m = re.fullmatch(pat, key)
        if m:
            return m.expand(rep)
    return None


def keep_mask_emb(sd: Dict[str, Tensor], encoder: nn.Module) -> Dict[str, Tensor]:
    sd.setdefault("mask_emb", encoder.mask_emb.detach().clone())  # only pre-training uses it
    return sd


# ----------------------------------------------------------------------------- hf

# project config field <-> transformers config field, same meaning and value
_SAME = [("conv_channels", "conv_dim"), ("conv_kernels", "conv_kernel"), ("conv_strides", "conv_stride"),
         ("conv_bias", "conv_bias"), ("encoder_dim", "hidden_size"), ("encoder_layers", "num_hidden_layers"),
         ("encoder_heads", "num_attention_heads"), ("encoder_ffn_dim", "intermediate_size"),
         ("layer_norm_first", "do_stable_layer_norm"), ("pos_conv_kernel", "num_conv_pos_embeddings"),
         ("pos_conv_groups", "num_conv_pos_embedding_groups"), ("dropout", "hidden_dropout"),
         ("attention_dropout", "attention_dropout"), ("activation_dropout", "activation_dropout"),
         ("dropout_input", "feat_proj_dropout"), ("layerdrop", "layerdrop")]
# transformers fields the project's encoder has fixed: (field, the value it implements, default if absent)
_FIXED = [("hidden_act", "gelu", "gelu"), ("feat_extract_activation", "gelu", "gelu"),
          ("layer_norm_eps", 1e-5, 1e-5), ("feat_proj_layer_norm", True, True),
          ("conv_pos_batch_norm", False, False), ("add_adapter", False, False)]
_NORM = {"group_norm": "group", "layer_norm": "layer"}
#: transformers' attention prefix (and torchaudio's, with `transformer.`): group 1 is the layer
ATT = r"encoder\.(?:transformer\.)?layers\.(\d+)\.attention\."
OUR_ATT = r"encoder.layers.\1.self_attn."
#: HubertModel names -> ours (WavLMModel adds its attention's own)
HF_PATTERNS = [
    (ATT + r"(q|k|v|out)_proj\.(weight|bias)", OUR_ATT + r"\2_proj.\3"),
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)", r"feature_extractor.conv_layers.\1.norm.\2"),
    (r"feature_projection\.layer_norm\.(weight|bias)", r"layer_norm.\1"),
    (r"feature_projection\.projection\.(weight|bias)", r"post_extract_proj.\1"),
    (r"encoder\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.conv.bias"),
    (r"encoder\.pos_conv_embed\.conv\.(?:weight_g|parametrizations\.weight\.original0)",
     "encoder.pos_conv.conv.parametrizations.weight.original0"),
    (r"encoder\.pos_conv_embed\.conv\.(?:weight_v|parametrizations\.weight\.original1)",
     "encoder.pos_conv.conv.parametrizations.weight.original1"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.layer_norm\.(weight|bias)", r"encoder.layers.\1.self_attn_layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(weight|bias)", r"encoder.layers.\1.fc1.\2"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.output_dense\.(weight|bias)", r"encoder.layers.\1.fc2.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"masked_spec_embed", "mask_emb"),
]


class HubertHf(HfConversion):
    """transformers' HubertModel (and models of its layout: `fields` and `patterns` add theirs).

    Args:
        config_cls: the family config class.
        model_type: the config.json model_type; state dict keys may carry it as a prefix
            (`wavlm.`, as in transformers' task models).
        architecture / config_class: the transformers model and config class names.
        fields: (our field, transformers field) pairs beyond `_SAME`.
        patterns: (regex, replacement) names tried before HF_PATTERNS.
    """

    def __init__(self, config_cls: type, model_type: str, architecture: str, config_class: str,
                 fields: Sequence[Tuple[str, str]] = (), patterns: Patterns = ()):
        self.config_cls, self.model_types, self.architecture = config_cls, (model_type,), architecture
        self.config_class, self.fields, self.patterns = config_class, _SAME + list(fields), list(patterns) + HF_PATTERNS

    def config(self, cfg: Dict[str, Any], normalize: bool, where: str) -> Any:
        for name, value, default in _FIXED:
            if cfg.get(name, default) != value:
                raise HarnessError(f"{where}: {name}={cfg.get(name)!r} is not supported by the project's "
                                   f"{self.model_types[0]} family (it implements {value!r})")
        norm = cfg.get("feat_extract_norm", "group")
        modes = {v: k for k, v in _NORM.items()}
        if norm not in modes:
            raise HarnessError(f"{where}: feat_extract_norm={norm!r} is not 'group' or 'layer'")
        kw = {ours: cfg[theirs] for ours, theirs in self.fields if theirs in cfg}
        return self.config_cls(extractor_mode=modes[norm], normalize=normalize, **kw)

    def hf_config(self, config: Any, transformers: Any, where: str) -> Any:
        """The _FIXED fields keep transformers' defaults, which are the values the family
        implements (the export round-trip test reads them back through `config`)."""
        if config.frontend != "cnn":
            raise HarnessError(f"{where}: the {config.frontend!r} front end has no counterpart in transformers' "
                               f"{self.architecture} (it reads waveforms through the CNN)")
        kw = {theirs: getattr(config, ours) for ours, theirs in self.fields}
        kw = {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}
        # mask_time_prob > 0 gives the model its masked_spec_embed, where our mask embedding goes
        return getattr(transformers, self.config_class)(
            feat_extract_norm=_NORM[config.extractor_mode], num_feat_extract_layers=len(config.conv_channels),
            mask_time_prob=0.05, **kw)

    def preprocessor(self, config: Any) -> Dict[str, Any]:
        return {"do_normalize": config.normalize, "return_attention_mask": config.extractor_mode == "layer_norm"}

    def state_dict(self, sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Optionally prefixed by the model type (task models); other top-level heads are an error."""
        out: Dict[str, Tensor] = {}
        prefix = f"{self.model_types[0]}."
        for key, value in sd.items():
            ours = match(key[len(prefix):] if key.startswith(prefix) else key, self.patterns)
            if ours is None:
                raise HarnessError(f"Hugging Face {self.architecture} state dict: unknown key {key!r}")
            out[ours] = value
        return out

    def complete(self, sd: Dict[str, Tensor], encoder: nn.Module) -> Dict[str, Tensor]:
        """A model configured without time masking has no masked_spec_embed."""
        return keep_mask_emb(sd, encoder)


# ----------------------------------------------------------------------------- torchaudio

_L = r"encoder\.transformer\.layers\.(\d+)\."
_TA_PATTERNS = [
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)", r"feature_extractor.conv_layers.\1.norm.\2"),
    (r"encoder\.feature_projection\.layer_norm\.(weight|bias)", r"layer_norm.\1"),
    (r"encoder\.feature_projection\.projection\.(weight|bias)", r"post_extract_proj.\1"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.bias", r"encoder.pos_conv.conv.bias"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.(?:weight_g|parametrizations\.weight\.original0)",
     r"encoder.pos_conv.conv.parametrizations.weight.original0"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.(?:weight_v|parametrizations\.weight\.original1)",
     r"encoder.pos_conv.conv.parametrizations.weight.original1"),
    (r"encoder\.transformer\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (_L + r"attention\.(q|k|v|out)_proj\.(weight|bias)", r"encoder.layers.\1.self_attn.\2_proj.\3"),
    (_L + r"layer_norm\.(weight|bias)", r"encoder.layers.\1.self_attn_layer_norm.\2"),
    (_L + r"feed_forward\.intermediate_dense\.(weight|bias)", r"encoder.layers.\1.fc1.\2"),
    (_L + r"feed_forward\.output_dense\.(weight|bias)", r"encoder.layers.\1.fc2.\2"),
    (_L + r"final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"mask_generator\.mask_embedding", r"mask_emb"),
]
_TA_SKIP = ("aux.", "logit_generator.")


def from_torchaudio_state_dict(sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Map a torchaudio Wav2Vec2Model (hubert_*) or HuBERTPretrainModel state dict to our names.

    Weight norm may come as `weight_g`/`weight_v` or `parametrizations.weight.original0/1`.
    `aux.*` (CTC head) and `logit_generator.*` are skipped; any other unknown key raises.
    A plain Wav2Vec2Model has no mask embedding: load the result with strict=False (only
    `mask_emb` missing) or keep the encoder's own.
    """
    out: Dict[str, Tensor] = {}
    for key, value in sd.items():
        k = key[len("wav2vec2."):] if key.startswith("wav2vec2.") else key
        if k.startswith(_TA_SKIP):
            continue
        ours = match(k, _TA_PATTERNS)
        if ours is None:
            raise HarnessError(f"torchaudio state dict: unknown key {key!r}")
        out[ours] = value
    return out


class HubertTorchaudio(TorchaudioConversion):
    """torchaudio Wav2Vec2Model factories of HuBERT's layout.

    Args:
        config_cls: the family config class.
        prefixes: the factory names it reads start with one of these.
        mapping: state dict -> our names (default `from_torchaudio_state_dict`).
        attention_fields: (our field, attribute of torchaudio's attention module) read beyond
            the sizes every factory has (WavLM's buckets).
    """

    def __init__(self, config_cls: type, prefixes: Tuple[str, ...],
                 mapping: Callable[[Dict[str, Tensor]], Dict[str, Tensor]] = from_torchaudio_state_dict,
                 attention_fields: Sequence[Tuple[str, str]] = ()):
        self.config_cls, self.prefixes, self.mapping = config_cls, tuple(prefixes), mapping
        self.attention_fields = list(attention_fields)

    def config(self, preset: str) -> Any:
        import torchaudio

        # hubert_pretrain_X wraps hubert_X's network (its state dict maps with the `wav2vec2.` prefix)
        # and copies data at construction, which the meta device cannot
        factory = getattr(torchaudio.models, preset.replace("hubert_pretrain_", "hubert_", 1), None)
        if not callable(factory):
            raise HarnessError(f"torchaudio has no model factory {preset!r}")
        with torch.device("meta"):  # no memory, no init
            model = factory()
        convs = [block.conv for block in model.feature_extractor.conv_layers]
        first_norm = model.feature_extractor.conv_layers[0].layer_norm
        transformer = model.encoder.transformer
        layer = transformer.layers[0]
        attention = layer.attention
        return self.config_cls(
            conv_channels=[c.out_channels for c in convs], conv_kernels=[c.kernel_size[0] for c in convs],
            conv_strides=[c.stride[0] for c in convs], conv_bias=convs[0].bias is not None,
            extractor_mode="group_norm" if isinstance(first_norm, nn.GroupNorm) else "layer_norm",
            encoder_dim=model.encoder.feature_projection.projection.out_features,
            encoder_layers=len(transformer.layers), encoder_heads=attention.num_heads,
            encoder_ffn_dim=layer.feed_forward.intermediate_dense.out_features,
            layer_norm_first=bool(layer.layer_norm_first), pos_conv_kernel=transformer.pos_conv_embed.kernel_size,
            pos_conv_groups=transformer.pos_conv_embed.conv.groups,
            **{ours: getattr(attention, theirs) for ours, theirs in self.attention_fields})

    def state_dict(self, sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
        return self.mapping(sd)

    def complete(self, sd: Dict[str, Tensor], encoder: nn.Module) -> Dict[str, Tensor]:
        """A Wav2Vec2Model has no mask embedding."""
        return keep_mask_emb(sd, encoder)
