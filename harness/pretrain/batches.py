"""Step-indexed training batches: the same global batch on every rank, in a resumed run too.

Step s reads one GLOBAL batch, identical on every rank: each epoch shuffles the
utterances (seed, epoch) - or, with two-level up-sampling on (train.upsample_alpha /
upsample_beta, mHuBERT-147), draws N of them by language and dataset weights in random order
(sampling.upsample_indices) - cuts them into buckets of `bucket_batches` batches, sorts each bucket
by length and packs consecutive utterances while (items x crop length) stays within
world x grad_accum x batch_samples, with a multiple of world x grad_accum items; the batch order
is then shuffled. Every item of the global batch is cropped to the shortest item of the global
batch (capped at max_sample_size), at a random start on the model's frame grid (its stride, 320
samples for HuBERT) so that labels are cropped to exactly the matching frames; spans are masked
for the whole global batch. Rank r takes micro-batches r * grad_accum ... (r + 1) * grad_accum - 1
of equal size. Crops and masks come from a generator seeded by (seed, step); the objective's
batch transform (WavLM's mixing) runs on each micro-batch with a generator seeded by (seed, step,
micro-batch index in the global batch). So a run on W ranks sees exactly the data of a single
process with the same global batch, and a resumed run the data of an uninterrupted one.
(fairseq crops per GPU batch; cropping per global batch is what makes that equivalence exact.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from harness.audio import load_audio
from harness.errors import HarnessError
from harness.pretrain.labels import LabelStore, fit_to_audio, num_frames
from harness.pretrain.model import compute_mask
from harness.pretrain.objectives.base import Objective
from harness.pretrain.recipe import TrainConfig
from harness.pretrain.sampling import upsample_indices

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Item:
    """One training utterance: audio segment + its expected length in samples, and the language
    and source dataset (custom "dataset") the two-level up-sampling groups it by ("" = none)."""

    id: str
    path: str
    offset: float
    num_samples: int
    language: str = ""
    dataset: str = ""

    @classmethod
    def from_utterance(cls, u) -> "Item":
        return cls(u.id, str(u.path), float(u.offset), int(round(u.duration * SAMPLE_RATE)),
                   u.language or "", str(u.custom.get("dataset") or ""))


def epoch_order(items: Sequence[Item], cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """The utterances of one epoch in random order, before batching: each once (upsample_alpha =
    upsample_beta = 1, the authors' special case too), else the two-level up-sampled draw."""
    if cfg.upsample_alpha == 1.0 and cfg.upsample_beta == 1.0:
        return rng.permutation(len(items))
    return upsample_indices([it.language for it in items], [it.dataset for it in items],
                            cfg.upsample_alpha, cfg.upsample_beta, rng)


def derive_seed(*parts: int) -> int:
    """A 32-bit seed drawn from the integers `parts` (numpy SeedSequence): one stream per tuple."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class StepBatches(torch.utils.data.Dataset):
    """Step-indexed data: item s = this rank's micro-batches of global batch s (module docstring).

    Args:
        items: training utterances.
        labels_dirs: label stream name -> its label folder (train split).
        cfg: the training config.
        frames: the model's family config (stride, receptive_field, num_frames).
        objective: supplies the batch transform applied to each micro-batch after cropping.
        noise_files: noise clips for objectives that mix in noise.
    """

    def __init__(self, items: Sequence[Item], labels_dirs: Dict[str, Path], cfg: TrainConfig, frames: Any,
                 objective: Optional[Objective] = None, noise_files: Sequence[str] = (), rank: int = 0,
                 world: int = 1):
        self.items = list(items)
        self.labels_dirs = {k: Path(v) for k, v in labels_dirs.items()}
        self.cfg, self.frames, self.rank, self.world = cfg, frames, rank, world
        self.objective = objective
        self.noise_files = list(noise_files)
        if objective is not None and objective.needs_noise and not self.noise_files:
            raise HarnessError(f"objective {objective.name} mixes in noise (noise_prob "
                               f"{objective.options.noise_prob}) but no noise clips were given")
        self.slots = world * cfg.grad_accum  # micro-batches per global batch
        if len(self.items) < self.slots:
            raise HarnessError(f"{len(self.items)} training utterances for {self.slots} micro-batches per step")
        if (cfg.upsample_alpha, cfg.upsample_beta) != (1.0, 1.0):
            missing = [it.id for it in self.items if not it.language]
            if missing:
                raise HarnessError(f"utterance {missing[0]} has no language ({len(missing)} such): two-level "
                                   "up-sampling (train.upsample_alpha / upsample_beta) needs one per utterance")
        self._labels: Optional[Dict[str, LabelStore]] = None
        self._noise = None
        self._plans: Dict[int, List[List[int]]] = {}
        self._counts: Dict[int, int] = {}  # batches per epoch

    def labels(self) -> Dict[str, LabelStore]:
        if self._labels is None:  # opened lazily: once per data-loading process
            self._labels = {k: LabelStore(v) for k, v in self.labels_dirs.items()}
        return self._labels

    def noise(self):
        if self._noise is None and self.noise_files:  # decoded lazily: once per data-loading process
            from harness.pretrain.mixing import NoiseBank

            self._noise = NoiseBank.from_files(self.noise_files)
        return self._noise

    def plan(self, epoch: int) -> List[List[int]]:
        """The global batches (lists of item indices) of an epoch, deterministic in (seed, epoch)."""
        if epoch in self._plans:
            return self._plans[epoch]
        cfg, n_slots = self.cfg, self.slots
        rng = np.random.default_rng([cfg.seed, epoch])
        order = epoch_order(self.items, cfg, rng)
        cap = cfg.batch_samples * n_slots
        lens = np.array([min(it.num_samples, cfg.max_sample_size) for it in self.items])
        # bucket size: about bucket_batches batches of the average utterance
        per_batch = max(n_slots, int(cap // max(1, lens.mean())))
        bucket = max(n_slots, cfg.bucket_batches * per_batch)
        batches: List[List[int]] = []
        for b0 in range(0, len(order), bucket):
            chunk = sorted(order[b0: b0 + bucket].tolist(), key=lambda i: (-lens[i], i))
            i = 0
            while len(chunk) - i >= n_slots:
                take = n_slots
                while i + take + n_slots <= len(chunk) and (take + n_slots) * lens[chunk[i + take + n_slots - 1]] <= cap:
                    take += n_slots
                batches.append(chunk[i: i + take])
                i += take
        rng.shuffle(batches)
        self._plans = {epoch: batches}  # keep one epoch (workers compute their own)
        self._counts[epoch] = len(batches)
        return batches

    def locate(self, step: int) -> Tuple[int, int]:
        """(epoch, batch index in the epoch) of global step `step` (0-based)."""
        e = 0
        while True:
            n = self._counts[e] if e in self._counts else len(self.plan(e))
            if n == 0:
                raise HarnessError("an epoch yields no batch: too few training utterances")
            if step < n:
                return e, step
            step -= n
            e += 1

    def __len__(self) -> int:
        return self.cfg.steps

    def __getitem__(self, step: int) -> Dict[str, Tensor]:
        cfg = self.cfg
        epoch, b = self.locate(step)
        batch = self.plan(epoch)[b]
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, 7919, step))
        stride = self.frames.stride
        crop = min(min(self.items[i].num_samples for i in batch), cfg.max_sample_size)
        crop = max(crop, self.frames.receptive_field)
        T = num_frames(self.frames, crop)
        u = torch.rand(len(batch), generator=g)  # crop start fractions, one per item
        mask = compute_mask(len(batch), T, cfg.mask_prob, cfg.mask_length, cfg.min_masks, generator=g)
        per = len(batch) // self.slots
        mine = range(self.rank * cfg.grad_accum * per, (self.rank + 1) * cfg.grad_accum * per)
        wavs = torch.zeros(len(mine), crop)
        labs = {k: torch.full((len(mine), T), -1, dtype=torch.long) for k in self.labels_dirs}
        for row, j in enumerate(mine):
            it = self.items[batch[j]]
            wav = load_audio(it.path, offset=it.offset, duration=it.num_samples / SAMPLE_RATE)
            n = wav.numel()
            if n < crop:  # the manifest said longer: allowed within the label tolerance (0.1 s)
                if crop - n > SAMPLE_RATE // 10:
                    raise HarnessError(f"utterance {it.id}: {n} samples decoded, the manifest says {it.num_samples}")
                wav = torch.nn.functional.pad(wav, (0, crop - n))
                n = crop
            f0 = int(float(u[j]) * ((n - crop) // stride + 1))
            wavs[row] = wav[f0 * stride: f0 * stride + crop]
            for k, store in self.labels().items():
                seg = fit_to_audio(it.id, store.get(it.id), n, self.frames)[f0: f0 + T]
                labs[k][row, : len(seg)] = torch.from_numpy(seg)
        shape = (cfg.grad_accum, per)
        wavs = wavs.view(*shape, crop)
        if self.objective is not None:
            for a in range(cfg.grad_accum):  # the transform sees one micro-batch, as a GPU does
                gm = torch.Generator().manual_seed(derive_seed(cfg.seed, 15485863, step, self.rank * cfg.grad_accum + a))
                wavs[a] = self.objective.transform(wavs[a], gm, self.noise())
        return {
            "wavs": wavs,
            "labels": {k: v.view(*shape, T) for k, v in labs.items()},
            "mask": mask[mine.start: mine.stop].view(*shape, T),
            "step": torch.tensor(step),
            "epoch": torch.tensor(epoch),
            "batch_index": torch.tensor(b),
            "global_items": torch.tensor(len(batch)),
            "crop": torch.tensor(crop),
        }
