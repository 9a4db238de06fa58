"""A pool is hashed in full once, then opens on its stamp (issue 30 item 2): size, mtime, the
first and last MiB of each shard and index.json's own hash; anything else changed falls back to
the full hash; `harness data verify` hashes everything whatever the stamp says."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

import harness.features as feats
from harness.cli import app
from harness.poolstamp import STAMP, stamp_mismatch
from tests.conftest import make_tone_corpus


@pytest.fixture
def pool(tmp_path):
    from harness.data.corpora import load_corpus
    from harness.evaluate import build_task, build_upstream

    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4)
    task = build_task("lid")
    splits = task.prepare(load_corpus(str(corpus), cache_dir=tmp_path / "corpora"))
    srcs = feats.prepare_sources(build_upstream("fbank"), splits.as_dict(), splits.pools, tmp_path / "cache" / "features",
                                 1.0, log=lambda *_: None)
    return srcs["train"].pools[0].folder


@pytest.fixture
def hashes(monkeypatch):
    calls = []
    real = feats.file_digest
    monkeypatch.setattr(feats, "file_digest", lambda p: calls.append(p.name) or real(p))
    return calls


def _shards(folder):
    return [e["name"] for e in json.loads((folder / "index.json").read_text())["shards"]]


def test_built_pool_is_stamped_and_opens_without_hashing(pool, hashes):
    assert (pool / STAMP).is_file() and stamp_mismatch(pool) is None
    p = feats.open_pool(pool)
    assert p is not None and hashes == []  # no shard hashed
    (pool / STAMP).unlink()  # no stamp: one full check, then stamped again
    feats.open_pool(pool)
    assert sorted(hashes) == sorted(_shards(pool)) and stamp_mismatch(pool) is None
    hashes.clear()
    feats.open_pool(pool)
    assert hashes == []


def test_a_changed_shard_or_index_falls_back_to_the_full_hash(pool, hashes):
    shard = pool / _shards(pool)[0]
    st = shard.stat()
    data = bytearray(shard.read_bytes())
    data[-100:] = bytes(100)  # the tail: the cheap sample sees it even with the old mtime put back
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "changed since it was verified" in stamp_mismatch(pool)
    lines = []
    assert feats.open_pool(pool, log=lines.append) is None  # damaged: reported and removed
    assert len(lines) == 1 and "damaged" in lines[0] and not pool.exists()


def test_an_edited_index_is_always_seen(pool, hashes):
    idx = pool / "index.json"
    idx.write_text(idx.read_text() + " ")
    assert stamp_mismatch(pool) == "index.json changed since it was verified"
    feats.open_pool(pool)  # still sound: hashed in full, stamped again
    assert sorted(hashes) == sorted(_shards(pool)) and stamp_mismatch(pool) is None


def test_data_verify_hashes_everything_and_names_the_damaged(pool, tmp_path):
    cache = tmp_path / "cache"
    n = len(list((cache / "features").rglob("index.json")))
    r = CliRunner().invoke(app, ["data", "verify", "--cache", str(cache)], terminal_width=400)
    out = r.output.replace("\n", "")  # rich wraps long paths
    assert r.exit_code == 0 and f"ok {pool}" in out and f"{n} sound pool(s), 0 damaged" in out
    # damage in the middle of a shard with its mtime put back: the stamp cannot see it, verify can
    shard = pool / _shards(pool)[0]
    st = shard.stat()
    data = bytearray(shard.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64) if any(data[mid : mid + 64]) else b"\x01" * 64
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    if len(data) > 2 * 2**20 + 64:
        assert stamp_mismatch(pool) is None  # the documented limit of the cheap check
    r = CliRunner().invoke(app, ["data", "verify", "--cache", str(cache)], terminal_width=400)
    out = r.output.replace("\n", "")
    assert r.exit_code == 1 and f"DAMAGED {pool}" in out and f"{n - 1} sound pool(s), 1 damaged" in out
    assert np.load(shard, mmap_mode="r").shape[0] > 0  # verify reports; it does not delete
