"""Frame labels: the nearest centroid of every feature frame, aligned to HuBERT's 20 ms frames.

MFCC features are at 100 Hz: every second label is kept (labels[::2]), which gives exactly the
50 Hz frame count of the CNN (1 + (S - 400) // 320 frames for S samples). A label sequence whose
length differs from the audio's frame count by more than 0.1 s is an error naming the utterance
(PRETRAIN.md 1, 6): silently shifted labels are a classic failure.

Layout of a label folder (one per split), sharded like the features it was computed from:
    shard{r}-of{W}.npy    int16 labels of the shard's utterances back to back (50 Hz)
    shard{r}-of{W}.json   ids, lengths; written last, marks the shard done
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np

from harness.errors import HarnessError
from harness.pretrain.cluster import nearest
from harness.pretrain.dump import MFCC_RATE, FeatureReader, shard_name, shard_range
from harness.results import atomic_write_json

LABEL_RATE = 50.0
TOLERANCE_S = 0.1
PAD = -1  # label of a frame past the end of an utterance's labels (ignored by the loss)


def frames_50hz(num_samples: int) -> int:
    """HuBERT CNN frames of num_samples samples (kernels 10,3,3,3,3,2,2; strides 5,2,...,2);
    inputs shorter than the 400-sample receptive field count as 400 (upstreams/hubert.py)."""
    n = max(int(num_samples), 400) if num_samples > 0 else 0
    for k, s in zip((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)):
        n = max((n - k) // s + 1, 0)
    return n


def to_50hz(labels: np.ndarray, rate: float) -> np.ndarray:
    """Labels at `rate` (100 or 50 Hz) -> 50 Hz: every second one for 100 Hz."""
    if rate == MFCC_RATE:
        return labels[::2]
    if rate == LABEL_RATE:
        return labels
    raise HarnessError(f"labels at {rate} Hz: only 100 Hz (MFCC) or 50 Hz (HuBERT layers) are supported")


def check_length(uid: str, n_labels: int, num_samples: int, tol_s: float = TOLERANCE_S) -> int:
    """The expected 50 Hz frame count for num_samples; raises when n_labels is more than tol_s off."""
    n = frames_50hz(num_samples)
    if abs(n_labels - n) / LABEL_RATE > tol_s:
        raise HarnessError(
            f"utterance {uid}: {n_labels} labels ({n_labels / LABEL_RATE:.2f} s at 50 Hz) but the audio has "
            f"{num_samples} samples = {n} frames ({num_samples / 16000:.2f} s); the labels do not belong "
            f"to this audio (mismatch over {tol_s} s)")
    return n


def fit_to_audio(uid: str, labels: np.ndarray, num_samples: int) -> np.ndarray:
    """Labels of exactly the audio's frame count: checked (check_length), then truncated or
    padded with PAD (-1, ignored by the loss) by at most 0.1 s."""
    n = check_length(uid, len(labels), num_samples)
    out = np.full(n, PAD, dtype=np.int64)
    m = min(n, len(labels))
    out[:m] = labels[:m]
    return out


def assign_labels(reader: FeatureReader, centroids: np.ndarray, folder: Path, num_samples: Mapping[str, int],
                  rank: int = 0, world: int = 1, chunk_frames: int = 1 << 18) -> Path:
    """Label shard `rank` of `world` of the utterances in `reader` with their nearest centroid,
    at 50 Hz, checking each utterance's label count against num_samples[id]. A complete shard
    is skipped. Memory: one chunk of frames at a time."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / shard_name(rank, world)
    if base.with_suffix(".json").is_file():
        return base
    if centroids.shape[0] > 32767:
        raise HarnessError(f"{centroids.shape[0]} clusters do not fit int16 labels")
    lo, hi = shard_range(len(reader), rank, world)
    ids: List[str] = []
    lengths: List[int] = []
    step = 2 if reader.rate == MFCC_RATE else 1
    total = sum((reader.lengths[j] + step - 1) // step for j in range(lo, hi))
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
        lab, _ = nearest(x, centroids)
        off = 0
        for j in idx:
            uid, t = reader.ids[j], reader.lengths[j]
            lab_u = to_50hz(lab[off: off + t], reader.rate)
            off += t
            if uid not in num_samples:
                raise HarnessError(f"utterance {uid}: features but no audio length")
            check_length(uid, len(lab_u), num_samples[uid])
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
    atomic_write_json(base.with_suffix(".json"), {"ids": ids, "lengths": lengths, "rate": LABEL_RATE,
                                                  "k": int(centroids.shape[0])})
    return base


class LabelStore:
    """All complete label shards of a folder; labels of an utterance by id (int16, 50 Hz)."""

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


def write_labels(folder: Path, labels: Mapping[str, np.ndarray], k: int, rank: int = 0, world: int = 1) -> Path:
    """Write given 50 Hz labels as one shard (tests and tools); same layout as assign_labels."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / shard_name(rank, world)
    ids = list(labels)
    data = np.concatenate([np.asarray(labels[u], dtype=np.int16) for u in ids]) if ids else np.zeros(0, np.int16)
    np.save(base.with_suffix(".npy"), data)
    atomic_write_json(base.with_suffix(".json"), {"ids": ids, "lengths": [len(labels[u]) for u in ids],
                                                  "rate": LABEL_RATE, "k": int(k)})
    return base


def label_counts(store: LabelStore, ids: Optional[List[str]] = None) -> np.ndarray:
    """How many frames carry each label (length k)."""
    counts = np.zeros(store.k, dtype=np.int64)
    for uid in ids or store.ids:
        counts += np.bincount(store.get(uid).astype(np.int64), minlength=store.k)[: store.k]
    return counts
