"""`hf:DIR`: a local transformers folder (config.json + weights) as an upstream, and the export of
the project's HuBERT and WavLM families into such a folder (`harness export --format hf`).

Nothing is downloaded: every transformers call passes `local_files_only=True`.

- HubertModel / WavLMModel folders map onto the project's families (upstreams/hubert.py,
  upstreams/wavlm.py): config and weights are converted and the project's encoder runs them, so
  there is one code path with one padding guarantee. A config field the family cannot represent
  (another activation, no projection LayerNorm, ...) is an error naming it.
- Wav2Vec2Model / Data2VecAudioModel folders run in transformers (`HFUpstream`).
- Any other architecture is an error naming it.

A `preprocessor_config.json` with `do_normalize: true` (per-waveform zero mean, unit variance, as
transformers' feature extractor does before the model) is honoured in both paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import HarnessError
from harness.registry import register_source
from upstreams.base import SAMPLE_RATE, HiddenStates, Upstream, UpstreamSpec
from upstreams.hubert import HUBERT, HubertConfig, HubertUpstream
from upstreams.hubert_modules import conv_out_lengths, receptive_field, valid_mask
from upstreams.wavlm import WAVLM, WavlmConfig, from_hf_state_dict

#: transformers model_type -> the class `hf:` loads (what the error lists as supported)
ARCHITECTURES = {"hubert": "HubertModel", "wavlm": "WavLMModel", "wav2vec2": "Wav2Vec2Model",
                 "data2vec-audio": "Data2VecAudioModel"}
#: model types the project's families run (the rest run in transformers)
FAMILY_OF = {"hubert": HUBERT, "wavlm": WAVLM}

# project config field <-> transformers config field, same meaning and value
_SAME = [("conv_channels", "conv_dim"), ("conv_kernels", "conv_kernel"), ("conv_strides", "conv_stride"),
         ("conv_bias", "conv_bias"), ("encoder_dim", "hidden_size"), ("encoder_layers", "num_hidden_layers"),
         ("encoder_heads", "num_attention_heads"), ("encoder_ffn_dim", "intermediate_size"),
         ("layer_norm_first", "do_stable_layer_norm"), ("pos_conv_kernel", "num_conv_pos_embeddings"),
         ("pos_conv_groups", "num_conv_pos_embedding_groups"), ("dropout", "hidden_dropout"),
         ("attention_dropout", "attention_dropout"), ("activation_dropout", "activation_dropout"),
         ("dropout_input", "feat_proj_dropout"), ("layerdrop", "layerdrop")]
_WAVLM_SAME = [("num_buckets", "num_buckets"), ("max_distance", "max_bucket_distance")]
# transformers fields the project's encoder has fixed: (field, the value it implements, default if absent)
_FIXED = [("hidden_act", "gelu", "gelu"), ("feat_extract_activation", "gelu", "gelu"),
          ("layer_norm_eps", 1e-5, 1e-5), ("feat_proj_layer_norm", True, True),
          ("conv_pos_batch_norm", False, False), ("add_adapter", False, False)]
_NORM = {"group_norm": "group", "layer_norm": "layer"}


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


def _check_architecture(folder: Path, cfg: Dict[str, Any]) -> str:
    model_type = cfg.get("model_type")
    if model_type not in ARCHITECTURES:
        arch = ", ".join(cfg.get("architectures") or []) or "no architectures field"
        raise HarnessError(f"hf:{folder}: architecture {arch} (model_type {model_type!r}) is not supported; "
                           f"supported: {', '.join(ARCHITECTURES.values())}")
    return model_type


def family_config(model_type: str, cfg: Dict[str, Any], normalize: bool, where: str):
    """The project family config (HubertConfig / WavlmConfig) of a transformers config dict.

    Raises:
        HarnessError: naming the first field whose value the family cannot represent.
    """
    for name, value, default in _FIXED:
        if cfg.get(name, default) != value:
            raise HarnessError(f"{where}: {name}={cfg.get(name)!r} is not supported by the project's "
                               f"{model_type} family (it implements {value!r})")
    norm = cfg.get("feat_extract_norm", "group")
    modes = {v: k for k, v in _NORM.items()}
    if norm not in modes:
        raise HarnessError(f"{where}: feat_extract_norm={norm!r} is not 'group' or 'layer'")
    pairs = _SAME + (_WAVLM_SAME if model_type == "wavlm" else [])
    kw = {ours: cfg[theirs] for ours, theirs in pairs if theirs in cfg}
    cls = WavlmConfig if model_type == "wavlm" else HubertConfig
    return cls(extractor_mode=modes[norm], normalize=normalize, **kw)


def hf_config(config: HubertConfig, model_type: str):
    """The transformers config (HubertConfig / WavLMConfig) of a project family config; the _FIXED
    fields keep transformers' defaults, which are the values the family implements (the export
    round-trip test reads them back through family_config)."""
    t = _transformers()
    pairs = _SAME + (_WAVLM_SAME if model_type == "wavlm" else [])
    kw = {theirs: getattr(config, ours) for ours, theirs in pairs}
    kw = {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}
    cls = t.WavLMConfig if model_type == "wavlm" else t.HubertConfig
    # mask_time_prob > 0 gives the model its masked_spec_embed, where our mask embedding goes
    return cls(feat_extract_norm=_NORM[config.extractor_mode], num_feat_extract_layers=len(config.conv_channels),
               mask_time_prob=0.05, **kw)


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
    if model_type in FAMILY_OF:
        fam = FAMILY_OF[model_type]
        config = family_config(model_type, cfg, normalize, where)
        hf = _from_pretrained(t, folder, where)
        encoder = fam.encoder_cls(config)
        missing, unexpected = encoder.load_state_dict(from_hf_state_dict(hf.state_dict()), strict=False)
        # a model configured without time masking has no masked_spec_embed; eval never uses it
        if unexpected or set(missing) - {"mask_emb"}:
            raise HarnessError(f"{where}: weights do not match the config: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
        return fam.upstream_cls(encoder, name, source=str(folder))
    if cfg.get("add_adapter"):  # its adapter downsamples the last state only: no common frame rate
        raise HarnessError(f"{where}: add_adapter=True is not supported (the adapter's output has another "
                           "frame rate than the other hidden states)")
    model = _from_pretrained(t, folder, where)
    batched = model_type == "wav2vec2" and cfg.get("feat_extract_norm", "group") == "layer"
    return HFUpstream(model, name, str(folder), batched=batched, normalize=normalize)


def export_hf(upstream: Upstream, out: Union[str, Path]) -> Path:
    """Write a project HuBERT / WavLM upstream as a transformers HubertModel / WavLMModel folder
    (config.json, model.safetensors, preprocessor_config.json) that
    `transformers.AutoModel.from_pretrained(out)` loads with every weight.

    Raises:
        HarnessError: for any other family.
    """
    if not isinstance(upstream, HubertUpstream) or upstream.family not in FAMILY_OF:
        raise HarnessError(f"{upstream.spec.name}: --format hf exports the hubert and wavlm families, "
                           f"not {upstream.spec.family!r}")
    if upstream.encoder.config.frontend != "cnn":
        raise HarnessError(f"{upstream.spec.name}: the {upstream.encoder.config.frontend!r} front end has no "
                           "counterpart in transformers' HubertModel / WavLMModel (they read waveforms through the CNN)")
    t = _transformers()
    config = upstream.encoder.config
    model_cls = t.WavLMModel if upstream.family == "wavlm" else t.HubertModel
    model = model_cls(hf_config(config, upstream.family)).eval()
    ours = upstream.encoder.state_dict()
    # the inverse of from_hf_state_dict, taken key by key over the transformers model's own names
    names = {k: next(iter(from_hf_state_dict({k: v}))) for k, v in model.state_dict().items()}
    if set(names.values()) != set(ours):
        raise HarnessError(f"{upstream.spec.name}: weights without a transformers counterpart: "
                           f"{sorted(set(ours) - set(names.values()))[:5]}")
    model.load_state_dict({k: ours[n] for k, n in names.items()}, strict=True)
    folder = Path(out)
    model.save_pretrained(str(folder))
    t.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0,
                               do_normalize=config.normalize,
                               return_attention_mask=config.extractor_mode == "layer_norm").save_pretrained(str(folder))
    return folder

