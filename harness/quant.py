"""The int8 feature cache (`--cache-dtype int8`): half the bytes of float16, decoded on the device.

Each utterance's (T, L+1, D) layers are stored as int8 with one scale per (layer, channel),
computed over that utterance's frames (symmetric absmax):

    scale[l, d] = max_t |x[t, l, d]| / 127        (1 where the channel is all zero)
    q[t, l, d]  = round(x[t, l, d] / scale[l, d])  in [-127, 127]
    x'          = q x scale

so every value is off by at most scale / 2 = max_t |x[t, l, d]| / 254: 0.4 % of the largest
magnitude of its channel in that utterance (tests/unit/test_quant.py checks the bound). Per
channel, because a few channels of a transformer's hidden states are orders of magnitude larger
than the rest (one scale per layer would spend the 8 bits on them); per utterance, because a
scale over the whole pool would be set by its loudest utterance. Scales are float32, so the bound
is exact up to float32 rounding; they add 4 (L+1) D bytes per utterance (0.7 % of an utterance's
int8 bytes at 50 frames/s and 12 s).

On disk a pool is the float16 layout with int8 shards, plus `scales.npy` (items, L+1, D) float32,
row i = the i-th item of index.json, listed in index.json (`"dtype": "int8"` and `"scales"` with
its size and blake2b) and checked like a shard. The live path (no cache) applies the same
quantisation on the device (`fake_quantize`), so cached and live batches stay equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

from harness.extraction import ShardWriter, decoded_batches
from harness.features import (EXTRACT_BATCH_SECONDS, INDEX_FORMAT, SHARD_BYTES, CachedPool, DamagedPool, SkipCounter,
                              file_digest, length_batches, run_upstream)
from harness.progress import progress_bar
from harness.results import atomic_write_json

QMAX = 127
SCALES = "scales.npy"


def scales_of(absmax: torch.Tensor) -> torch.Tensor:
    """float32 scales from per-channel absolute maxima (an all-zero channel gets 1)."""
    s = absmax.float() / QMAX
    return torch.where(s > 0, s, torch.ones_like(s))


def quantize(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """One utterance's layers (T, L+1, D) float -> (int8 (T, L+1, D), float32 scales (L+1, D))."""
    x = x.float()
    scale = scales_of(x.abs().amax(dim=0))
    q = torch.round(x / scale).clamp_(-QMAX, QMAX).to(torch.int8)
    return q, scale


def fake_quantize(layers: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """What the int8 cache returns for a live batch: layers (L+1, B, T, D) float, lengths (B,);
    scales over each item's valid frames, padding left at 0. Same arithmetic as `quantize`."""
    t = layers.shape[2]
    valid = (torch.arange(t, device=layers.device)[None, :] < lengths[:, None])[None, :, :, None]  # (1, B, T, 1)
    x = layers.float() * valid
    scale = scales_of(x.abs().amax(dim=2, keepdim=True))  # (L+1, B, 1, D)
    return torch.round(x / scale).clamp_(-QMAX, QMAX) * scale * valid


class QuantizedPool(CachedPool):
    """An int8 pool: CachedPool's checks on the int8 shards, plus the scales file (size, hash
    when `verify`, shape). `get` returns int8 frames; `scale(uid)` the utterance's scales."""

    torch_dtype = torch.int8

    def __init__(self, folder: Path, verify: bool = True):
        super().__init__(folder, verify)
        try:
            idx = json.loads((self.folder / "index.json").read_text())
            entry = idx["scales"]
            rows = {item[0]: k for k, item in enumerate(idx["items"])}
            path = self.folder / entry["name"]
            if path.stat().st_size != entry["bytes"]:
                raise DamagedPool(f"{entry['name']} has {path.stat().st_size} bytes, index.json says {entry['bytes']}")
            if verify and file_digest(path) != entry["blake2b"]:
                raise DamagedPool(f"{entry['name']} does not match its blake2b hash in index.json")
            self._scales = np.load(path, mmap_mode="r")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DamagedPool(f"int8 scales unreadable ({type(e).__name__}: {str(e)[:100]})") from None
        if self._scales.shape != (len(rows), self.num_layers, self.dim) or self._scales.dtype != np.float32:
            raise DamagedPool(f"{SCALES} has shape {self._scales.shape} {self._scales.dtype}, expected "
                              f"{(len(rows), self.num_layers, self.dim)} float32")
        self._row = rows

    def scale(self, uid: str) -> np.ndarray:
        """(L+1, D) float32 scales of one utterance."""
        return self._scales[self._row[uid]]


def extract_int8(upstream, utts, folder: Path, device, skip_bad: bool, desc: str, compute: str = "float32") -> None:
    """Write an int8 pool (shards, scales.npy and, last, index.json) into the empty `folder`:
    the float16 extraction's layout, quantised from the upstream's float32 layers."""
    l1, dim = upstream.spec.num_layers, upstream.spec.hidden_size
    out = ShardWriter(folder, max(1, SHARD_BYTES // (l1 * dim)))
    skips = SkipCounter()
    scales = []
    from harness.extraction import for_compute

    upstream = for_compute(upstream.eval().to(device), compute)
    batches = length_batches(utts, EXTRACT_BATCH_SECONDS, max_items=32)
    with progress_bar(desc, total=sum(u.duration for u in utts), unit="s audio") as bar:
        for group, wavs, keep in decoded_batches(utts, batches, skip_bad, skips):
            if keep:
                layers, lens = run_upstream(upstream, wavs, device, compute)
                for j, u in enumerate(keep):
                    q, sc = quantize(layers[:, j, :int(lens[j])].permute(1, 0, 2))
                    out.add(u.id, q.numpy())
                    scales.append(sc.numpy())
            bar.advance(sum(u.duration for u in group))
    out.flush()
    np.save(folder / SCALES, np.stack(scales, 0) if scales else np.zeros((0, l1, dim), np.float32))
    idx = {"format": INDEX_FORMAT, "dtype": "int8", "num_layers": l1, "dim": dim, "items": [list(x) for x in out.items],
           "shards": out.shards, "scales": {"name": SCALES, "bytes": (folder / SCALES).stat().st_size,
                                        "blake2b": file_digest(folder / SCALES)},
           "skipped": skips.items, "upstream": upstream.spec.name}
    from harness import features

    idx["digest"] = features.index_digest(idx)  # an index carries its own digest (checked by CachedPool)
    atomic_write_json(folder / "index.json", idx)
