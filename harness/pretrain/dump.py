"""Feature dumping: 39-d MFCC (100 Hz) or a layer of an exported model (50 Hz), in shards.

Layout of a feature folder (one per split):
    shard{r}-of{W}.f16    raw float16 frames x dim, utterances back to back (appended as computed)
    shard{r}-of{W}.json   index written when the shard is complete: ids, lengths (frames), dim,
                          frame rate; its presence marks the shard done
Shard r of W holds the r-th contiguous block of the utterance list (fairseq's rank / world size).
Each shard is written utterance by utterance (or batch by batch), so memory stays flat as the
corpus grows; readers memory-map the .f16 files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from harness.audio import load_audio
from harness.data.corpus import Utterance
from harness.errors import HarnessError
from harness.progress import progress_bar

SAMPLE_RATE = 16000
MFCC_RATE = 100.0
MFCC_DIM = 39


def shard_range(n: int, rank: int, world: int) -> Tuple[int, int]:
    """[start, stop) of shard `rank` of `world` over n items (contiguous, sizes differ by <= 1)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} not in [0, {world})")
    per, extra = divmod(n, world)
    start = rank * per + min(rank, extra)
    return start, start + per + (1 if rank < extra else 0)


def shard_name(rank: int, world: int) -> str:
    return f"shard{rank}-of{world}"


def mfcc_features(wav: torch.Tensor) -> torch.Tensor:
    """(S,) float waveform in [-1, 1] at 16 kHz -> (T, 39) float32: 13 Kaldi MFCCs (torchaudio
    kaldi-compliant defaults: 25 ms / 10 ms, snip edges, no dither, no energy) + deltas +
    delta-deltas, no CMVN (fairseq dump_mfcc_feature.py). T = 1 + (S - 400) // 160."""
    import torchaudio

    if wav.numel() < 400:
        wav = torch.nn.functional.pad(wav, (0, 400 - wav.numel()))
    m = torchaudio.compliance.kaldi.mfcc(wav[None].float(), sample_frequency=SAMPLE_RATE, use_energy=False)
    m = m.transpose(0, 1)  # (13, T)
    d = torchaudio.functional.compute_deltas(m)
    dd = torchaudio.functional.compute_deltas(d)
    return torch.cat([m, d, dd], dim=0).transpose(0, 1).contiguous()


def load_utterance(u: Utterance) -> torch.Tensor:
    return load_audio(u.path, offset=u.offset, duration=u.duration)


@dataclass
class ShardIndex:
    ids: List[str]
    lengths: List[int]
    dim: int
    rate: float


class FeatureReader:
    """Every complete shard of a feature folder, memory-mapped; features by utterance index or id."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        metas = sorted(self.folder.glob("shard*-of*.json"), key=lambda p: _shard_key(p.stem))
        if not metas:
            raise HarnessError(f"{self.folder}: no feature shards")
        worlds = {_shard_key(p.stem)[1] for p in metas}
        if len(worlds) != 1:
            raise HarnessError(f"{self.folder}: shards of different world sizes {sorted(worlds)}")
        self.ids: List[str] = []
        self.lengths: List[int] = []
        self._maps = []
        self._where: List[Tuple[int, int]] = []  # (shard, frame offset)
        dims, rates = set(), set()
        for p in metas:
            meta = json.loads(p.read_text())
            dims.add(meta["dim"])
            rates.add(meta["rate"])
            total = int(sum(meta["lengths"]))
            data_path = p.with_suffix(".f16")
            expect = total * meta["dim"] * 2
            if data_path.stat().st_size != expect:
                raise HarnessError(f"{data_path}: {data_path.stat().st_size} bytes, index says {expect}")
            mm = (np.memmap(data_path, dtype=np.float16, mode="r", shape=(total, meta["dim"]))
                  if total else np.zeros((0, meta["dim"]), np.float16))
            off = 0
            for uid, n in zip(meta["ids"], meta["lengths"]):
                self.ids.append(uid)
                self.lengths.append(int(n))
                self._where.append((len(self._maps), off))
                off += int(n)
            self._maps.append(mm)
        if len(dims) != 1 or len(rates) != 1:
            raise HarnessError(f"{self.folder}: shards disagree on dim/rate ({dims}, {rates})")
        self.dim, self.rate = dims.pop(), rates.pop()
        self._pos = {u: i for i, u in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, uid: str) -> int:
        if uid not in self._pos:
            raise HarnessError(f"{self.folder}: no features for utterance {uid}")
        return self._pos[uid]

    def get(self, i: int) -> np.ndarray:
        """(T, dim) float16 view of utterance i."""
        s, off = self._where[i]
        return self._maps[s][off: off + self.lengths[i]]

    def iter_chunks(self, max_frames: int = 1 << 20) -> Iterator[Tuple[List[int], np.ndarray]]:
        """(utterance indices, their frames concatenated as float32), about max_frames at a time."""
        idx, parts, n = [], [], 0
        for i in range(len(self)):
            idx.append(i)
            parts.append(self.get(i))
            n += self.lengths[i]
            if n >= max_frames:
                yield idx, np.concatenate(parts).astype(np.float32)
                idx, parts, n = [], [], 0
        if idx:
            yield idx, np.concatenate(parts).astype(np.float32)


def _shard_key(stem: str) -> Tuple[int, int]:
    r, w = stem[len("shard"):].split("-of")
    return int(r), int(w)


def is_complete(folder: Path, n_utts: int) -> bool:
    """True when every shard of one world size exists and together they hold n_utts utterances."""
    folder = Path(folder)
    done = folder / "done.json"
    if not done.is_file():
        return False
    try:
        return json.loads(done.read_text()).get("utterances") == n_utts
    except (OSError, ValueError):
        return False


def mark_complete(folder: Path, n_utts: int, **extra) -> None:
    from harness.results import atomic_write_json

    reader = FeatureReader(folder)
    if len(reader) != n_utts:
        raise HarnessError(f"{folder}: shards hold {len(reader)} utterances, expected {n_utts}")
    atomic_write_json(Path(folder) / "done.json", {"utterances": n_utts, "frames": int(sum(reader.lengths)),
                                                    "dim": reader.dim, "rate": reader.rate, **extra})


class _ShardWriter:
    def __init__(self, folder: Path, rank: int, world: int):
        self.folder = Path(folder)
        self.base = self.folder / shard_name(rank, world)
        self.tmp = self.base.with_suffix(".f16.partial")
        self.f = open(self.tmp, "wb")
        self.ids: List[str] = []
        self.lengths: List[int] = []
        self.dim: Optional[int] = None

    def add(self, uid: str, feats: np.ndarray) -> None:
        if feats.ndim != 2:
            raise ValueError(f"features of {uid} must be (frames, dim)")
        if self.dim is None:
            self.dim = int(feats.shape[1])
        elif feats.shape[1] != self.dim:
            raise ValueError(f"features of {uid} have dim {feats.shape[1]}, expected {self.dim}")
        if not np.isfinite(feats).all():
            raise HarnessError(f"utterance {uid}: non-finite features")
        self.f.write(np.ascontiguousarray(feats, dtype=np.float16).tobytes())
        self.ids.append(uid)
        self.lengths.append(int(feats.shape[0]))

    def close(self, rate: float, dim: int) -> None:
        from harness.results import atomic_write_json

        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.base.with_suffix(".f16"))
        atomic_write_json(self.base.with_suffix(".json"),
                          {"ids": self.ids, "lengths": self.lengths, "dim": self.dim or dim, "rate": rate})


def dump_mfcc(utts: Sequence[Utterance], folder: Path, rank: int = 0, world: int = 1) -> Path:
    """Dump 39-d MFCC (100 Hz) of shard `rank` of `world` of `utts` into `folder`; a shard that
    is already complete is skipped. Returns the shard's base path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / shard_name(rank, world)
    if base.with_suffix(".json").is_file():
        return base
    lo, hi = shard_range(len(utts), rank, world)
    w = _ShardWriter(folder, rank, world)
    with progress_bar(f"mfcc {folder.name} {rank}/{world}", hi - lo, "utts") as bar:
        for u in utts[lo:hi]:
            w.add(u.id, mfcc_features(load_utterance(u)).numpy())
            bar.advance()
    w.close(MFCC_RATE, MFCC_DIM)
    return base


@torch.no_grad()
def dump_layer(utts: Sequence[Utterance], folder: Path, upstream_path: Path, layer: int, rank: int = 0,
               world: int = 1, device: str = "cpu", batch_seconds: float = 20.0) -> Path:
    """Dump hidden state `layer` (at the model's frame rate) of the exported model at
    `upstream_path` (any family), for shard `rank` of `world` of `utts`. Utterances are batched
    by similar length (zero-padded batches give each item's frames exactly as alone: the
    Upstream contract, upstreams/base.py)."""
    from harness.audio import pad_batch
    from upstreams.base import load_exported

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / shard_name(rank, world)
    if base.with_suffix(".json").is_file():
        return base
    up = load_exported(upstream_path).to(device).eval()
    if not 0 <= layer < up.spec.num_layers:
        raise HarnessError(f"layer {layer} out of range: {upstream_path} has layers 0..{up.spec.num_layers - 1}")
    lo, hi = shard_range(len(utts), rank, world)
    mine = list(utts[lo:hi])
    order = sorted(range(len(mine)), key=lambda i: mine[i].duration)
    cap = max(1, int(batch_seconds * SAMPLE_RATE))
    w = _ShardWriter(folder, rank, world)
    rate = up.spec.frame_rate_hz
    with progress_bar(f"layer {layer} {folder.name} {rank}/{world}", len(mine), "utts") as bar:
        i = 0
        while i < len(order):
            batch = [order[i]]
            longest = mine[order[i]].duration
            while i + len(batch) < len(order):
                nxt = mine[order[i + len(batch)]].duration
                if (len(batch) + 1) * max(longest, nxt) * SAMPLE_RATE > cap:
                    break
                batch.append(order[i + len(batch)])
                longest = max(longest, nxt)
            wavs = [load_utterance(mine[j]) for j in batch]
            x, lens = pad_batch(wavs)
            out = up.hidden_states(x.to(device), lens.to(device), upto=layer)
            h = out.layers[layer].float().cpu().numpy()
            for b, j in enumerate(batch):
                w.add(mine[j].id, h[b, : int(out.lengths[b])])
            bar.advance(len(batch))
            i += len(batch)
    w.close(rate, up.spec.hidden_size)
    return base


def mfcc_frames(num_samples: int) -> int:
    """Frames of the 39-d MFCC for num_samples samples (25 ms window, 10 ms hop, snip edges)."""
    return 1 + (max(num_samples, 400) - 400) // 160
