"""The pre-training objective seam: label streams, heads + loss, an optional batch transform, a
per-update hook.

An objective is the part of a pre-training method that is not the network: which label sets it
predicts (each a `LabelStream`: name, K, clustered from the iteration's feature source at that
source's rate and brought to the model's frame rate), the model it wraps around a family's
encoder (heads and loss), a transform applied to each micro-batch of waveforms after cropping
(WavLM's utterance mixing) and a hook run after every update (data2vec's EMA teacher). An
objective with `needs_labels = False` predicts no frame labels (its targets come from the model
itself): the run dumps no features, clusters nothing and writes no labels for it, and the loop
hands its model an empty label dict. The stages (dump, cluster, labels, loop, export) talk only
to this interface and to the model family's (upstreams/base.py).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, List, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from harness.config import merge


@dataclass(frozen=True)
class LabelStream:
    """One set of frame labels: stored in labels/<name>/<split>, clustered into clusters/<name>.

    Attributes:
        name: folder name ("main" for single-stream methods).
        k: number of classes.
        parent: "" (k-means on the iteration's features), or the name of an earlier stream whose
            centroids this stream's k-means clusters, each frame taking the cluster of its
            parent-level label (a level of MS-HuBERT's hierarchy).
    """

    name: str
    k: int
    parent: str = ""


@dataclass(frozen=True)
class NoOptions:
    """An objective without options of its own."""


class Objective(abc.ABC):
    """Base class; subclasses set `name` and `Options` (a frozen dataclass) and register."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    #: False: the objective predicts no frame labels (label_streams is empty; module docstring)
    needs_labels: ClassVar[bool] = True

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "objective.") -> "Objective":
        """Options from a recipe table (unknown keys fail, naming them)."""
        return cls(merge(cls.Options(), dict(d), where=where))

    def label_streams(self, k: int) -> List[LabelStream]:
        """The label sets this objective predicts, given the iteration's cluster count (none when
        `needs_labels` is False)."""
        return [LabelStream("main", int(k))] if self.needs_labels else []

    def check(self, iteration: Any) -> None:
        """Raise ConfigError when the options do not fit the iteration (an IterationConfig: its
        model and clustering); called when a recipe is loaded."""
        self.label_streams(iteration.cluster.k)

    @property
    def skips_parameters(self) -> bool:
        """True when a training step may leave some parameters without a gradient (the heads of
        dropped label sets): DDP must then look for unused parameters."""
        return False

    @abc.abstractmethod
    def build_model(self, encoder: nn.Module, streams: Sequence[LabelStream], train_cfg: Any) -> nn.Module:
        """The trainable model: `forward(wavs (B, S), labels {stream: (B, T) int64, -1 = none},
        mask (B, T) bool, wav_lens (B,) | None, step int | None) -> dict` with at least loss (summed, to be
        divided by the global masked-frame count), ce, n_masked, correct_masked, n_unmasked,
        correct_unmasked; its `encoder` attribute is what export keeps. With `needs_labels` False,
        labels is {}, ce is the summed loss term without penalties and the correct_* counts are
        0. Parameters that do not train (an EMA teacher) have requires_grad False: the optimiser
        leaves them out."""

    @property
    def needs_noise(self) -> bool:
        """True when `transform` draws noise clips (the run must supply a noise set)."""
        return False

    def transform(self, wavs: Tensor, generator: torch.Generator, noise: Optional[Any] = None) -> Tensor:
        """(n, S) cropped waveforms of one micro-batch -> the waveforms the model sees; labels are
        never changed. Default: identity."""
        return wavs

    def after_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        """Called by the loop after every update, before that step's checkpoint, on every rank,
        with the model `build_model` made (not the DDP wrapper), `step` = updates done (1 ..
        total_steps), also after an update skipped for a non-finite gradient (the step count
        moves on either way). Whatever it changes must live in the model's state dict (it is
        checkpointed with it) and draw no random number. Default: nothing."""
