"""Frame labels: the codebook label (nearest k-means centroid, or IVF coarse centroid) of every
feature frame, at the model's frame rate.

The model's frames come from its family config (`frames`: any config with `stride` in samples
and `num_frames(num_samples)`, e.g. HubertConfig: 20 ms, 1 + (S - 400) // 320 frames). Features
at an integer multiple of that rate are decimated: 100 Hz MFCC labels keep every second label
for a 50 Hz model (every fourth for 25 Hz, every eighth for 12.5 Hz: CV-HuBERT's 40 / 80 ms).
A label sequence whose length differs from the audio's frame count by more than 0.1 s is an
error naming the utterance (docs/pretrain.md sections 1 and 6): silently shifted labels are a classic failure.

Layout of a label folder (one per stream and split), sharded like the features it came from:
    shard{r}-of{W}.npy    int16 labels of the shard's utterances back to back (model rate)
    shard{r}-of{W}.json   ids, lengths, rate, k; written last, marks the shard done
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from harness.errors import HarnessError
from harness.pretrain.cluster import Centroids, Codebook
from harness.pretrain.dump import SAMPLE_RATE, FeatureReader, shard_name, shard_range
from harness.results import atomic_write_json

TOLERANCE_S = 0.1
PAD = -1  # label of a frame past the end of an utterance's labels (ignored by the loss)


def frame_rate(frames: Any) -> float:
    """Frames per second of a family config (16000 / stride)."""
    return SAMPLE_RATE / frames.stride


def num_frames(frames: Any, num_samples: int) -> int:
    """The model's frame count for num_samples samples (its family config's rule)."""
    return int(frames.num_frames(int(num_samples)))


def to_model_rate(labels: np.ndarray, rate: float, frames: Any) -> np.ndarray:
    """Labels at `rate` Hz -> the model's frame rate, keeping every (rate / model rate)-th label;
    the ratio must be a whole number (100 Hz MFCC labels for a 50 or 25 Hz model)."""
    model_rate = frame_rate(frames)
    ratio = rate / model_rate
    step = int(round(ratio))
    if step < 1 or abs(ratio - step) > 1e-6:
        raise HarnessError(f"labels at {rate:g} Hz cannot be brought to the model's {model_rate:g} Hz frames: "
                           "the feature rate must be a whole multiple of the model's")
    return labels[::step]


def check_length(uid: str, n_labels: int, num_samples: int, frames: Any, tol_s: float = TOLERANCE_S) -> int:
    """The model's frame count for num_samples; raises when n_labels is more than tol_s off."""
    n = num_frames(frames, num_samples)
    rate = frame_rate(frames)
    if abs(n_labels - n) / rate > tol_s:
        raise HarnessError(
            f"utterance {uid}: {n_labels} labels ({n_labels / rate:.2f} s at {rate:g} Hz) but the audio has "
            f"{num_samples} samples = {n} frames ({num_samples / SAMPLE_RATE:.2f} s); the labels do not belong "
            f"to this audio (mismatch over {tol_s} s)")
    return n


def fit_to_audio(uid: str, labels: np.ndarray, num_samples: int, frames: Any) -> np.ndarray:
    """Labels of exactly the audio's frame count: checked (check_length), then truncated or
    padded with PAD (-1, ignored by the loss) by at most 0.1 s."""
    n = check_length(uid, len(labels), num_samples, frames)
    out = np.full(n, PAD, dtype=np.int64)
    m = min(n, len(labels))
    out[:m] = labels[:m]
    return out


def assign_labels(reader: FeatureReader, codebook: Union[np.ndarray, Codebook], folder: Path,
                  num_samples: Mapping[str, int], frames: Any, rank: int = 0, world: int = 1,
                  chunk_frames: int = 1 << 18) -> Path:
    """Label shard `rank` of `world` of the utterances in `reader` through `codebook` (a
    cluster.Codebook, or a (k, dim) centroid array: the nearest centroid), at the frame rate of
    `frames` (a family config), checking each utterance's label count against num_samples[id].
    A complete shard is skipped. Memory: one chunk of frames at a time."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / shard_name(rank, world)
    if base.with_suffix(".json").is_file():
        return base
    if isinstance(codebook, np.ndarray):
        codebook = Centroids(codebook)
    if codebook.k > 32767:
        raise HarnessError(f"{codebook.k} clusters do not fit int16 labels")
    lo, hi = shard_range(len(reader), rank, world)
    ids: List[str] = []
    lengths: List[int] = []
    total = sum(len(to_model_rate(np.empty(reader.lengths[j]), reader.rate, frames)) for j in range(lo, hi))
    tmp = base.with_suffix(".partial.npy")
    out = (np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=(total,)) if total
           else np.zeros(0, np.int16))
    pos, i = 0, lo
    while i < hi:
        idx, n = [], 0
        while i < hi and (not idx or n + reader.lengths[i] <= chunk_frames):
            idx.append(i)
            n += reader.lengths[i]
            i += 1
        x = np.concatenate([reader.get(j) for j in idx]).astype(np.float32)
        lab = codebook.assign(x)
        off = 0
        for j in idx:
            uid, t = reader.ids[j], reader.lengths[j]
            lab_u = to_model_rate(lab[off: off + t], reader.rate, frames)
            off += t
            if uid not in num_samples:
                raise HarnessError(f"utterance {uid}: features but no audio length")
            check_length(uid, len(lab_u), num_samples[uid], frames)
            out[pos: pos + len(lab_u)] = lab_u
            pos += len(lab_u)
            ids.append(uid)
            lengths.append(len(lab_u))
    assert pos == total
    if total:
        out.flush()
        del out
        tmp.replace(base.with_suffix(".npy"))
    else:
        np.save(base.with_suffix(".npy"), out)
    atomic_write_json(base.with_suffix(".json"), {"ids": ids, "lengths": lengths, "rate": frame_rate(frames),
                                                  "k": codebook.k})
    return base


def derive_labels(parent: Path, parents: np.ndarray, folder: Path, k: int, rank: int = 0, world: int = 1) -> Path:
    """Labels of a coarser level of a cluster hierarchy: label parents[c] for every frame that
    shard `rank` of `world` of the parent level (folder `parent`) labels c. Same layout, ids,
    lengths and rate as the parent's shard, which were checked against the audio when written.
    A complete shard is skipped."""
    folder = Path(folder)
    base = folder / shard_name(rank, world)
    if base.with_suffix(".json").is_file():
        return base
    src = Path(parent) / shard_name(rank, world)
    meta = json.loads(src.with_suffix(".json").read_text())
    parents = np.asarray(parents, dtype=np.int64)
    if len(parents) != meta["k"] or (len(parents) and (parents.min() < 0 or parents.max() >= k)):
        raise HarnessError(f"{folder}: a parent map of {len(parents)} entries in [0, {k}) is needed for the "
                           f"{meta['k']} clusters of {parent}")
    data = parents[np.load(src.with_suffix(".npy")).astype(np.int64)]
    ends = np.cumsum(meta["lengths"])
    return write_labels(folder, {u: data[e - n: e] for u, n, e in zip(meta["ids"], meta["lengths"], ends)}, k,
                        rank, world, meta["rate"])


class LabelStore:
    """All complete label shards of a folder; labels of an utterance by id (int16, model rate)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        metas = sorted(self.folder.glob("shard*-of*.json"))
        if not metas:
            raise HarnessError(f"{self.folder}: no label shards")
        self._pos: Dict[str, tuple] = {}
        self._arrays = []
        ks = set()
        for p in metas:
            meta = json.loads(p.read_text())
            ks.add(meta["k"])
            arr = np.load(p.with_suffix(".npy"), mmap_mode="r" if sum(meta["lengths"]) else None)
            if len(arr) != sum(meta["lengths"]):
                raise HarnessError(f"{p.with_suffix('.npy')}: {len(arr)} labels, index says {sum(meta['lengths'])}")
            off = 0
            for uid, n in zip(meta["ids"], meta["lengths"]):
                self._pos[uid] = (len(self._arrays), off, int(n))
                off += int(n)
            self._arrays.append(arr)
        if len(ks) != 1:
            raise HarnessError(f"{self.folder}: shards with different k {sorted(ks)}")
        self.k = ks.pop()

    @property
    def ids(self) -> List[str]:
        return list(self._pos)

    def __contains__(self, uid: str) -> bool:
        return uid in self._pos

    def __len__(self) -> int:
        return len(self._pos)

    def get(self, uid: str) -> np.ndarray:
        if uid not in self._pos:
            raise HarnessError(f"{self.folder}: no labels for utterance {uid}")
        a, off, n = self._pos[uid]
        return np.asarray(self._arrays[a][off: off + n])


def write_labels(folder: Path, labels: Mapping[str, np.ndarray], k: int, rank: int = 0, world: int = 1,
                 rate: float = 50.0) -> Path:
    """Write given labels (at `rate` Hz) as one shard (tests, tools, derived hierarchy levels);
    same layout as assign_labels."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / shard_name(rank, world)
    ids = list(labels)
    data = np.concatenate([np.asarray(labels[u], dtype=np.int16) for u in ids]) if ids else np.zeros(0, np.int16)
    np.save(base.with_suffix(".npy"), data)
    atomic_write_json(base.with_suffix(".json"), {"ids": ids, "lengths": [len(labels[u]) for u in ids],
                                                  "rate": float(rate), "k": int(k)})
    return base


def label_counts(store: LabelStore, ids: Optional[List[str]] = None) -> np.ndarray:
    """How many frames carry each label (length k)."""
    counts = np.zeros(store.k, dtype=np.int64)
    for uid in ids or store.ids:
        counts += np.bincount(store.get(uid).astype(np.int64), minlength=store.k)[: store.k]
    return counts
