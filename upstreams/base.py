"""The upstream interface (every upstream returns HiddenStates with L+1 layers) and the model
family plugin seam (docs/design.md section 6): a family file registers a `Family` (config class + presets,
encoder builder, upstream adapter); export/load of `upstream.json` + `upstream.safetensors` is
keyed by its `family` field, so `harness eval`, feature dumping, export and pre-training only
talk to this interface."""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple, Union, runtime_checkable

import torch
from torch import Tensor, nn

from harness.errors import HarnessError
from harness.upstream_names import CONFIG_FILE

WEIGHTS_FILE = "upstream.safetensors"
RANDOM_SEED = 0
SAMPLE_RATE = 16000  # every upstream's input rate (Hz)


@dataclass
class HiddenStates:
    """All hidden layers of an upstream for one batch.

    Attributes:
        layers: L+1 tensors of shape (B, T, D). Index 0 is the input of the first transformer
            layer (projected CNN features + positional conv), index L the encoder output.
            Baselines such as fbank have a single layer.
        lengths: (B,) int64, number of valid frames per item; frames past it are padding.
    """

    layers: List[torch.Tensor]
    lengths: torch.Tensor


@dataclass(frozen=True)
class UpstreamSpec:
    """What the rest of the harness may know about an upstream.

    Attributes:
        name: registered name or readable name of an exported checkpoint.
        family: model family ("fbank", "mfcc", "hubert", ...).
        sample_rate: input sample rate in Hz (16000).
        num_layers: number of hidden states exposed, L+1.
        hidden_size: D, the feature dimension of every layer.
        frame_rate_hz: frames per second of the hidden states (50 for a 20 ms stride).
        source: where the weights come from (a checkpoint path, or a builder description).
    """

    name: str
    family: str
    sample_rate: int
    num_layers: int
    hidden_size: int
    frame_rate_hz: float
    source: str = ""

    @property
    def stride(self) -> int:
        """Samples per frame (320 for 20 ms at 16 kHz)."""
        return int(round(self.sample_rate / self.frame_rate_hz))


class Upstream(nn.Module, abc.ABC):
    """Base class: subclasses set `self.spec` and implement `forward`.

    `forward(wavs (B, S) float32 at 16 kHz, wav_lens (B,) samples) -> HiddenStates`.
    Probing calls it in eval mode under no_grad; implementations must give each item of a
    padded batch the same valid frames as that item run alone.
    """

    spec: UpstreamSpec

    @abc.abstractmethod
    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Valid frames for waveforms of `num_samples` samples, (B,) int64."""

    def hidden_states(self, wavs: torch.Tensor, wav_lens: torch.Tensor, upto: Optional[int] = None) -> HiddenStates:
        """Like forward, but only layers 0..upto are needed (families that can stop early do)."""
        hs = self(wavs, wav_lens)
        return hs if upto is None else HiddenStates(hs.layers[: upto + 1], hs.lengths)

    def for_task(self, task: Any) -> "Upstream":
        """The upstream that `task` probes: this one, unless the reference row of this upstream
        used another variant of it on that task (the Kaldi baselines on SUPERB's mean-pool tasks,
        upstreams/baselines.py). The variant keeps the name; its spec's source tells them apart."""
        return self

    def weights_hash(self) -> str:
        """A stable hash of the spec and all parameters/buffers: the feature cache key."""
        h = hashlib.sha256(json.dumps(asdict(self.spec), sort_keys=True).encode())
        for name, t in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- model families


@dataclass
class EncoderOutput:
    """What a family's encoder returns (the pre-training objectives read all of it).

    Attributes:
        hidden_states: num_layers + 1 tensors (B, T, D), padded frames zero.
        lengths: (B,) int64 valid frames.
        padding_mask: (B, T) bool, True on padding.
        features: (B, T, C) waveform-CNN output before its LayerNorm (padded frames zero), for the
            feature penalty of pre-training.
    """

    hidden_states: List[Tensor]
    lengths: Tensor
    padding_mask: Tensor
    features: Tensor = field(repr=False)


#: what a transformer stack calls after each layer that ran: (1-based layer index, its output
#: (B, T, D)) -> the state kept and fed to the next layer (MS-HuBERT's swap)
LayerHook = Callable[[int, Tensor], Tensor]


@runtime_checkable
class Encoder(Protocol):
    """What the pre-training objectives (harness/pretrain) may call on a family's encoder besides
    the nn.Module API (state_dict, to, train, ...); every family's `encoder_cls` builds an
    nn.Module that is one (tests/unit/test_family_contract.py checks each registered family, and
    that harness/pretrain calls nothing else).

    Attributes:
        config: the family config (`Family.config_cls`): the objectives read `encoder_layers`,
            `encoder_dim`, `final_dim` and, where present, `frontend`.
        num_layers: transformer layers L (hidden states are L + 1).
        encoder: the transformer stack (nn.Module with `.layers`, each ending in an `fc2` feed-
            forward output): a teacher objective (data2vec) copies it and reads its layers.
        layer_norm, post_extract_proj, dropout_input: the front end's last three steps, in that
            order (front_end applies them to the features); data2vec's teacher input is the
            features through the first two, before the dropout.
    """

    config: Any
    encoder: Any
    layer_norm: Any
    post_extract_proj: Any
    dropout_input: Any

    @property
    def num_layers(self) -> int: ...

    def __call__(self, wavs: Tensor, wav_lens: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                 num_layers: Optional[int] = None) -> EncoderOutput:
        """wavs (B, S) float 16 kHz, wav_lens (B,) samples (None: all S), mask (B, T) bool frames
        replaced by the mask embedding, num_layers: stop after that many layers."""

    def front_end(self, wavs: Tensor, wav_lens: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """The part before the transformer -> (x (B, T, D) transformer input before masking,
        features (B, T, C), lengths (B,) int64 valid frames, padding_mask (B, T) bool)."""

    def apply_mask(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, T, D) with the frames where mask (B, T) is True replaced by the mask embedding."""

    def transformer_states(self, x: Tensor, padding_mask: Optional[Tensor] = None, num_layers: Optional[int] = None,
                           layer_hook: Optional[LayerHook] = None) -> List[Tensor]:
        """The transformer on x (B, T, D) (front_end's, masked or not) -> num_layers + 1 states
        (B, T, D), padded frames zero; `layer_hook` after every layer that ran."""


@dataclass(frozen=True)
class Family:
    """A model family: everything the engine may know about building and loading one.

    Attributes:
        name: the `family` field of upstream.json ("hubert", "wavlm").
        config_cls: frozen dataclass with `to_dict()`, `from_dict(d)` (unknown keys fail),
            `encoder_dim`, `encoder_layers`, `final_dim`, `layerdrop`, `stride` (samples per
            frame), `receptive_field` (samples) and `num_frames(num_samples) -> (B,) int64`.
        presets: preset name -> config factory ("tiny", "base", ...).
        encoder_cls: nn.Module built from a config, an `Encoder` (above).
        upstream_cls: the Upstream adapter, `upstream_cls(encoder, name, source)`; it keeps the
            encoder as its `encoder` attribute.
        sources: checkpoint source ("hf", "fairseq", "torchaudio", "s3prl") -> this family's
            conversion from (and to) that source's format (upstreams/base_conversion.py). The
            source modules ask the registered families which one reads a checkpoint and hold no
            family names themselves.
    """

    name: str
    config_cls: type
    presets: Mapping[str, Callable[[], Any]]
    encoder_cls: Callable[[Any], nn.Module]
    upstream_cls: Callable[..., "Upstream"]
    sources: Mapping[str, Any] = field(default_factory=dict)

    def preset(self, name: str) -> Any:
        if name not in self.presets:
            raise HarnessError(f"family {self.name!r} has no preset {name!r}; known: {', '.join(self.presets)}")
        return self.presets[name]()

    def random_encoder(self, config: Any, seed: int = RANDOM_SEED) -> nn.Module:
        """An untrained encoder whose weights depend only on (config, seed); global RNG untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.encoder_cls(config)

    def random_upstream(self, preset: str) -> "Upstream":
        """`random:<family>_<preset>`: the untrained network every leaderboard needs as a row."""
        return self.upstream_cls(self.random_encoder(self.preset(preset)), f"random:{self.name}_{preset}",
                                 f"random init, {self.name} preset {preset}, seed {RANDOM_SEED}")


def get_family(name: str) -> Family:
    from harness.registry import FAMILIES, load_all

    load_all()
    return FAMILIES.get(name)


def register_family_upstreams(family: Family) -> Family:
    """Register `family` and one `random:<family>_<preset>` upstream per preset."""
    from harness.registry import register_family, register_upstream

    register_family(family.name)(family)
    for preset in family.presets:
        register_upstream(f"random:{family.name}_{preset}")(lambda p=preset: family.random_upstream(p))
    return family


def export_encoder(encoder: nn.Module, family: str, path: Union[str, Path], name: str,
                   pretraining: Optional[Dict[str, Any]] = None) -> Path:
    """Write `upstream.safetensors` + `upstream.json` (family, name, config and, when given,
    `pretraining`: what the weights were trained on, e.g. corpus, hours, updates) into folder
    `path`, each through a temporary file and a rename; returns the folder."""
    from safetensors.torch import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file(sd, str(tmp), metadata={"format": "pt"})
    tmp.replace(folder / WEIGHTS_FILE)
    meta = {"format_version": 1, "family": family, "name": name, "config": encoder.config.to_dict()}
    if pretraining is not None:
        meta["pretraining"] = pretraining
    tmp = folder / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    tmp.replace(folder / CONFIG_FILE)
    return folder


def read_export_config(path: Union[str, Path]) -> tuple:
    """(family, config, meta) of an exported folder (or a file inside it), without the weights."""
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise HarnessError(f"{cfg_path}: missing upstream config file")
    try:
        meta = json.loads(cfg_path.read_text())
        fam = get_family(str(meta.get("family")))
        config = fam.config_cls.from_dict(meta["config"])
    except (ValueError, KeyError, TypeError, AttributeError, HarnessError) as e:
        raise HarnessError(f"{cfg_path}: bad upstream config: {e}") from None
    return fam, config, meta


def load_exported(path: Union[str, Path]) -> "Upstream":
    """Load a folder written by `export_encoder` (or the path of a file inside it), in eval mode,
    through the family named in its upstream.json."""
    from safetensors.torch import load_file

    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    fam, config, meta = read_export_config(folder)
    w_path = folder / WEIGHTS_FILE
    if not w_path.is_file():
        raise HarnessError(f"{w_path}: missing upstream weights file")
    try:
        sd = load_file(str(w_path))
    except Exception as e:  # safetensors raises several types on corrupt files
        raise HarnessError(f"{w_path}: cannot read weights: {e}") from None
    encoder = fam.encoder_cls(config)
    check_state_dict(encoder, sd, w_path)
    encoder.load_state_dict(sd)
    return fam.upstream_cls(encoder, str(meta.get("name") or folder.name), source=str(folder))


def check_state_dict(module: nn.Module, sd: Dict[str, Tensor], where: Path) -> None:
    """Same keys and shapes as `module`'s state dict, or an error naming the file."""
    ours = module.state_dict()
    missing, unexpected = sorted(set(ours) - set(sd)), sorted(set(sd) - set(ours))
    if missing or unexpected:
        raise HarnessError(f"{where}: weights do not match the config: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    for k, v in ours.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise HarnessError(f"{where}: shape of {k} is {tuple(sd[k].shape)}, config expects {tuple(v.shape)}")
        # load_state_dict would cast an integer tensor into a float parameter without a word;
        # float precisions (a float16 checkpoint) are cast on purpose
        if sd[k].is_floating_point() != v.is_floating_point() or (sd[k].dtype == torch.bool) != (v.dtype == torch.bool):
            raise HarnessError(f"{where}: {k} is {str(sd[k].dtype).replace('torch.', '')}, "
                               f"the model expects {str(v.dtype).replace('torch.', '')}")
