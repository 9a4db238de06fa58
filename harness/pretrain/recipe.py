"""Pre-training recipes: frozen dataclasses read from YAML (unknown keys are errors).

A recipe chains iterations. Top-level `data`, `model`, `objective`, `features`, `cluster` and
`train` tables are the defaults of every iteration; each entry of `iterations` overrides them:

    name: wavlm_tiny
    data: {subset: speech, train_split: train, dev_split: dev, min_seconds: 2.0}
    model: {family: wavlm, preset: tiny, layerdrop: 0.0}   # a family, its preset + any config key
    objective: {name: denoising, mix_prob: 0.2}            # a registered objective + its options
    cluster: {k: 100, sample_fraction: 0.1}
    train: {steps: 1000, lr: 5.0e-4}
    iterations:
      - features: {source: mfcc}                  # 39-d MFCC, 100 Hz labels -> the model's rate
      - features: {source: layer, layer: 6}       # layer 6 of the previous iteration's model
        cluster: {k: 500}
      - continue: true                            # a second stage: the previous iteration's
        data: {balance: language}                 # weights and labels, a language-balanced subset

An iteration trains from scratch (docs/pretrain.md section 1) unless `continue: true`: then it starts from the
previous iteration's trained model (same family and config) and reuses its labels (WavLabLM's
stage 2, docs/pretrain.md section 5). Recipes by name live in harness/recipes/<name>.yaml (package data); a
path to a YAML file works too.

A recipe may inherit: `base: hubert_tiny` (or a YAML path) plus only the keys that differ. The
base's tables merge key by key; a list (`iterations`, `levels`) replaces the base's whole list;
`name` is never inherited (`read_recipe`). What runs, and what a run folder's recipe.json saves
with its `recipe_hash`, is the resolved recipe, whichever files it was written in.

This module holds what a resolved recipe is (the frozen configs) and its saved form
(`recipe_to_dict`, `recipe_hash`); recipe_load.py builds one from YAML (`load_recipe`), and
recipe_files.py finds and reads the files.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Tuple

from harness.errors import ConfigError
from harness.pretrain.cluster import IVF_FACTORY
from upstreams.hubert import HubertConfig


@dataclass(frozen=True)
class DataConfig:
    """Which utterances pre-training reads.

    Attributes:
        subset: corpus subset ("speech" on synth; ignored when no utterance has a subset field).
        train_split: split used for features, clustering and training.
        dev_split: held-out split for masked accuracy and label quality ("" = none).
        min_seconds: training drops shorter utterances (published: 2 s).
        max_utterances: cap on train utterances, in manifest order (0 = all; for smoke runs).
        balance: "" (every selected utterance) or "language": at most `per_language` train
            utterances of each language, drawn with `balance_seed` (WavLabLM's stage 2).
        per_language: the per-language cap of balance "language" (0 = the median language's
            count: low-resource languages keep all they have, big ones are cut down to it).
        balance_seed: seed of the per-language draw.
    """

    subset: str = "speech"
    train_split: str = "train"
    dev_split: str = "dev"
    min_seconds: float = 2.0
    max_utterances: int = 0
    balance: str = ""
    per_language: int = 0
    balance_seed: int = 0

    def __post_init__(self):
        if self.balance not in ("", "language"):
            raise ConfigError(f"data.balance must be '' or 'language', got {self.balance!r}")
        if self.per_language < 0:
            raise ConfigError(f"data.per_language must be >= 0, got {self.per_language}")


@dataclass(frozen=True)
class FeatureConfig:
    """What is clustered. source "mfcc": 39-d MFCC at 100 Hz (Kaldi defaults, no CMVN);
    "layer": hidden state `layer` (0 = transformer input, L = last) of the previous iteration's
    exported model, at its frame rate (50 Hz for 20 ms frames). batch_seconds: audio per forward
    pass when dumping a layer (small batches are fastest on a CPU; take 200 or more on a GPU)."""

    source: str = "mfcc"
    layer: int = 6
    batch_seconds: float = 20.0

    def __post_init__(self):
        if not (math.isfinite(self.batch_seconds) and self.batch_seconds > 0):
            raise ConfigError(f"features.batch_seconds must be a positive number, got {self.batch_seconds!r}")


@dataclass(frozen=True)
class ClusterConfig:
    """faiss k-means (docs/pretrain.md section 1; fairseq fits on 10% of the utterances) or the mHuBERT-147
    faiss IVF index (docs/pretrain.md section 4).

    Attributes:
        k: clusters.
        sample_fraction: fraction of train utterances whose frames are clustered (all their frames).
        max_frames: cap on sampled frames (0 = no cap), to bound memory.
        method: "kmeans" (labels = nearest k-means centroid) or "ivf" (labels = IVF coarse
            centroid of the faiss index `ivf_factory`, after its OPQ transform; the index trains
            its own k-means with faiss's IVF defaults, as mHuBERT-147 did: 10 iterations on at
            most 256 x k of the sampled frames; niter, nredo and init apply to "kmeans" only).
        ivf_factory: faiss index_factory string of method "ivf"; "{K}" is replaced by k.
        niter: Lloyd iterations over all sampled frames (faiss's default 25; full-batch Lloyd
            converges in far fewer passes than MiniBatchKMeans' 100 epochs of mini-batches).
        nredo: restarts (the best objective is kept).
        init: "kmeans++" (k-means++ seeds from a 10,000-frame subset) or "random" (faiss's own).
        seed: sampling and initialisation seed (every faiss seed of the IVF index too).
        threads: faiss (OpenMP) threads of the fit on rank 0; 0 = every CPU core this process
            may use. Set explicitly because torchrun sets OMP_NUM_THREADS=1, which would leave
            k-means on one core while the other ranks wait at the barrier.
        gpu: fit k-means ("kmeans" method) on every visible GPU with faiss's GPU index; needs a
            faiss build with GPU support (the faiss-gpu packages, installed instead of
            faiss-cpu); without one the run stops with one line saying so.
    """

    k: int = 100
    sample_fraction: float = 0.1
    max_frames: int = 0
    method: str = "kmeans"
    ivf_factory: str = IVF_FACTORY
    niter: int = 25
    nredo: int = 1
    init: str = "kmeans++"
    seed: int = 0
    threads: int = 0
    gpu: bool = False

    def __post_init__(self):
        if not isinstance(self.threads, int) or isinstance(self.threads, bool) or self.threads < 0:
            raise ConfigError(f"cluster.threads must be an integer >= 0 (0 = all cores), got {self.threads!r}")
        if self.gpu not in (True, False):
            raise ConfigError(f"cluster.gpu must be true or false, got {self.gpu!r}")
        if self.gpu and self.method != "kmeans":
            raise ConfigError("cluster.gpu applies to method 'kmeans' only; the IVF index trains on the CPU")
        if self.method not in ("kmeans", "ivf"):
            raise ConfigError(f"cluster.method must be 'kmeans' or 'ivf', got {self.method!r}")
        if self.method == "ivf" and "IVF" not in self.ivf_factory:
            raise ConfigError(f"cluster.ivf_factory must name an IVF index (e.g. {IVF_FACTORY}), "
                              f"got {self.ivf_factory!r}")


@dataclass(frozen=True)
class TrainConfig:
    """The masked-prediction training stage (docs/pretrain.md section 1). Defaults = HuBERT Base iteration 2.

    Attributes:
        steps: optimiser updates.
        lr: peak learning rate; warmup_frac of the steps linear warm-up, then linear decay to 0.
        betas, eps, weight_decay: Adam with decoupled weight decay.
        grad_clip: max global grad norm (0 = off).
        batch_samples: cap on samples per micro-batch on one rank after cropping (items x crop).
        grad_accum: micro-batches per update on each rank (global batch = world x grad_accum
            micro-batches; the loss is normalised by the masked frames of all of them).
        max_sample_size: crop length cap in samples (250,000 = 15.6 s).
        mask_prob, mask_length, min_masks: span masking.
        logit_temp: temperature of the cosine logits.
        feature_pen: weight of mean(CNN output^2) (times the masked-frame count).
        pred_nomask_weight: weight of the cross-entropy on unmasked frames (fairseq
            pred_nomask_weight; 0 = masked frames only, as every published HuBERT recipe).
        checkpoint_every: steps between atomic checkpoints (the last step always saves).
        log_every: steps between log lines.
        seed: training seed (init, data order, crops, masks, dropout).
        precision: "auto" (bf16 autocast on a GPU that supports it, fp32 otherwise), "fp32", "bf16",
            "fastest" (whichever of the two measures faster on the machine, recorded in the
            stage; harness.pretrain.precision).
        device: "auto" (cuda when torch can use a GPU, cpu on a machine without one; a GPU
            torch cannot use is an error, never a silent CPU run), "cpu" or "cuda".
        num_workers: data-loading processes (0 = in the training process).
        bucket_batches: batches per length-sorted bucket when batching (keeps crops short-lossless).
        dev_max_utterances: cap on dev utterances for held-out accuracy (0 = all).
        upsample_alpha, upsample_beta: mHuBERT-147's two-level up-sampling of each epoch
            (sampling.upsample_indices): language weights (n_l / N)^alpha, dataset-within-language
            weights (n_ld / n_l)^beta, from utterance counts (published 0.7 and 0.9). Both 1 =
            every utterance once per epoch (the plain HuBERT epoch).
    """

    steps: int = 400_000
    lr: float = 5e-4
    warmup_frac: float = 0.08
    betas: Tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.01
    grad_clip: float = 10.0
    batch_samples: int = 1_400_000
    grad_accum: int = 1
    max_sample_size: int = 250_000
    mask_prob: float = 0.8
    mask_length: int = 10
    min_masks: int = 2
    logit_temp: float = 0.1
    feature_pen: float = 10.0
    pred_nomask_weight: float = 0.0
    checkpoint_every: int = 1000
    log_every: int = 100
    seed: int = 1
    precision: str = "auto"
    device: str = "auto"
    num_workers: int = 0
    bucket_batches: int = 100
    dev_max_utterances: int = 0
    upsample_alpha: float = 1.0
    upsample_beta: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.steps < 1:
            raise ConfigError(f"train.steps must be >= 1, got {self.steps}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"train.lr must be a positive finite number, got {self.lr!r}")
        for name in ("batch_samples", "max_sample_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip", "feature_pen", "pred_nomask_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigError(f"train.{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ConfigError(f"train.warmup_frac must be in [0, 1), got {self.warmup_frac}")
        if self.precision not in ("auto", "fp32", "bf16", "fastest"):
            raise ConfigError(f"train.precision must be auto, fp32, bf16 or fastest, got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"train.device must be auto, cpu or cuda, got {self.device!r}")
        if self.grad_accum < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ConfigError("train.grad_accum, checkpoint_every and log_every must be >= 1")
        if self.mask_length < 1 or not 0.0 < self.mask_prob <= 1.0:
            raise ConfigError("train.mask_length must be >= 1 and mask_prob in (0, 1]")
        for name in ("upsample_alpha", "upsample_beta"):
            if not getattr(self, name) >= 0.0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class IterationConfig:
    """One iteration: features -> clusters -> labels -> training -> export.

    Attributes:
        family: model family name (upstreams/<family>.py); `model` is that family's config.
        objective: pre-training objective name (harness/pretrain/objectives); `objective_options`
            its options dataclass.
        data: which utterances this iteration trains on.
        continue_previous: start from the previous iteration's trained model and labels instead
            of clustering and training from scratch.
        warm_start: build this iteration's own labels as usual, but start the encoder from the
            previous iteration's trained encoder instead of a fresh init (the projection and the
            codeword embeddings, tied to the old labels, start fresh). HuBERT trains every
            iteration from scratch; a short CPU budget cannot afford to relearn the encoder.
    """

    family: str = "hubert"
    model: Any = field(default_factory=HubertConfig)
    objective: str = "masked_prediction"
    objective_options: Any = None
    data: DataConfig = DataConfig()
    features: FeatureConfig = FeatureConfig()
    cluster: ClusterConfig = ClusterConfig()
    train: TrainConfig = TrainConfig()
    continue_previous: bool = False
    warm_start: bool = False

    def make_objective(self):
        """The objective instance of this iteration."""
        from harness.pretrain.objectives import get_objective

        return get_objective(self.objective)(self.objective_options)

    def label_streams(self):
        return self.make_objective().label_streams(self.cluster.k)


@dataclass(frozen=True)
class Recipe:
    """A resolved recipe. `pretrain_seed` 0 is the recipe as written; s > 0 is its s-th re-run
    from other seeds (harness.pretrain.seeds.with_pretrain_seed: every seed shifted by s, and
    `name` "<recipe>-s<s>")."""

    name: str
    data: DataConfig
    iterations: Tuple[IterationConfig, ...]
    pretrain_seed: int = 0

    def iteration_name(self, k: int) -> str:
        """Readable upstream name of iteration k (1-based): "<recipe>-it<k>"."""
        return f"{self.name}-it{k}"


def recipe_hash(recipe: Recipe) -> str:
    """sha256 (hex) of the resolved recipe (`recipe_to_dict`) as sorted-key JSON: what runs and
    what a run folder's recipe.json saves, whichever files it was written in."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(recipe_to_dict(recipe), sort_keys=True).encode()).hexdigest()


def recipe_to_dict(recipe: Recipe) -> Dict[str, Any]:
    """A JSON-able form of the resolved recipe (saved in the run folder)."""
    def conv(o):
        if hasattr(o, "to_dict"):  # a family config
            return o.to_dict()
        if dataclasses.is_dataclass(o):
            return {f.name: conv(getattr(o, f.name)) for f in dataclasses.fields(o)}
        if isinstance(o, tuple):
            return [conv(v) for v in o]
        return o

    out = conv(recipe)
    if not out.get("pretrain_seed"):  # seed 0: the dict (and recipe_hash) of every run made before seeds
        out.pop("pretrain_seed", None)
    return out
