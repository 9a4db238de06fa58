"""The task interface: data prep, head, loss, decode and scoring for one benchmark task."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from harness.config import ProbeConfig
from harness.data.corpus import Corpus, Utterance
from harness.errors import HarnessError


@dataclass
class Splits:
    """A task's data on one corpus.

    Attributes:
        train, dev, test: the utterances of each split.
        info: what heads and scoring need (vocabulary, class names, trial lists, ...).
        pools: split -> the (subset, split) pools of the corpus that hold its utterances, so
            tasks reading the same audio share one feature cache.
    """

    train: List[Utterance]
    dev: List[Utterance]
    test: List[Utterance]
    info: Dict[str, Any] = field(default_factory=dict)
    pools: Dict[str, List[List[Utterance]]] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, List[Utterance]]:
        return {"train": self.train, "dev": self.dev, "test": self.test}


@dataclass
class Batch:
    """What a head's loss and decoder see besides the features.

    Attributes:
        ids: utterance ids, (B,).
        lengths: (B,) valid frames of the features given to the head.
        targets: the task's collated targets (see each task's `collate`), whole utterances.
        crops: per item (start_frame, num_frames) of the utterance the features cover, when the
            training sampler cropped them (None at evaluation: whole utterances). Frame-level
            tasks slice their targets with it.
    """

    ids: List[str]
    lengths: torch.Tensor
    targets: Any
    crops: Optional[List[Tuple[int, int]]] = None


class Task(abc.ABC):
    """One benchmark task. Subclasses set the class attributes and implement the methods."""

    name: str = ""
    primary_metric: str = ""
    higher_is_better: bool = True
    level: str = "utterance"  # utterance | frame | sequence | mixture
    #: profile name -> ProbeConfig overrides (a dict of ProbeConfig fields)
    profiles: Dict[str, Dict[str, Any]] = {}

    def probe_defaults(self, profile: str) -> Dict[str, Any]:
        if profile not in self.profiles:
            raise HarnessError(f"task {self.name!r} has no profile {profile!r}; known: {', '.join(self.profiles)}")
        return dict(self.profiles[profile])

    @abc.abstractmethod
    def prepare(self, corpus: Corpus) -> Splits:
        """Select and label the task's data in `corpus`."""

    @abc.abstractmethod
    def target(self, utt: Utterance, info: Dict[str, Any]) -> Any:
        """The training/scoring reference of one utterance."""

    @abc.abstractmethod
    def collate(self, targets: Sequence[Any]) -> Any:
        """Batch a list of targets."""

    @abc.abstractmethod
    def build_head(self, dim: int, frame_rate: float, info: Dict[str, Any], cfg: ProbeConfig) -> nn.Module:
        """The head: `forward(x (B, T, D), lengths (B,)) -> output` for `loss` and `decode`."""

    @abc.abstractmethod
    def loss(self, out: Any, batch: Batch) -> torch.Tensor:
        """Scalar training loss."""

    @abc.abstractmethod
    def decode(self, out: Any, batch: Batch) -> List[Any]:
        """One prediction per item (a label, a string, an embedding, ...)."""

    @abc.abstractmethod
    def score(self, preds: Dict[str, Any], refs: Dict[str, Any], info: Dict[str, Any], split: str) -> Dict[str, float]:
        """Metrics of a split from predictions and references keyed by utterance id (pure)."""

    def sample_weights(self, train: List[Utterance], info: Dict[str, Any]) -> Optional[List[float]]:
        """Per-item sampling weights for training batches (None = uniform shuffling)."""
        return None

    def extra_results(self, preds: Dict[str, Any], refs: Dict[str, Any], info: Dict[str, Any]) -> Dict[str, Any]:
        """Task-specific tables saved with the run (e.g. per-class accuracy)."""
        return {}


def pools_by_subset_split(corpus: Corpus, splits: Dict[str, List[Utterance]]) -> Dict[str, List[List[Utterance]]]:
    """For each split, the corpus pools (all utterances of a (subset, split)) its items come from."""
    out = {}
    for name, utts in splits.items():
        keys = sorted({(u.subset, u.split) for u in utts})
        out[name] = [corpus.select(split=sp, subset=sub) for sub, sp in keys]
    return out


def require(utts: List[Utterance], task: str, corpus: Corpus, what: str) -> List[Utterance]:
    if not utts:
        raise HarnessError(f"corpus {corpus.name} ({corpus.root}) has no {what} for task {task!r}")
    return utts


class ClassificationTask(Task):
    """Utterance classification (KS, SID, LID): mean-pool classifier, cross-entropy, accuracy.

    Subclasses implement `prepare` (putting `classes` into info) and `label(utt)`.
    """

    primary_metric = "acc"
    higher_is_better = True
    level = "utterance"

    @abc.abstractmethod
    def label(self, utt: Utterance) -> str:
        """The class name of an utterance."""

    def target(self, utt, info):
        return self.label(utt)

    def collate(self, targets):
        return list(targets)

    def build_head(self, dim, frame_rate, info, cfg):
        from tasks.heads import MeanPoolClassifier

        self._index = {c: i for i, c in enumerate(info["classes"])}
        self._classes = list(info["classes"])
        return MeanPoolClassifier(dim, cfg.head_dim, len(info["classes"]))

    def loss(self, out, batch):
        y = torch.tensor([self._index[t] for t in batch.targets], dtype=torch.long, device=out.device)
        return nn.functional.cross_entropy(out, y)

    def decode(self, out, batch):
        return [self._classes[i] for i in out.argmax(-1).tolist()]

    def score(self, preds, refs, info, split):
        from tasks.metrics import accuracy

        ids = list(refs)
        return {"acc": accuracy([refs[i] for i in ids], [preds[i] for i in ids])}


class CTCTask(Task):
    """Sequence transcription with CTC and greedy decoding (PR, ASR).

    Subclasses implement `tokens(utt) -> list[str]`, set `char_level`, and put
    `vocab` (index 0 = blank) into info in `prepare`.
    """

    level = "sequence"
    higher_is_better = False

    @abc.abstractmethod
    def tokens(self, utt: Utterance) -> List[str]:
        """The reference token sequence of an utterance."""

    def target(self, utt, info):
        return self.join(self.tokens(utt))

    def collate(self, targets):
        return list(targets)

    #: tokens are characters (ASR) rather than space-separated symbols (PR)
    char_level: bool = False

    def join(self, tokens: Sequence[str]) -> str:
        """Tokens back to the scored string."""
        return "".join(tokens) if self.char_level else " ".join(tokens)

    def encode(self, text: str) -> List[int]:
        """Reference string -> vocabulary ids (symbols unseen in training are dropped)."""
        toks = list(text) if self.char_level else text.split()
        return [self._index[t] for t in toks if t in self._index]

    def vocab_from(self, train: List[Utterance]) -> List[str]:
        syms = sorted({t for u in train for t in self.tokens(u)})
        return ["<blank>"] + syms

    def loss(self, out, batch):
        from tasks.heads import ctc_loss

        log_probs, lens = out
        return ctc_loss(log_probs, lens, [self.encode(t) for t in batch.targets])

    def decode(self, out, batch):
        from tasks.metrics import ctc_greedy

        log_probs, lens = out
        return [self.join([self._vocab[i] for i in seq]) for seq in ctc_greedy(log_probs, lens)]

    def _set_vocab(self, info):
        self._vocab = list(info["vocab"])
        self._index = {t: i for i, t in enumerate(self._vocab)}
