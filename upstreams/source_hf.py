"""`hf:DIR`: a local transformers folder (config.json + weights) as an upstream, and the export of
the project's families into such a folder (`harness export --format hf`).

Nothing is downloaded: every transformers call passes `local_files_only=True`.

- A folder whose `model_type` a registered family reads (its `sources["hf"]`, an HfConversion of
  upstreams/base_conversion.py: HubertModel for `hubert`, WavLMModel for `wavlm`) is converted
  by that family, config and weights, and the project's encoder runs it, so there is one code
  path with one padding guarantee. A config field the family cannot represent (another
  activation, no projection LayerNorm, ...) is an error naming it.
- Wav2Vec2Model / Data2VecAudioModel folders run in transformers (`HFUpstream`).
- Any other architecture is an error naming it.

A `preprocessor_config.json` with `do_normalize: true` (per-waveform zero mean, unit variance, as
transformers' feature extractor does before the model) is honoured in both paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import HarnessError
from harness.registry import register_source
from upstreams.base import SAMPLE_RATE, HiddenStates, Upstream, UpstreamSpec, check_state_dict
from upstreams.base_conversion import exporting, families_with
from upstreams.hubert_frontend import conv_out_lengths, receptive_field, valid_mask

#: transformers model_type -> the class `hf:` runs in transformers (not a project family)
IN_TRANSFORMERS = {"wav2vec2": "Wav2Vec2Model", "data2vec-audio": "Data2VecAudioModel"}


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise HarnessError(f"{path}: cannot read: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: expected a JSON object of settings, got a {type(data).__name__}")
    return data


def _from_pretrained(t, folder: Path, where: str):
    """transformers' AutoModel of `folder`, local files only; what it raises (a pickled
    pytorch_model.bin that torch refuses to unpickle, a truncated safetensors, ...) becomes one
    line naming the folder."""
    try:
        return t.AutoModel.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:
        detail = " ".join(str(e).split())
        raise HarnessError(f"{where}: transformers cannot load the weights in {folder} "
                           f"({type(e).__name__}: {detail[:300]}{'...' if len(detail) > 300 else ''})") from None


def _transformers():
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - transformers is a runtime dependency
        raise HarnessError(f"hf: upstreams need the transformers package ({e})") from None
    transformers.logging.set_verbosity_error()  # "some weights were not used" goes to our own checks
    # its tqdm bars ("Loading weights") would print between our own log lines; loading is quick
    transformers.utils.logging.disable_progress_bar()
    return transformers


def hf_family(cfg: Dict[str, Any]) -> Optional[Tuple[Any, Any]]:
    """(family, its HfConversion) of the registered family that reads config.json `cfg`, or None."""
    return next(((f, c) for f, c in families_with("hf") if cfg.get("model_type") in c.model_types), None)


def _check_architecture(folder: Path, cfg: Dict[str, Any]) -> str:
    model_type = cfg.get("model_type")
    if model_type not in IN_TRANSFORMERS and hf_family(cfg) is None:
        arch = ", ".join(cfg.get("architectures") or []) or "no architectures field"
        supported = [c.architecture for _, c in families_with("hf")] + list(IN_TRANSFORMERS.values())
        raise HarnessError(f"hf:{folder}: architecture {arch} (model_type {model_type!r}) is not supported; "
                           f"supported: {', '.join(supported)}")
    return model_type


class HFUpstream(Upstream):
    """A transformers speech encoder (Wav2Vec2Model, Data2VecAudioModel) behind the Upstream
    interface: L+1 states, the last one `last_hidden_state` (after the final LayerNorm of a
    pre-LN model, as every project upstream).

    Padding: with `batched`, one forward with an attention mask (transformers zeroes the padded
    frames before the positional conv and masks padded keys); otherwise one forward per item, for
    models where padding changes the valid frames (a group-norm CNN normalises over time;
    Data2VecAudio's stacked positional convs carry padded frames into valid ones).
    """

    def __init__(self, model: torch.nn.Module, name: str, source: str, batched: bool, normalize: bool):
        super().__init__()
        self.model = model.eval()
        c = model.config
        self.kernels, self.strides = list(c.conv_kernel), list(c.conv_stride)
        self.receptive_field = receptive_field(self.kernels, self.strides)
        self.batched, self.normalize = batched, normalize
        stride = 1
        for s in self.strides:
            stride *= s
        self.spec = UpstreamSpec(name=name, family=c.model_type, sample_rate=SAMPLE_RATE,
                                 num_layers=c.num_hidden_layers + 1, hidden_size=c.hidden_size,
                                 frame_rate_hz=SAMPLE_RATE / stride, source=source)

    def num_frames(self, num_samples) -> Tensor:
        """As the project's families: short non-empty inputs count as the receptive field."""
        n = torch.as_tensor(num_samples, dtype=torch.long)
        n = torch.where(n > 0, n.clamp_min(self.receptive_field), n.clamp_min(0))
        return conv_out_lengths(n, self.kernels, self.strides)

    def _states(self, wavs: Tensor, mask: Optional[Tensor]) -> List[Tensor]:
        out = self.model(wavs, attention_mask=mask, output_hidden_states=True)
        return list(out.hidden_states[:-1]) + [out.last_hidden_state]

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> HiddenStates:
        """wavs (B, S) float 16 kHz, wav_lens (B,) samples -> L+1 states (B, T, D), padding zero."""
        B, S = wavs.shape
        wav_lens = torch.as_tensor(wav_lens, device=wavs.device).long()
        if bool((wav_lens <= 0).any()) or bool((wav_lens > S).any()):
            raise HarnessError(f"{self.spec.name} needs 1..{S} samples per item, got lengths {wav_lens.tolist()}")
        wavs = wavs.to(next(self.model.parameters()).dtype) * valid_mask(wav_lens, S)
        if self.normalize:  # per waveform over its valid samples (transformers' feature extractor)
            wavs = torch.stack([F.pad(F.layer_norm(w[:n], (int(n),), eps=1e-7), (0, S - int(n)))
                                for w, n in zip(wavs, wav_lens)])
        lengths = self.num_frames(wav_lens)
        # an input shorter than the receptive field is zero-padded to it, alone or in a batch
        padded = wav_lens.clamp_min(self.receptive_field)
        if S < self.receptive_field:
            wavs = F.pad(wavs, (0, self.receptive_field - S))
        if self.batched:
            states = self._states(wavs, valid_mask(padded, wavs.shape[1]).long())
        else:
            T = int(lengths.max())
            items = [self._states(w[None, : int(n)], None) for w, n in zip(wavs, padded)]
            states = [torch.cat([F.pad(item[i], (0, 0, 0, T - item[i].shape[1])) for item in items])
                      for i in range(len(items[0]))]
        pad = ~valid_mask(lengths, states[0].shape[1])
        return HiddenStates([s.masked_fill(pad[..., None], 0.0) for s in states], lengths)


@register_source("hf", form="hf:DIR")
def load_hf(rest: str) -> Upstream:
    """`hf:DIR` -> an upstream named `hf:<folder name>` (harness.evaluate.build_upstream adds
    `@<weights tag>`: two folders of one name are two upstreams; see the module docstring)."""
    folder = Path(rest)
    if not (folder / "config.json").is_file():
        raise HarnessError(f"hf:{rest}: no config.json in that folder (a transformers model folder is expected)")
    cfg = _read_json(folder / "config.json")
    model_type = _check_architecture(folder, cfg)
    pre = folder / "preprocessor_config.json"
    normalize = bool(_read_json(pre).get("do_normalize", False)) if pre.is_file() else False
    name, where = f"hf:{folder.resolve().name}", f"hf:{rest}"
    t = _transformers()
    found = hf_family(cfg)
    if found is not None:
        fam, conv = found
        config = conv.config(cfg, normalize, where)
        hf = _from_pretrained(t, folder, where)
        encoder = fam.encoder_cls(config)
        try:
            sd = conv.complete(conv.state_dict(hf.state_dict()), encoder)
        except HarnessError as e:
            raise HarnessError(f"{where}: {e}") from None
        check_state_dict(encoder, sd, where)
        encoder.load_state_dict(sd)
        return fam.upstream_cls(encoder, name, source=str(folder))
    if cfg.get("add_adapter"):  # its adapter downsamples the last state only: no common frame rate
        raise HarnessError(f"{where}: add_adapter=True is not supported (the adapter's output has another "
                           "frame rate than the other hidden states)")
    model = _from_pretrained(t, folder, where)
    batched = model_type == "wav2vec2" and cfg.get("feat_extract_norm", "group") == "layer"
    return HFUpstream(model, name, str(folder), batched=batched, normalize=normalize)


def export_hf(upstream: Upstream, out: Union[str, Path]) -> Path:
    """Write a project upstream whose family has an hf conversion (HuBERT, WavLM) as that
    conversion's transformers model folder (config.json, model.safetensors,
    preprocessor_config.json) that `transformers.AutoModel.from_pretrained(out)` loads with every
    weight.

    Raises:
        HarnessError: for a family without one, or a config its transformers model cannot represent.
    """
    _, conv = exporting(upstream, "hf")
    t = _transformers()
    config = upstream.encoder.config
    model = t.AutoModel.from_config(conv.hf_config(config, t, upstream.spec.name)).eval()
    ours = upstream.encoder.state_dict()
    # the inverse of the conversion's state_dict, taken key by key over the transformers model's own names
    names = {k: next(iter(conv.state_dict({k: v}))) for k, v in model.state_dict().items()}
    if set(names.values()) != set(ours):
        raise HarnessError(f"{upstream.spec.name}: weights without a transformers counterpart: "
                           f"{sorted(set(ours) - set(names.values()))[:5]}")
    model.load_state_dict({k: ours[n] for k, n in names.items()}, strict=True)
    folder = Path(out)
    model.save_pretrained(str(folder))
    t.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0,
                               **conv.preprocessor(config)).save_pretrained(str(folder))
    return folder
