"""The task interface: data prep, head, loss, decode and scoring for one benchmark task."""

from __future__ import annotations

import abc
import math
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


class CTCTask(Task):
    """Sequence transcription with CTC and greedy decoding (PR, ASR).

    Subclasses implement `tokens(utt) -> list[str]` and `make_head(dim, info, cfg)`, set
    `char_level`, and put `vocab` (index 0 = blank) into info in `prepare`.

    Frame rate: the head sees at least MIN_FRAME_RATE_HZ (50 Hz, the 20 ms frames the SUPERB
    heads were designed for): a coarser upstream's frames are repeated (40 ms: twice, 80 ms:
    four times; tasks.heads.RepeatFrames), as s3prl's multires_hubert expert brings its coarse
    layers to 20 ms. At 12.5 Hz a character transcript (about 15 characters a second) could not
    be aligned at all.

    Unalignable targets: a training target that needs more CTC frames (tokens + a blank between
    adjacent repeats) than the head outputs adds zero loss, as in s3prl and ESPnet (CTC
    zero_infinity), but is never silent: each is recorded, and result.json's extra
    `ctc_unalignable_train` maps utterance -> the frames it needs and has. This happens at 20 ms
    too: the ML-SUPERB head halves the frame rate (25 Hz) and fast synth speech in some languages
    has more characters than that (6 of 46 mono_asr_10min train items on synth tiny). A training
    batch in which no item fits is an error naming its first utterance: nothing would be learned.
    """

    level = "sequence"
    higher_is_better = False
    MIN_FRAME_RATE_HZ = 50.0

    @abc.abstractmethod
    def make_head(self, dim: int, info: Dict[str, Any], cfg: ProbeConfig) -> nn.Module:
        """The CTC head on frames at the head rate: forward(x, lengths) -> (log_probs, lengths)."""

    def build_head(self, dim, frame_rate, info, cfg):
        from tasks.heads import RepeatFrames

        self._set_vocab(info)
        self.unalignable: Dict[str, str] = {}
        repeat = max(1, math.ceil(self.MIN_FRAME_RATE_HZ / frame_rate - 1e-9))
        self._head_rate = frame_rate * repeat
        head = self.make_head(dim, info, cfg)
        return head if repeat == 1 else RepeatFrames(head, repeat)

    @abc.abstractmethod
    def tokens(self, utt: Utterance) -> List[str]:
        """The reference token sequence of an utterance."""

    def target(self, utt, info):
        return self.join(self.tokens(utt))

    def collate(self, targets):
        return list(targets)

    #: tokens are characters (ASR) rather than space-separated symbols (PR)
    char_level: bool = False
    #: how CTC losses of a batch combine (tasks.heads.ctc_loss): "mean" (s3prl) or "batch" (ESPnet)
    ctc_reduction: str = "mean"

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
        targets = [self.encode(t) for t in batch.targets]
        if not torch.is_grad_enabled():  # a dev loss (checkpoint averaging): nothing to record
            return ctc_loss(log_probs, lens, targets, reduction=self.ctc_reduction)
        bad = {}
        for uid, seq, n in zip(batch.ids, targets, lens.tolist()):
            need = len(seq) + sum(a == b for a, b in zip(seq, seq[1:]))  # a blank between repeats
            if need > n:
                bad[uid] = (f"needs {need} CTC frames ({len(seq)} tokens + repeats), the head outputs {n} "
                            f"(features at {self._head_rate:g} Hz)")
        self.unalignable.update(bad)
        if len(bad) == len(targets):
            uid = next(iter(bad))
            raise HarnessError(f"task {self.name!r}: no target of a training batch fits CTC: utterance {uid} "
                               f"{bad[uid]}; the frames are too coarse for these transcripts")
        # unalignable items add 0 (zero_infinity), recorded above
        return ctc_loss(log_probs, lens, targets, reduction=self.ctc_reduction)

    def extra_results(self, preds, refs, info):
        return {"ctc_unalignable_train": dict(sorted(self.unalignable.items()))} if self.unalignable else {}

    def decode(self, out, batch):
        from tasks.metrics import ctc_greedy

        log_probs, lens = out
        return [self.join([self._vocab[i] for i in seq]) for seq in ctc_greedy(log_probs, lens)]

    def trivial_preds(self, refs, info):
        return "empty output", {i: "" for i in refs}

    def _set_vocab(self, info):
        self._vocab = list(info["vocab"])
        self._index = {t: i for i, t in enumerate(self._vocab)}


class MLSuperbTask(CTCTask):
    """The ML-SUPERB tasks (docs/protocol.md section 3: mono_asr, ml_asr, lid_ctc, asr_lid): the ML-SUPERB
    head, CTC over characters of normalised text (space is a token) and/or one `[lang]` token per
    language, greedy decoding; CER pooled over the utterances of the normal and of the few-shot
    languages (`grouped_cer`), LID accuracy over utterances.

    Training data follow a budget (harness/data/budgets.py): per language up to 10 min or 1 h of
    speech (scaled on synth), few-shot languages 5 utterances. Each subclass is registered twice
    by `register_mlsuperb(family)`, as `<family>_10min` and `<family>_1h`.

    Class attributes a subclass sets:
        family: the task family name (the registered names add the budget).
        fewshot: include few-shot languages.
        with_tag / with_text: targets start with the `[lang]` token / hold the transcript.
        quick: the quick profile (ProbeConfig overrides); the paper profile is shared.

    Head (ProbeConfig): head_dim = Transformer width d (8 heads from 256 up, else 4), head_layers
    = blocks, dropout; head "default" = ESPnet's sizes (FFN 4d, d subsampling channels), "lite" =
    FFN 2d and 8 subsampling channels (the quick profile: a CPU affords it; the convolutions are the
    costliest part, and 8 channels instead of 16 train asr_lid 15% faster for 1-2 CER points).
    """

    heads = ("default", "lite")

    family: str = ""
    budget: str = "10min"
    char_level = True
    fewshot: bool = True
    with_tag: bool = False
    with_text: bool = True
    #: the quick profile of each family; none turns SpecAugment on: the recipe's masks slow a
    #: few hundred updates down (ml_asr_10min, synth small, test CER normal without / with:
    #: fbank 49.35 / 54.30, mfcc 52.40 / 63.17)
    quick: Dict[str, Any] = {}
    #: paper profile (ESPnet egs2/ml_superb/asr1/conf/tuning/train_asr_s3prl_{10min,1h}.yaml): Adam
    #: 1e-4, weight decay 1e-6, 8 utterances x accumulation 4, ESPnet's grad_clip default 5,
    #: 2 pre-LN blocks d 256 / 8 heads / FFN 1024, dropout 0.1, the recipe's SpecAugment, the
    #: average of the 5 checkpoints with the lowest validation loss (keep_nbest_models 5)
    paper: Dict[str, Any] = dict(lrs=(1e-4,), batch_seconds=8 * 30.0, max_batch_items=8, grad_accum=4, grad_clip=5.0,
                                 head_dim=256, head_layers=2, dropout=0.1, optimizer="adam",
                                 weight_decay=1e-6, specaug=True, average_best=5)
    #: updates = num_iters_per_epoch x max_epoch / accum_grad: 10000 x 30 / 4 and 20000 x 30 / 4
    paper_steps: Dict[str, int] = {"10min": 75_000, "1h": 150_000}
    #: one evaluation per ESPnet epoch (num_iters_per_epoch / accum_grad updates)
    paper_eval_every: Dict[str, int] = {"10min": 2_500, "1h": 5_000}
    ctc_reduction = "batch"  # espnet2/asr/ctc.py: summed, divided by the batch size

    # -- targets ---------------------------------------------------------------------------
    #: the multilingual prep's bracket regex (ESPnet local/data_prep.py); the monolingual prep
    #: (local/single_lang_data_prep.py) has none
    remove_brackets: bool = True

    def transcript(self, utt: Utterance) -> str:
        from tasks.metrics import mlsuperb_normalize

        return mlsuperb_normalize(utt.text, brackets=self.remove_brackets)

    def tokens(self, utt):
        from tasks.metrics import lang_token

        toks = [lang_token(utt.language)] if self.with_tag else []
        if self.with_text:
            text = self.transcript(utt)
            toks += ([" "] if toks else []) + list(text)
        return toks

    def encode(self, text):
        from tasks.metrics import split_tokens

        return [self._index[t] for t in split_tokens(text) if t in self._index]

    def usable(self, utt: Utterance) -> bool:
        """Speech with a language (and, for transcript targets, non-empty normalised text)."""
        return bool(utt.language) and (not self.with_text or bool(self.transcript(utt)))

    #: the multilingual prep skips training utterances over 20 s ("the default setting in ml-superb
    #: benchmark", local/data_prep.py); the monolingual prep keeps them (None)
    max_train_seconds: Optional[float] = 20.0

    def trainable(self, utt: Utterance) -> bool:
        """A usable utterance the recipe keeps for training."""
        return self.usable(utt) and (self.max_train_seconds is None or utt.duration <= self.max_train_seconds)

    # -- data ------------------------------------------------------------------------------
    def prepare(self, corpus):
        from harness.data.budgets import select_budget

        usable = [u for u in corpus.select(split="train", subset="speech") if self.usable(u)]
        langs = sorted({u.language for u in usable})
        picked, binfo = select_budget(corpus, self.budget, languages=langs, keep=self.trainable)
        if not self.fewshot:
            picked = {k: v for k, v in picked.items() if k not in binfo["fewshot_languages"]}
        if not picked:
            raise HarnessError(f"corpus {corpus.name} ({corpus.root}) has no usable language for task {self.name!r}")
        train = [u for lang in sorted(picked) for u in picked[lang]]

        def pick(split):
            utts = [u for u in corpus.select(split=split, subset="speech") if u.language in picked and self.usable(u)]
            return require(utts, self.name, corpus, f"{split} speech in languages {', '.join(sorted(picked))}")

        splits = {"train": train, "dev": pick("dev"), "test": pick("test")}
        available = {lang: round(sum(u.duration for u in usable if u.language == lang), 3) for lang in picked}
        info = {
            **binfo,
            "train_seconds": {k: v for k, v in binfo["train_seconds"].items() if k in picked},
            "train_utts": {k: v for k, v in binfo["train_utts"].items() if k in picked},
            "languages": sorted(picked),
            "fewshot_languages": [x for x in binfo["fewshot_languages"] if x in picked],
            "normal_languages": [x for x in binfo["normal_languages"] if x in picked],
            "available_seconds": available,
            "language_of": {u.id: u.language for part in splits.values() for u in part},
            "vocab": self.vocab_from(train),
        }
        return Splits(**splits, info=info, pools=pools_by_subset_split(corpus, splits))

    def make_head(self, dim, info, cfg):
        from tasks.heads import MLSUPERB_SPECAUG, MLSuperbHead

        d = cfg.head_dim
        if cfg.head not in ("default", "lite"):
            raise HarnessError(f"task {self.name!r}: head {cfg.head!r} unknown; choose default or lite")
        # "lite" (quick profile): 8 subsampling channels instead of d, FFN 2d instead of 4d
        lite = cfg.head == "lite"
        return MLSuperbHead(dim, len(info["vocab"]), d_model=d, heads=8 if d >= 256 else 4, ffn=(2 if lite else 4) * d,
                            layers=cfg.head_layers, dropout=cfg.dropout, conv_channels=8 if lite else None,
                            specaug=MLSUPERB_SPECAUG if cfg.specaug else None)

    # -- scoring ---------------------------------------------------------------------------
    def by_language(self, refs: Dict[str, Any], info: Dict[str, Any]) -> Dict[str, List[str]]:
        out: Dict[str, List[str]] = {}
        for uid in refs:
            out.setdefault(info["language_of"][uid], []).append(uid)
        return dict(sorted(out.items()))

    def language_cer(self, preds, refs, info) -> Dict[str, float]:
        """CER per language on transcripts, language tags removed (percent)."""
        from tasks.metrics import char_error_rate

        return {lang: char_error_rate([self.text_part(refs[i]) for i in ids], [self.text_part(preds[i]) for i in ids])
                for lang, ids in self.by_language(refs, info).items()}

    def grouped_cer(self, preds, refs, info) -> Dict[str, float]:
        """CER in percent pooled over the utterances of a group, as ML-SUPERB's sclite runs on the
        hypotheses of the "trained" and the "reserved" (few-shot) languages (ESPnet
        egs2/ml_superb/asr1/local/split_results.py, score_type normal): cer_normal, cer_fewshot,
        and cer over all utterances. Language tags are removed first."""
        from tasks.metrics import char_error_rate

        few = set(info["fewshot_languages"])
        groups: Dict[str, List[str]] = {"cer": list(refs), "cer_normal": [], "cer_fewshot": []}
        for uid in refs:
            groups["cer_fewshot" if info["language_of"][uid] in few else "cer_normal"].append(uid)
        return {name: char_error_rate([self.text_part(refs[i]) for i in ids], [self.text_part(preds[i]) for i in ids])
                for name, ids in groups.items()}

    def text_part(self, target: str) -> str:
        """The transcript of a target or output string (language tags removed where targets have them)."""
        from tasks.metrics import strip_lang_tokens

        return strip_lang_tokens(target) if self.with_tag else target

    def decoded_language(self, text: str) -> str:
        from tasks.metrics import first_lang_token, split_tokens

        return first_lang_token(split_tokens(text))

    def lid_scores(self, preds, refs, info) -> Dict[str, Any]:
        """LID by ML-SUPERB's rule (first tag of the greedy output, "[UNK]" if none): accuracy,
        macro accuracy and per-language accuracy (percent)."""
        from tasks.metrics import accuracy, macro_accuracy, per_class_accuracy

        ids = list(refs)
        r = [self.decoded_language(refs[i]) for i in ids]
        p = [self.decoded_language(preds[i]) for i in ids]
        per = per_class_accuracy(r, p)
        code = {self.decoded_language(refs[i]): info["language_of"][i] for i in ids}
        return {"acc": accuracy(r, p), "macro_acc": macro_accuracy(r, p),
                "per_language": {code[t]: v for t, v in per.items()}}

    def trivial_preds(self, refs, info):
        if not self.with_tag:
            return super().trivial_preds(refs, info)
        top = most_frequent(self.decoded_language(r) for r in refs.values())
        what = f"constant answer: the most frequent test language tag ({top})"
        return what + (" and no transcript" if self.with_text else ""), {i: top for i in refs}

    def extra_results(self, preds, refs, info):
        return {**super().extra_results(preds, refs, info), "per_language_cer": self.language_cer(preds, refs, info),
                "budget": self.budget_record(info)}

    def budget_record(self, info: Dict[str, Any]) -> Dict[str, Any]:
        """The training data a result was trained on: budget, scale, seconds and utterances per language."""
        keys = ("budget", "budget_seconds", "budget_scale", "budget_seconds_scaled", "train_seconds", "train_utts",
                "normal_languages", "fewshot_languages", "mono_languages", "mono_languages_note")
        return {k: info[k] for k in keys if k in info}


def register_mlsuperb(family: str):
    """Class decorator: register `<family>_10min` and `<family>_1h`, each a subclass fixing the budget."""
    from harness.data.budgets import BUDGETS
    from harness.registry import register_task

    def deco(cls):
        for budget in BUDGETS:
            name = f"{family}_{budget}"
            profiles = {"quick": dict(cls.quick), "paper": {**cls.paper, "steps": cls.paper_steps[budget],
                                                            "eval_every": cls.paper_eval_every[budget]}}
            sub = type(f"{cls.__name__}_{budget}", (cls,), {
                "name": name, "budget": budget, "family": family, "profiles": profiles,
                "__module__": cls.__module__, "__doc__": cls.__doc__})
            register_task(name)(sub)
        return cls

    return deco
