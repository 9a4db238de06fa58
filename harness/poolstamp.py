"""A feature pool verified once: the stamp that lets a large pool open in seconds.

Hashing every shard of a pool on every open costs about a second per GB (7 minutes for the
400 GB of HuBERT Base on LibriSpeech 100 h, in every evaluation and every SLURM job). Instead a
pool is hashed in full once (when it is built, or the first time it is opened without a stamp),
and `verified.json` is written next to index.json. It records:

- the blake2b of index.json itself (the index is small: it is hashed on every open, so an
  edited or replaced index is always caught);
- per shard: its size, its modification time (ns), and the blake2b of its first and last MiB.

On open, a pool whose stamp matches all of these is trusted without the full hash (the shape and
size checks of `CachedPool` still run); any difference (a rewritten, truncated or copied shard,
an edited index, a missing stamp) falls back to the full check, which re-stamps a sound pool.
`harness data verify` runs the full check on every pool of a cache whatever its stamp.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

STAMP = "verified.json"
STAMP_FORMAT = 1
SAMPLE_BYTES = 2**20


def _blake(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def sample_digest(path: Path) -> str:
    """blake2b of a file's first and last SAMPLE_BYTES (the whole file when it is smaller)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
        tail = b""
        if size > SAMPLE_BYTES:
            f.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
            tail = f.read()
    return _blake(head + b"|" + tail)


def _shard_names(folder: Path) -> List[str]:
    idx = json.loads((folder / "index.json").read_text())
    # an int8 pool's scales file is checked like a shard (harness/quant.py)
    return [e["name"] for e in idx["shards"]] + ([idx["scales"]["name"]] if "scales" in idx else [])


def _facts(folder: Path) -> Dict:
    """What the stamp records of a pool, read now from disk."""
    index = (folder / "index.json").read_bytes()
    shards = {}
    for name in _shard_names(folder):
        st = (folder / name).stat()
        shards[name] = {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sample_blake2b": sample_digest(folder / name)}
    return {"format": STAMP_FORMAT, "index_blake2b": _blake(index), "shards": shards}


def write_stamp(folder: Path) -> None:
    """Record that the pool in `folder` passed the full check (call it right after that check).
    Best effort: a read-only cache just stays unstamped (and is hashed in full on each open)."""
    from harness.results import atomic_write_json

    try:
        atomic_write_json(Path(folder) / STAMP, _facts(Path(folder)))
    except (OSError, ValueError, KeyError, TypeError):
        pass


def stamp_mismatch(folder: Path) -> Optional[str]:
    """None when the pool's stamp matches the pool on disk (no full hash needed); otherwise why
    not (no stamp, an index or shard that changed since it was verified)."""
    folder = Path(folder)
    try:
        stamp = json.loads((folder / STAMP).read_text())
    except FileNotFoundError:
        return "never verified"
    except (OSError, ValueError) as e:
        return f"{STAMP} unreadable ({type(e).__name__})"
    try:
        now = _facts(folder)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"pool unreadable ({type(e).__name__})"
    if not isinstance(stamp, dict) or stamp.get("format") != STAMP_FORMAT:
        return f"{STAMP} of another format"
    if stamp.get("index_blake2b") != now["index_blake2b"]:
        return "index.json changed since it was verified"
    if stamp.get("shards") != now["shards"]:
        changed = sorted(n for n in now["shards"] if (stamp.get("shards") or {}).get(n) != now["shards"][n])
        return f"{changed[0] if changed else 'a shard'} changed since it was verified"
    return None


def open_trusted(folder: Path, open_pool: Callable[[Path, bool], object]):
    """Open a pool with `open_pool(folder, verify)`: without the full hash when its stamp
    matches, with it otherwise (and then stamp it). Raises what `open_pool` raises."""
    full = stamp_mismatch(folder) is not None
    pool = open_pool(Path(folder), full)
    if full:
        write_stamp(folder)
    return pool


def verify_cache(cache: Path, open_pool: Callable[[Path, bool], object], damaged: type,
                 log: Callable[[str], None] = print) -> Tuple[int, int]:
    """Fully check every pool under `cache` (folders holding an index.json), re-stamp the sound
    ones, and log one line per pool. Returns (sound, damaged)."""
    ok = bad = 0
    for index in sorted(Path(cache).rglob("index.json")):
        folder = index.parent
        if ".tmp-" in folder.name or ".old-" in folder.name:
            continue
        try:
            open_pool(folder, True)
        except damaged as e:
            bad += 1
            log(f"DAMAGED {folder}: {e} (it is removed and rebuilt when an evaluation next needs it)")
            continue
        write_stamp(folder)
        ok += 1
        log(f"ok {folder}")
    return ok, bad


def pool_class(folder: Path):
    """features.CachedPool, or quant.QuantizedPool for a pool whose index.json says "dtype": "int8"."""
    from harness.features import CachedPool

    try:
        dtype = json.loads((Path(folder) / "index.json").read_text()).get("dtype", "float16")
    except (OSError, ValueError, AttributeError):
        dtype = "float16"  # CachedPool reports what is wrong with the index
    if dtype == "int8":
        from harness.quant import QuantizedPool

        return QuantizedPool
    return CachedPool
