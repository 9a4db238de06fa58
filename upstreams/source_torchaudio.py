"""`torchaudio:PRESET:FILE`: the state dict of a torchaudio `Wav2Vec2Model` built by the factory
`torchaudio.models.PRESET`, run by the project family whose torchaudio conversion
(`Family.sources["torchaudio"]`, upstreams/base_conversion.py) reads factories of that name
(wav2vec2_* and hubert_* by HuBERT, wavlm_* by WavLM).

The family reads the architecture from the factory itself (built on the meta device: no memory,
no init) and maps the weights. The factory model does not normalise waveforms (torchaudio's
bundles do that outside the model), so neither does the upstream: its states equal the factory
model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Tuple

import torch

from harness.errors import HarnessError
from harness.registry import register_source
from upstreams.base import Upstream, check_state_dict
from upstreams.base_conversion import families_with, names


def _family_of(preset: str) -> Tuple[Any, Any]:
    """(family, its TorchaudioConversion) whose factory prefixes `preset` starts with."""
    readers = families_with("torchaudio")
    for fam, conv in readers:
        if preset.startswith(conv.prefixes):
            return fam, conv
    expected = names([f"{p}*" for _, conv in readers for p in conv.prefixes], "or")
    raise HarnessError(f"torchaudio preset {preset!r}: expected a factory named {expected}")


def factory_config(preset: str) -> tuple:
    """(family, config) of torchaudio's factory `preset`."""
    fam, conv = _family_of(preset)
    return fam, conv.config(preset)


@register_source("torchaudio", form="torchaudio:PRESET:FILE")
def load_torchaudio(rest: str) -> Upstream:
    """`torchaudio:PRESET:FILE` -> the project's upstream named `torchaudio:<preset>:<file stem>`."""
    preset, sep, file = rest.partition(":")
    if not sep or not preset or not file:
        raise HarnessError(f"torchaudio source {rest!r}: expected torchaudio:PRESET:FILE (PRESET a factory of "
                           f"torchaudio.models, FILE the state dict of the model it builds)")
    path = Path(file)
    if not path.is_file():
        raise HarnessError(f"torchaudio state dict {file!r} not found")
    fam, conv = _family_of(preset)
    config = conv.config(preset)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises UnpicklingError, corrupt files several others
        raise HarnessError(f"{path}: cannot read a state dict: {str(e).splitlines()[0] if str(e) else e!r}") from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise HarnessError(f"{path}: not a state dict (name -> tensor)")
    encoder = fam.encoder_cls(config)
    try:
        sd = conv.complete(conv.state_dict(sd), encoder)
    except HarnessError as e:
        raise HarnessError(f"{path}: {e}") from None
    check_state_dict(encoder, sd, path)
    encoder.load_state_dict(sd)
    return fam.upstream_cls(encoder, f"torchaudio:{preset}:{path.stem}",
                            source=f"torchaudio {preset} state dict {path}")
