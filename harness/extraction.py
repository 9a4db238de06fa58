"""Feature extraction helpers: reduced precision, audio decoded ahead in worker threads, shards
hashed while they are written.

- Precision (`extract_dtype`): "float32" (the default and the reference), "bfloat16" (autocast:
  matmuls and convolutions in bfloat16 on CPUs that have it (AVX512-BF16, AMX) and on GPUs), or
  "float16" (autocast, CUDA only). Every layer is cast to the cache's dtype on the device, so only
  float16 (half of float32) crosses to the host. tests/unit/test_extraction.py bounds the
  per-layer error of bfloat16 against float32.
- Decoding: the audio of the next batches is read and resampled by worker threads while the
  upstream runs on the current one (soundfile and the resampler release the GIL).
- Hashing while writing: a shard's blake2b is computed from the bytes as they go to disk, not by
  reading the file back.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: pool folder suffix of each extraction precision (float32 pools keep their names)
SUFFIX = {"float32": "", "bfloat16": "-bf16", "float16": "-fp16"}


def autocast(device, dtype: str):
    """The autocast context of an extraction precision on `device` (a no-op for float32)."""
    dev = torch.device(device)
    return torch.autocast(device_type=dev.type, dtype=DTYPES[dtype], enabled=dtype != "float32")


def fused_copy(upstream):
    """A deep copy of `upstream` whose modules that can fuse for inference have
    (`fuse_for_inference`); the original is untouched. Same float32 numbers up to rounding."""
    import copy

    fused = copy.deepcopy(upstream)
    for m in list(fused.modules()):
        if callable(getattr(m, "fuse_for_inference", None)):
            m.fuse_for_inference()
    return fused


def for_compute(upstream, dtype: str):
    """The upstream to run under extraction precision `dtype`: itself for float32; otherwise a
    copy whose Linear and convolution weights are stored in that dtype once. Autocast casts a
    float32 weight on every call (about 6 % of a HuBERT Base bfloat16 forward on the CPU, the
    weights being 95 M parameters); a weight already in the autocast dtype is used as is, so the
    numbers are the same as autocast's. Norms, embeddings, weight-normalised convolutions and
    modules marked `keep_float32` stay float32. Modules that can fuse for inference do first
    (`fuse_for_inference`: q, k and v in one product; the positional conv's weight computed once,
    not on every call, and marked, so the CPU's FFT path still gets its float32 weight)."""
    if dtype == "float32":
        return upstream
    from torch.nn.utils import parametrize

    low = fused_copy(upstream)
    for m in low.modules():
        if (isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)) and not parametrize.is_parametrized(m)
                and not getattr(m, "keep_float32", False)):
            m.to(DTYPES[dtype])
    return low


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); without them oneDNN
    emulates it: a 600 x 768 by 768 x 3072 Linear ran 4x slower in bfloat16 than in float32 on
    one thread of an Intel Xeon that has AVX-512 but neither (2026-12-07)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


def check_extract_dtype(dtype: str, device: str) -> Optional[str]:
    """One line when a precision cannot run on a device (float16 autocast is CUDA's); returns a
    warning line when it runs but slower than float32 (bfloat16 on a CPU without bf16 units)."""
    from harness.errors import ConfigError

    if dtype not in DTYPES:
        raise ConfigError(f"config key 'extract_dtype' must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "float16" and not str(device).startswith("cuda"):
        raise ConfigError(f"extract_dtype float16 needs a CUDA device (device is {device!r}); use bfloat16 on the CPU")
    if dtype == "bfloat16" and torch.device(device).type == "cpu" and not cpu_has_bf16_units():
        return ("extract_dtype bfloat16: this CPU has no bfloat16 units (AVX512-BF16, AMX), so extraction runs "
                "emulated and slower than float32; the features are still bfloat16-rounded")
    return None


class _HashingFile:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.blake2b(digest_size=16), 0

    def write(self, data) -> int:
        b = memoryview(data).cast("B")
        self.h.update(b)
        self.n += len(b)
        return self.f.write(b)


def save_hashed(path: Path, arr: np.ndarray) -> Tuple[int, str]:
    """np.save `arr` to `path`; returns (bytes written, blake2b of the file), computed on the
    way to disk (the same digest as features.file_digest of the finished file)."""
    with open(path, "wb") as f:
        w = _HashingFile(f)
        np.lib.format.write_array(w, np.ascontiguousarray(arr), allow_pickle=False)
    return w.n, w.h.hexdigest()


class ShardWriter:
    """Consecutive utterances' (frames, L+1, D) arrays packed into `.npy` shards of at most
    `frames_per_shard` frames (an utterance is never split), each saved and hashed as written.

    Attributes:
        items: (utterance id, shard number, frame offset, frames) per added utterance.
        shards: index.json's shard entries (name, frames, bytes, blake2b).
    """

    def __init__(self, folder: Path, frames_per_shard: int):
        self.folder, self.frames_per_shard = Path(folder), frames_per_shard
        self.items: List[tuple] = []
        self.shards: List[dict] = []
        self._buf: List[np.ndarray] = []
        self._frames = 0

    def add(self, uid: str, arr: np.ndarray) -> None:
        n = int(arr.shape[0])
        if self._frames + n > self.frames_per_shard:
            self.flush()
        self.items.append((uid, len(self.shards), self._frames, n))
        self._buf.append(arr)
        self._frames += n

    def flush(self) -> None:
        """Write the shard being filled (nothing when it is empty)."""
        if not self._buf:
            return
        name = f"shard_{len(self.shards):05d}.npy"
        arr = np.concatenate(self._buf, 0)
        size, digest = save_hashed(self.folder / name, arr)
        self.shards.append({"name": name, "frames": int(arr.shape[0]), "bytes": size, "blake2b": digest})
        self._buf, self._frames = [], 0


def decoded_batches(utts: Sequence, batches: Sequence[Sequence[int]], skip_bad: bool, skips,
                    workers: int = 2, ahead: int = 2) -> Iterator[Tuple[list, List[torch.Tensor], list]]:
    """(group, waveforms, kept utterances) per batch of indices into `utts`, in order, the next
    `ahead` batches decoded by `workers` threads meanwhile. Bad audio is added to `skips` (or
    raised, without --skip-bad) in batch order, as the serial loop did."""
    from harness.features import SkipCounter, _load_many

    def load(group):
        local = SkipCounter()
        wavs, keep = _load_many(group, skip_bad, local)
        return wavs, keep, local

    groups = [[utts[i] for i in b] for b in batches]
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        futures = [pool.submit(load, g) for g in groups[: ahead + 1]]
        for k, group in enumerate(groups):
            wavs, keep, local = futures[k].result()
            skips.items.update(local.items)
            if k + ahead + 1 < len(groups):
                futures.append(pool.submit(load, groups[k + ahead + 1]))
            futures[k] = None  # free the decoded audio once used
            yield group, wavs, keep


def extract_pool(upstream, utts, folder: Path, device, skip_bad: bool, desc: str, dtype: str = "float16",
                 compute: str = "float32") -> None:
    """Write a pool stored as `dtype` (float16: features._extract; int8: quant.extract_int8) with
    the upstream in `compute` precision into the empty `folder`, then stamp it as verified (its
    shards were hashed as they were written: harness/poolstamp.py)."""
    from harness.features import _extract
    from harness.poolstamp import write_stamp

    if dtype == "int8":
        from harness.quant import extract_int8

        extract_int8(upstream, utts, folder, device, skip_bad, desc, compute)
    else:
        _extract(upstream, utts, folder, device, skip_bad, desc, compute)
    write_stamp(folder)
