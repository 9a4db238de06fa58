"""The feature cache: run a frozen upstream once per pool of utterances, store all L+1 layers.

A pool is every utterance of one (corpus, subset, split); tasks that read overlapping data (PR,
ASR, LID and SID all read the `speech` subset) share it. On disk, under
`CACHE/<upstream weights hash>/<pool manifest hash>/`:
  shard_00000.npy ...   float16 arrays (frames, L+1, D), one utterance = a contiguous block
  index.json            ids, shard, frame offset and length per utterance, skipped ids, spec,
                        and per shard its frames, size in bytes and blake2b hash
  verified.json         the stamp of the last full check (harness/poolstamp.py)
A pool is extracted under an exclusive lock into a temporary sibling folder and published by a
rename (harness/diskio.py): a killed or failed extraction (a full disk included) leaves nothing
half-written in its place, and its temporary folder is removed. Opening a pool checks index.json
and every shard's size and shape; the shards' hashes are checked in full once (when built, or
when the pool's verification stamp is missing or does not match: harness/poolstamp.py), after
which an open costs a few small reads; a damaged pool is reported in one line naming its folder,
removed and extracted again, never read. Above the size budget nothing is written and the upstream runs per batch
(`FeatureSource` without pools).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from harness.audio import load_audio, pad_batch
from harness.diskio import build_and_publish, check_space, file_digest, index_digest, locked, os_errors, remove
from harness.data.corpus import Utterance
from harness.errors import BadAudioError, HarnessError
from harness.progress import progress_bar
from harness.results import atomic_write_json
from upstreams.base import Upstream

SHARD_BYTES = 256 * 2**20
INDEX_FORMAT = 3  # 2: shards listed with frames, bytes and blake2b; 3: the index's own digest
EXTRACT_BATCH_SECONDS = 80.0


def manifest_hash(utts: Sequence[Utterance]) -> str:
    """Hash of what defines a pool's audio: ids, files, offsets, durations and file sizes."""
    h = hashlib.sha256()
    for u in utts:
        size = os.path.getsize(u.path) if os.path.exists(u.path) else -1
        h.update(f"{u.id}|{u.path}|{u.offset:.4f}|{u.duration:.4f}|{size}\n".encode())
    return h.hexdigest()[:16]


def estimate_bytes(upstream: Upstream, utts: Sequence[Utterance]) -> int:
    sr = upstream.spec.sample_rate
    samples = torch.tensor([max(1, int(round(u.duration * sr))) for u in utts], dtype=torch.long)
    frames = int(upstream.num_frames(samples).sum())
    return frames * upstream.spec.num_layers * upstream.spec.hidden_size * 2


def length_batches(utts: Sequence[Utterance], seconds: float, max_items: int = 64) -> List[List[int]]:
    """Indices grouped into batches of at most `seconds` of audio, by sorted duration
    (little padding), in a deterministic order."""
    order = sorted(range(len(utts)), key=lambda i: (utts[i].duration, utts[i].id))
    batches, cur, longest = [], [], 0.0
    for i in order:
        d = utts[i].duration
        if cur and (max(longest, d) * (len(cur) + 1) > seconds or len(cur) >= max_items):
            batches.append(cur)
            cur, longest = [], 0.0
        cur.append(i)
        longest = max(longest, d)
    if cur:
        batches.append(cur)
    return batches


@dataclass
class SkipCounter:
    """Bad audio skipped on request (--skip-bad), by file, with the reason."""

    items: Dict[str, str] = field(default_factory=dict)

    def add(self, err: BadAudioError, utt_id: str) -> None:
        self.items[utt_id] = f"{err.path}: {err.reason}"

    def __len__(self) -> int:
        return len(self.items)


def _load_many(utts: Sequence[Utterance], skip_bad: bool, skips: SkipCounter):
    wavs, keep = [], []
    for u in utts:
        try:
            wavs.append(load_audio(u.path, u.offset, u.duration if u.offset > 0 else None))
            keep.append(u)
        except BadAudioError as e:
            if not skip_bad:
                raise
            skips.add(e, u.id)
    return wavs, keep


@torch.no_grad()
def run_upstream(upstream: Upstream, wavs: List[torch.Tensor], device: str = "cpu", compute: str = "float32",
                 out_dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run a frozen upstream on waveforms, in `compute` precision (harness/extraction.py).

    Returns:
        layers (L+1, B, T, D) of `out_dtype` (cast on the device, before the copy to the host)
        and lengths (B,) frames.
    """
    from harness.extraction import autocast

    x, lens = pad_batch(wavs)
    with autocast(device, compute):
        hs = upstream(x.to(device, non_blocking=True), lens.to(device))
    # float32 first: a bfloat16 state goes to float16 through float32, as the float32 path does
    return torch.stack([h.float().to(out_dtype) for h in hs.layers], 0).cpu(), hs.lengths.cpu()


class DamagedPool(Exception):
    """A pool folder that cannot be trusted; the message says why."""


class CachedPool:
    """A finished pool on disk: memory-mapped shards plus the id -> location index.

    Opening checks the pool (index.json readable, complete and matching its own digest, every
    item inside its shard, every shard of the recorded size and content hash, of the recorded
    shape) and raises DamagedPool otherwise: a damaged pool is never read. `verify=False` skips
    the shards' hashes (for a pool this process has just written).
    """

    def __init__(self, folder: Path, verify: bool = True):
        self.folder = Path(folder)
        try:
            idx = json.loads((self.folder / "index.json").read_text())
            if idx.get("format") != INDEX_FORMAT:
                raise DamagedPool(f"index.json is of format {idx.get('format')!r}, not {INDEX_FORMAT}: made by an "
                                  "older harness")
            if idx.get("digest") != index_digest(idx):
                raise DamagedPool("index.json does not match its own digest (edited or damaged)")
            self.num_layers, self.dim = idx["num_layers"], idx["dim"]
            self.skipped: Dict[str, str] = idx["skipped"]
            self._loc = {i: (s, o, n) for i, s, o, n in idx["items"]}
            shards = [(e["name"], e["bytes"], e["blake2b"], e["frames"]) for e in idx["shards"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise DamagedPool(f"index.json unreadable ({type(e).__name__}: {str(e)[:100]})") from None
        self._shards = []
        for name, size, digest, frames in shards:
            path = self.folder / name
            try:
                if path.stat().st_size != size:
                    raise DamagedPool(f"{name} has {path.stat().st_size} bytes, index.json says {size}")
                if verify and file_digest(path) != digest:
                    raise DamagedPool(f"{name} does not match its blake2b hash in index.json")
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise DamagedPool(f"{name} unreadable ({type(e).__name__}: {str(e)[:100]})") from None
            if arr.shape != (frames, self.num_layers, self.dim):
                raise DamagedPool(f"{name} has shape {arr.shape}, index.json says {(frames, self.num_layers, self.dim)}")
            self._shards.append(arr)
        for uid, (s, o, n) in self._loc.items():  # every item inside its shard
            if not (0 <= s < len(shards) and 0 <= o and 0 <= n and o + n <= shards[s][3]):
                raise DamagedPool(f"index.json places {uid} at shard {s}, frames {o}..{o + n}: outside the shards")

    def __contains__(self, uid: str) -> bool:
        return uid in self._loc

    def frames(self, uid: str) -> int:
        return self._loc[uid][2]

    def get(self, uid: str, start: int = 0, length: Optional[int] = None) -> np.ndarray:
        """(T, L+1, D) float16 view of one utterance (optionally a crop of frames)."""
        s, o, n = self._loc[uid]
        length = n - start if length is None else length
        return self._shards[s][o + start : o + start + length]


def open_pool(folder: Path, log=print) -> Optional[CachedPool]:
    """The pool in `folder` when it is there and sound; None when absent or damaged (a damaged
    pool is reported in one line and removed, so it is rebuilt). Call it holding the pool's lock:
    a pool being published by another process must not be taken for damaged and removed."""
    folder = Path(folder)
    if not folder.exists():
        return None
    try:
        return _open_stamped(folder)
    except DamagedPool as e:
        log(f"feature cache {folder} is damaged or outdated ({e}); rebuilding it")
        with os_errors(folder, "--cache"):
            remove(folder)
        return None


def build_pool(
    upstream: Upstream,
    utts: Sequence[Utterance],
    folder: Path,
    device: str = "cpu",
    skip_bad: bool = False,
    desc: str = "features",
    log=print,
    dtype: str = "float16",
    compute: str = "float32",
) -> CachedPool:
    """The pool of `utts` in `folder`: opened when it is there and sound, else extracted (all
    layers, stored as `dtype`: float16, or int8 as harness/quant.py describes) in a temporary
    sibling folder and published by a rename (harness/diskio.py). `compute` is the extraction's
    precision (harness/extraction.py)."""
    folder = Path(folder)
    if (folder / "index.json").exists():
        try:
            return _open_stamped(folder)
        except DamagedPool:
            pass  # judged again under the lock (it may be being replaced right now)
    # Two evaluations of the same upstream may start together: one builds, the other waits.
    with locked(folder, "--cache"):
        pool = open_pool(folder, log)
        if pool is not None:
            return pool
        from harness.extraction import extract_pool
        from harness.poolstamp import pool_class

        build_and_publish(folder, lambda tmp: extract_pool(upstream, utts, tmp, device, skip_bad, desc, dtype, compute),
                          "--cache")
        return pool_class(folder)(folder, verify=False)


def _open_stamped(folder: Path) -> CachedPool:
    """Open a pool, hashing its shards only when its verification stamp does not match
    (harness/poolstamp.py); a fully checked pool is stamped."""
    from harness.poolstamp import open_trusted, pool_class

    return open_trusted(folder, lambda f, full: pool_class(f)(f, verify=full))


def _extract(upstream, utts, folder, device, skip_bad, desc, compute: str = "float32") -> None:
    """Write the shards and (last) index.json of a pool into the empty folder `folder`."""
    L1, D = upstream.spec.num_layers, upstream.spec.hidden_size
    from harness.extraction import ShardWriter, decoded_batches

    out = ShardWriter(folder, max(1, SHARD_BYTES // (L1 * D * 2)))
    skips = SkipCounter()
    from harness.extraction import for_compute

    upstream = for_compute(upstream.eval().to(device), compute)
    batches = length_batches(utts, EXTRACT_BATCH_SECONDS, max_items=32)
    with progress_bar(desc, total=sum(u.duration for u in utts), unit="s audio") as bar:
        for group, wavs, keep in decoded_batches(utts, batches, skip_bad, skips):
            if keep:
                layers, lens = run_upstream(upstream, wavs, device, compute, torch.float16)
                for j, u in enumerate(keep):
                    out.add(u.id, layers[:, j, :int(lens[j])].permute(1, 0, 2).to(torch.float16).numpy())
            bar.advance(sum(u.duration for u in group))
    out.flush()
    idx = {"format": INDEX_FORMAT, "num_layers": L1, "dim": D, "items": [list(x) for x in out.items],
           "shards": out.shards, "skipped": skips.items, "upstream": upstream.spec.name}
    atomic_write_json(folder / "index.json", {**idx, "digest": index_digest(idx)})


class FeatureSource:
    """Per-utterance layer features for one split, from cached pools or from the live upstream.

    `get_batch(ids, crops)` -> (layers (L+1, B, T, D) float32, lengths (B,) frames), on
    `device` (the extraction's and the probe's).
    """

    def __init__(self, utts: Sequence[Utterance], pools: Optional[List[CachedPool]] = None,
                 upstream: Optional[Upstream] = None, device: str = "cpu", skip_bad: bool = False,
                 cache_dtype: str = "float16", extract_dtype: str = "float32"):
        self.device = device
        self.cache_dtype = cache_dtype  # live mode gives the numbers a cache of this dtype would
        self.extract_dtype = extract_dtype  # the upstream's precision in live mode
        self.upstream = upstream
        self.pools = pools or []
        self.skip_bad = skip_bad
        self.skipped = SkipCounter()
        self._utt = {u.id: u for u in utts}
        if self.pools:
            for p in self.pools:
                self.skipped.items.update({k: v for k, v in p.skipped.items() if k in self._utt})
            self.ids = [u.id for u in utts if u.id not in self.skipped.items]
            missing = [i for i in self.ids if not any(i in p for p in self.pools)]
            if missing:
                raise HarnessError(f"feature cache is missing {len(missing)} utterances (e.g. {missing[0]})")
        else:
            self.ids = [u.id for u in utts]

    @property
    def cached(self) -> bool:
        return bool(self.pools)

    def utterance(self, uid: str) -> Utterance:
        return self._utt[uid]

    def _pool_of(self, uid: str) -> CachedPool:
        for p in self.pools:
            if uid in p:
                return p
        raise KeyError(uid)

    def frames(self, uid: str) -> int:
        if self.pools:
            return self._pool_of(uid).frames(uid)
        n = torch.tensor([int(round(self._utt[uid].duration * self.upstream.spec.sample_rate))], device="cpu")
        return int(self.upstream.num_frames(n)[0])

    def get_batch(self, ids: Sequence[str], crops: Optional[Sequence[Tuple[int, int]]] = None):
        """(layers (L+1, B, T, D) float32, lengths (B,) int64), both on this source's device
        (harness/batches.py: gathered on the host, padded and cast on the device; live mode
        keeps the upstream's layers on the device)."""
        from harness.batches import device_batch, host_batch, live_batch

        if self.pools:
            return device_batch(host_batch(self, ids, crops), self.device)
        return live_batch(self, ids, crops)


def prepare_sources(
    upstream: Upstream,
    splits: Dict[str, List[Utterance]],
    pools_of: Dict[str, List[List[Utterance]]],
    cache_dir: Path,
    budget_gb: float,
    device: str = "cpu",
    skip_bad: bool = False,
    log=print,
    weights_hash: Optional[str] = None,
    cache_dtype: str = "float16",
    extract_dtype: str = "float32",
) -> Dict[str, FeatureSource]:
    """Cache every pool the splits need, stored as `cache_dtype` (float16 or int8), or fall back
    to live extraction over the budget (saying in one line what to pass to cache instead).

    `weights_hash` is `upstream.weights_hash()` when the caller already has it (hashing a
    base-size model's weights takes about a second).

    Args:
        splits: split name -> utterances the task uses.
        pools_of: split name -> the pools (lists of utterances) that contain them.
    """
    from harness.batches import budget_line

    all_pools = {manifest_hash(p): p for ps in pools_of.values() for p in ps}
    need16 = sum(estimate_bytes(upstream, p) for p in all_pools.values())
    # int8: one byte a value plus float32 scales per (utterance, layer, channel)
    per_utt = upstream.spec.num_layers * upstream.spec.hidden_size * 4
    need8 = need16 // 2 + sum(len(p) for p in all_pools.values()) * per_utt
    need = need8 if cache_dtype == "int8" else need16
    if need > budget_gb * 2**30:
        log(budget_line(need16, need8, budget_gb, cache_dtype))
        return {s: FeatureSource(u, upstream=upstream, device=device, skip_bad=skip_bad, cache_dtype=cache_dtype,
                                 extract_dtype=extract_dtype) for s, u in splits.items()}
    uhash = weights_hash or upstream.weights_hash()
    from harness.extraction import SUFFIX

    # float32-extracted float16 pools keep their folder names; a pool built with --skip-bad may
    # lack items: a run without the flag never reads it
    suffix = SUFFIX[extract_dtype] + ("-int8" if cache_dtype == "int8" else "") + ("-skip-bad" if skip_bad else "")
    folders = {h: Path(cache_dir) / uhash / (h + suffix) for h in all_pools}
    check_space(cache_dir, sum(estimate_bytes(upstream, p) for h, p in all_pools.items() if not folders[h].exists()),
                "--cache", f"{upstream.spec.name}'s features (or lower --cache-budget-gb to run it per batch)")
    built = {}
    for h, p in all_pools.items():
        built[h] = build_pool(upstream, p, folders[h], device, skip_bad,
                              desc=f"{upstream.spec.name}: features ({len(p)} utts)", log=log, dtype=cache_dtype,
                              compute=extract_dtype)
    return {
        s: FeatureSource(u, pools=[built[manifest_hash(p)] for p in pools_of[s]], upstream=upstream,
                         device=device, skip_bad=skip_bad, cache_dtype=cache_dtype, extract_dtype=extract_dtype)
        for s, u in splits.items()
    }
