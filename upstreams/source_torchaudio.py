"""`torchaudio:PRESET:FILE`: the state dict of a torchaudio `Wav2Vec2Model` built by the factory
`torchaudio.models.PRESET` (wav2vec2_*, hubert_*, wavlm_*), run by the project's HuBERT / WavLM
family.

The architecture comes from the factory itself: it is built on the meta device (no memory, no
init) and read like torchaudio's own `import_fairseq_model` reads a fairseq model (CNN blocks,
projection, positional conv, layer sizes, LN placement, WavLM buckets). The weights map through
`upstreams.hubert.from_torchaudio_state_dict` / `upstreams.wavlm.from_torchaudio_state_dict`.
The factory model does not normalise waveforms (torchaudio's bundles do that outside the model),
so neither does the upstream: its states equal the factory model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch
from torch import nn

from harness.errors import HarnessError
from harness.registry import register_source
from upstreams import hubert, wavlm
from upstreams.base import Upstream, check_state_dict, get_family

FAMILY_PREFIXES = {"wav2vec2_": "hubert", "hubert_": "hubert", "wavlm_": "wavlm"}


def _family_of(preset: str) -> str:
    for prefix, fam in FAMILY_PREFIXES.items():
        if preset.startswith(prefix):
            return fam
    raise HarnessError(f"torchaudio preset {preset!r}: expected a factory named wav2vec2_*, hubert_* or wavlm_*")


def factory_config(preset: str) -> tuple:
    """(family, config) of torchaudio's factory `preset`, read from the model it builds on the
    meta device."""
    import torchaudio

    fam = get_family(_family_of(preset))
    # hubert_pretrain_X wraps hubert_X's network (its state dict maps with the `wav2vec2.` prefix)
    # and copies data at construction, which the meta device cannot
    factory = getattr(torchaudio.models, preset.replace("hubert_pretrain_", "hubert_", 1), None)
    if not callable(factory):
        raise HarnessError(f"torchaudio has no model factory {preset!r}")
    with torch.device("meta"):
        model = factory()
    convs = [block.conv for block in model.feature_extractor.conv_layers]
    first_norm = model.feature_extractor.conv_layers[0].layer_norm
    transformer = model.encoder.transformer
    layer = transformer.layers[0]
    attention = layer.attention
    kw: Dict[str, Any] = dict(
        conv_channels=[c.out_channels for c in convs], conv_kernels=[c.kernel_size[0] for c in convs],
        conv_strides=[c.stride[0] for c in convs], conv_bias=convs[0].bias is not None,
        extractor_mode="group_norm" if isinstance(first_norm, nn.GroupNorm) else "layer_norm",
        encoder_dim=model.encoder.feature_projection.projection.out_features,
        encoder_layers=len(transformer.layers), encoder_heads=attention.num_heads,
        encoder_ffn_dim=layer.feed_forward.intermediate_dense.out_features,
        layer_norm_first=bool(layer.layer_norm_first),
        pos_conv_kernel=transformer.pos_conv_embed.kernel_size, pos_conv_groups=transformer.pos_conv_embed.conv.groups,
    )
    if fam.name == "wavlm":
        kw.update(num_buckets=attention.num_buckets, max_distance=attention.max_distance)
    return fam, fam.config_cls(**kw)


@register_source("torchaudio", form="torchaudio:PRESET:FILE")
def load_torchaudio(rest: str) -> Upstream:
    """`torchaudio:PRESET:FILE` -> the project's upstream named `torchaudio:<preset>:<file stem>`."""
    preset, sep, file = rest.partition(":")
    if not sep or not preset or not file:
        raise HarnessError(f"torchaudio source {rest!r}: expected torchaudio:PRESET:FILE (e.g. "
                           f"torchaudio:hubert_base:model.pt)")
    path = Path(file)
    if not path.is_file():
        raise HarnessError(f"torchaudio state dict {file!r} not found")
    fam, config = factory_config(preset)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises UnpicklingError, corrupt files several others
        raise HarnessError(f"{path}: cannot read a state dict: {str(e).splitlines()[0] if str(e) else e!r}") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise HarnessError(f"{path}: not a state dict (name -> tensor)")
    mapping = wavlm.from_torchaudio_state_dict if fam.name == "wavlm" else hubert.from_torchaudio_state_dict
    try:
        sd = mapping(sd)
    except HarnessError as e:
        raise HarnessError(f"{path}: {e}") from None
    encoder = fam.encoder_cls(config)
    sd.setdefault("mask_emb", encoder.mask_emb.detach().clone())  # a Wav2Vec2Model has none
    check_state_dict(encoder, sd, path)
    encoder.load_state_dict(sd)
    return fam.upstream_cls(encoder, f"torchaudio:{preset}:{path.stem}",
                            source=f"torchaudio {preset} state dict {path}")
