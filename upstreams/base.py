"""The upstream interface: every model family returns HiddenStates with L+1 layers."""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import List

import torch
from torch import nn


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

    def weights_hash(self) -> str:
        """A stable hash of the spec and all parameters/buffers: the feature cache key."""
        h = hashlib.sha256(json.dumps(asdict(self.spec), sort_keys=True).encode())
        for name, t in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]
