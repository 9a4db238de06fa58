"""The task interface: data prep, head, loss, decode and scoring for one benchmark task.

Here: Task, what it passes around (Splits, Batch, Metric), the helpers of `prepare` and
ClassificationTask. The CTC tasks' base class is in tasks/base_ctc.py, the ML-SUPERB tasks' in
tasks/base_mlsuperb.py."""

from __future__ import annotations

import abc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from harness.config import ProbeConfig
from harness.data.corpus import Corpus, Utterance
from harness.errors import HarnessError


#: the departure of every task that trains on crops (SID, ASV, SD); see Task.departures
FEATURE_CACHE_CROPS = ("training crops are cut from features of the whole utterance (the feature cache runs the "
                       "upstream once per utterance); s3prl crops the waveform, then runs the upstream, so frames "
                       "near a crop's edges see context outside it here")

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


@dataclass(frozen=True)
class Metric:
    """One metric a task reports, declared as data and written into every result.json
    ("metric_specs"), so the board and the scores read its meaning from the run, not from code.

    Attributes:
        name: the key in the task's `score` output, e.g. "per".
        higher_is_better: its direction.
        unit: "%" (error rates, accuracies), "dB", or "" (a ratio, e.g. minDCF).
        perfect: the best value it can take (0 for an error rate, 100 for an accuracy), the
            1000 of the absolute score; None when it depends on the test data, and the task's
            `oracle_preds` gives it per corpus (SI-SDRi: the ideal ratio mask's).
        trivial: the trivial answer's value when the definition fixes it (EER 50 for any
            constant score); None: scored from the task's `trivial_preds` on the test set.
        version: bumped whenever the formula changes, so values of two formulas are never pooled.
    """

    name: str
    higher_is_better: bool
    unit: str = "%"
    perfect: Optional[float] = None
    trivial: Optional[float] = None
    version: int = 1

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "higher_is_better": self.higher_is_better, "unit": self.unit,
                "perfect": self.perfect, "trivial": self.trivial, "version": self.version}


def error_rate_metric(name: str, version: int = 1) -> Metric:
    return Metric(name, False, "%", perfect=0.0, version=version)


def accuracy_metric(name: str, version: int = 1) -> Metric:
    return Metric(name, True, "%", perfect=100.0, version=version)


#: what version 1 of every task is: its runs made before tasks declared versions (results without
#: "task_version"), by code whose definitions changed before 2026-12-03
UNVERSIONED = 1


class Task(abc.ABC):
    """One benchmark task. Subclasses set the class attributes and implement the methods."""

    name: str = ""
    primary_metric: str = ""
    higher_is_better: bool = True
    #: every metric `score` returns that a board may show, the primary first (tests check that
    #: primary_metric / secondary_metric / higher_is_better agree with it)
    metrics: Tuple[Metric, ...] = ()
    #: version -> what changed in that version (data, head, protocol or a metric); the task's
    #: version is the highest key. Bump it with a line whenever a change moves the task's numbers:
    #: the board never pools, ranks or scores runs of two versions together.
    versions: Dict[int, str] = {UNVERSIONED: "runs without a recorded version"}
    #: breaks ties on the dev primary metric when picking the dev-best step ("" = none: the later
    #: step wins); its direction is the one its entry in `metrics` declares
    secondary_metric: str = ""
    level: str = "utterance"  # utterance | frame | sequence | mixture
    #: profile name -> ProbeConfig overrides (a dict of ProbeConfig fields)
    profiles: Dict[str, Dict[str, Any]] = {}

    #: whether the Kaldi baselines (fbank, mfcc) give this task per-utterance CMVN'd features.
    #: False on SUPERB's mean-pool tasks (KS, SID): CMVN zeroes the utterance mean of every
    #: feature, all that a Linear -> mean-pool -> Linear head sees, and SUPERB's reference FBANK
    #: row is above chance there (upstreams/baselines.py, Upstream.for_task)
    baseline_cmvn: bool = True
    #: whether `loss` is defined on the dev split (average_best > 1 averages the checkpoints of
    #: the lowest dev losses). False where dev items are not training classes (ASV: held-out
    #: speakers); the probe then ranks those checkpoints by the dev primary metric instead
    dev_loss_defined: bool = True

    #: where this task departs from its reference recipe on purpose, one sentence each; saved
    #: with every result (result.json "departures") so a board can print them next to the number
    departures: Tuple[str, ...] = ()
    #: the lr of the task's reference recipe (its config's optimizer.lr); the paper profile's lr
    #: grid contains it (superb_lr_grid). None: the task has no reference recipe of its own
    reference_lr: Optional[float] = None

    @property
    def version(self) -> int:
        return max(self.versions)

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise HarnessError(f"task {self.name!r} declares no metric {name!r}; it declares "
                           f"{', '.join(m.name for m in self.metrics) or 'none'}")

    def identity(self) -> Dict[str, Any]:
        """What defines this task's numbers (result.json and the config hash): its version and
        every metric's declaration."""
        return {"task_version": self.version, "metric_specs": [m.to_dict() for m in self.metrics]}

    def oracle_preds(self, refs: Dict[str, Any], info: Dict[str, Any]) -> Optional[Tuple[str, Dict[str, Any]]]:
        """The best answer a probe could hope for, in `decode`'s format, where a metric's perfect
        value depends on the data (Metric.perfect None): (what it is, preds). None = every
        metric has a fixed perfect value."""
        return None

    #: the values `probe.head` may take for this task (checked when the config is resolved)
    heads: Tuple[str, ...] = ("default",)

    def set_lexicon(self, path: str) -> None:
        """Use a pronunciation lexicon file for the targets (only tasks with phone targets do)."""
        raise HarnessError(f"task {self.name!r} reads no lexicon (--lexicon is for pr)")

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

    def trivial_preds(self, refs: Dict[str, Any], info: Dict[str, Any]) -> Optional[Tuple[str, Dict[str, Any]]]:
        """A trivial answer that needs no model, in `decode`'s format, for the items of `refs`:
        (what it is, preds). It is scored like the probe on test and saved with the run, as the
        floor a probe has to beat (an empty transcript, the most frequent class, all silence, the
        mixture itself). None = the task has none."""
        return None

    #: what a subset is (names the per-subset extras, e.g. "language" -> per_language_cer)
    subset_label: str = "subset"

    def subsets(self, splits: Splits, profile: str) -> Optional[Dict[str, Splits]]:
        """Several probes in one run: name -> the data of one probe (e.g. one per language for
        mono_asr), each a subset of `splits` so they share its feature sources. None (the
        default) = one probe on `splits`. See harness.evaluate.train_subset_probes."""
        return None

    def combine_subsets(self, values: Dict[str, float], subsets: Dict[str, "Splits"]) -> float:
        """One metric of a run from its subsets' values (subset name -> value): the unweighted
        mean, NaNs left out. See harness.evaluate.train_subset_probes."""
        from tasks.metrics import macro_mean

        return macro_mean(values)


def most_frequent(values) -> Any:
    """The most frequent value (ties: the smallest), e.g. the best constant answer for a split."""
    counts = Counter(values)
    return min(counts, key=lambda c: (-counts[c], c))


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
    metrics = (accuracy_metric("acc"),)

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

    def trivial_preds(self, refs, info):
        # the best constant answer: the most frequent class of the scored split itself
        top = most_frequent(refs.values())
        return f"constant answer: the most frequent test class ({top})", {i: top for i in refs}
