"""Probe batches on the probe's device: gathered on the host, padded and cast on the device.

A cached batch is built in two halves so that the first can run ahead in a worker thread:

1. `host_batch` (any thread): each item's frames are copied once, straight from the memory-mapped
   shard into one flat host buffer of the stored dtype (float16, or int8 plus its scales), with
   no padding. On CUDA that buffer is pinned (torch's caching host allocator reuses it), so the
   copy to the device can overlap the step before it.
2. `device_batch` (the training thread): the flat buffer goes to the device with
   `non_blocking=True`; there each item is cast to float32 while it is copied into the
   zero-padded (L+1, B, T, D) batch, and int8 items are multiplied by their scales in place.

`Prefetcher` runs step 1 of the next `depth` batches in one worker thread while the probe trains
on the current one: the sampler is only ever called from that thread, in order, so the batches
(and a seed's result) are the same with and without it.

Live mode (no cache, `live_batch`) runs the frozen upstream on the device and keeps its layers
there: nothing goes back to the host.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch

Crops = Optional[Sequence[Tuple[int, int]]]


@dataclass
class HostBatch:
    """One batch's frames on the host, unpadded.

    Attributes:
        data: (N, L+1, D) frames of all items one after the other (N = sum of lengths), in the
            pool's stored dtype (float16, or int8).
        lengths: per item, its frames.
        scales: int8 pools only: (B, L+1, D) float32 per-item, per-layer, per-channel scales
            (value = int8 x scale, harness/quant.py); None for float16.
    """

    data: torch.Tensor
    lengths: List[int]
    scales: Optional[torch.Tensor] = None


def pin_for(device) -> bool:
    """Whether host buffers bound for `device` should be pinned (CUDA only; pinning needs a
    CUDA driver and buys nothing for a CPU probe)."""
    return torch.device(device).type == "cuda"


def layer_slice(source) -> slice:
    """The hidden states a source hands out: all (the default), or the slice its
    `layer_slice` attribute names (harness.analysis's single-layer probes)."""
    return getattr(source, "layer_slice", None) or slice(None)


def host_batch(source, ids: Sequence[str], crops: Crops = None) -> HostBatch:
    """The frames of `ids` (optionally crops (start, frames)) copied from the source's pools
    into one flat, pinned-when-useful host buffer. Safe to call from a worker thread."""
    parts, lengths = [], []
    for k, uid in enumerate(ids):
        pool = source._pool_of(uid)
        start, length = crops[k] if crops else (0, None)
        parts.append((pool, uid, start, length))
        lengths.append(pool.frames(uid) - start if length is None else length)
    first = parts[0][0]
    sel = layer_slice(source)
    l1, dim = len(range(first.num_layers)[sel]), first.dim
    dtype = getattr(first, "torch_dtype", torch.float16)
    pin = pin_for(source.device)
    data = torch.empty((sum(lengths), l1, dim), dtype=dtype, pin_memory=pin)
    flat = data.numpy()
    scales = None
    if dtype == torch.int8:
        scales = torch.empty((len(ids), l1, dim), dtype=torch.float32, pin_memory=pin)
    off = 0
    for k, (pool, uid, start, length) in enumerate(parts):
        n = lengths[k]
        flat[off : off + n] = pool.get(uid, start, length)[:, sel]  # the one copy out of the memory map
        if scales is not None:
            scales.numpy()[k] = pool.scale(uid)[sel]
        off += n
    return HostBatch(data, lengths, scales)


def device_batch(hb: HostBatch, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(layers (L+1, B, T, D) float32, lengths (B,) int64), both on `device`: the host buffer
    is sent as stored (half the bytes of float32, a quarter for int8) and padded, cast and (int8)
    scaled there, one slice copy per item (measured on the CPU: 1.6x faster than one
    index_copy_ of all rows, and faster than the earlier per-item copies from the host).
    """
    device = torch.device(device)
    data = hb.data.to(device, non_blocking=True)
    scales = hb.scales.to(device, non_blocking=True) if hb.scales is not None else None
    l1, dim = data.shape[1], data.shape[2]
    out = torch.zeros((l1, len(hb.lengths), max(hb.lengths), dim), dtype=torch.float32, device=device)
    off = 0
    for k, n in enumerate(hb.lengths):
        dst = out[:, k, :n]
        dst.copy_(data[off : off + n].transpose(0, 1))  # the cast to float32 happens in the copy
        if scales is not None:
            dst.mul_(scales[k][:, None, :])  # int8 x its (layer, channel) scale, harness/quant.py
        off += n
    return out, torch.tensor(hb.lengths, dtype=torch.long, device=device)


def budget_line(need16: int, need8: int, budget_gb: float, dtype: str) -> str:
    """The one line saying that a cache does not fit its budget, and what to pass so that it does."""
    import math

    gib16, gib8 = need16 / 2**30, need8 / 2**30
    size = f"{gib8:.1f} GiB in int8" if dtype == "int8" else f"{gib16:.1f} GiB in float16"
    fix = (f"--cache-budget-gb {math.ceil(gib8)}" if dtype == "int8" else
           f"--cache-budget-gb {math.ceil(gib16)}, or --cache-dtype int8 --cache-budget-gb {math.ceil(gib8)}")
    return (f"feature cache would take {size} > budget {budget_gb:g} GiB: running the upstream per batch instead "
            f"(slower); to cache it pass {fix}")


def live_batch(source, ids: Sequence[str], crops: Crops = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Live mode: the frozen upstream on the source's device, its layers kept there and given
    the cache's rounding (float16, or int8 per harness/quant.py: both paths give the same
    numbers), cropped."""
    from harness.audio import pad_batch
    from harness.errors import HarnessError
    from harness.features import _load_many

    device = torch.device(source.device)
    wavs, keep = _load_many([source.utterance(i) for i in ids], source.skip_bad, source.skipped)
    if len(keep) != len(ids):
        raise HarnessError("bad audio found during live feature extraction; rerun with the cache")
    from harness.extraction import autocast

    x, lens = pad_batch(wavs)
    with torch.no_grad():
        with autocast(device, getattr(source, "extract_dtype", "float32")):
            hs = source.upstream(x.to(device, non_blocking=True), lens.to(device))
        lengths = hs.lengths.to(device=device, dtype=torch.long)
        if getattr(source, "cache_dtype", "float16") == "int8":
            from harness.quant import fake_quantize

            layers = fake_quantize(torch.stack([h.float() for h in hs.layers], 0), lengths)
        else:  # through float32, as run_upstream casts
            layers = torch.stack([h.float().to(torch.float16).float() for h in hs.layers], 0)
    layers = layers[layer_slice(source)]
    if crops:
        t = max(c[1] for c in crops)
        out = torch.zeros((layers.shape[0], layers.shape[1], t, layers.shape[3]), device=device)
        for k, (s, n) in enumerate(crops):
            out[:, k, :n] = layers[:, k, s : s + n]
        layers = out
        lengths = torch.tensor([c[1] for c in crops], dtype=torch.long, device=device)
    return layers, lengths


class Prefetcher:
    """Host batches made ahead in one worker thread.

    `next()` -> (ids, crops, HostBatch or None), or None once `make` returned None. The
    HostBatch is None in live mode (nothing to make ahead: the upstream runs on the device in
    the training thread). `make` is the batch source (e.g. TrainSampler.next, returning
    (ids, crops)); it is called only from the worker, in order, so the sequence of batches is
    exactly the one the probe would draw itself. An error in the worker is raised by `next`.
    """

    def __init__(self, source, make: Callable[[], Optional[Tuple[List[str], Crops]]], depth: int = 2):
        self.source, self.make = source, make
        self._q: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                got = self.make()
                if got is None:
                    self._put(None)
                    return
                ids, crops = got
                self._put((ids, crops, host_batch(self.source, ids, crops) if self.source.cached else None))
        except BaseException as e:  # handed to the training thread, raised there
            self._put(e)

    def next(self):
        item = self._q.get()
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def to_probe(source, ids: Sequence[str], crops: Crops, hb: Optional[HostBatch]):
    """The device batch of a prefetched item (live mode: run the upstream now)."""
    if hb is None:
        return live_batch(source, ids, crops)
    return device_batch(hb, source.device)


def eval_batches(source, groups: Sequence[Sequence[str]], depth: int = 2):
    """(ids, layers, lengths) on the source's device per group of ids, the host halves made
    ahead in a worker thread (closed when the caller stops early)."""
    it = iter(groups)

    def make():
        ids = next(it, None)
        return None if ids is None else (list(ids), None)

    with Prefetcher(source, make, depth) as pre:
        while True:
            item = pre.next()
            if item is None:
                return
            ids, crops, hb = item
            yield (ids, *to_probe(source, ids, crops, hb))
