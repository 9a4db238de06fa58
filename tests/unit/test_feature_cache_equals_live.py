"""The feature cache returns what the upstream computes (issue 36).

A probe trained on cached features must see the frames the live upstream gives for the same
item: every item, whole and cropped (start, middle, the last frames), alone and in padded
batches, across several shards, the last item of each shard included. A cache that reads one
frame late, or indexes an item into the wrong shard, would pass every learning threshold on the
tone corpus and still move every cached number.
"""

from __future__ import annotations

import json

import pytest
import torch

from harness import features
from harness.data.corpus import load_manifest_dir
from harness.evaluate import build_upstream
from harness.features import FeatureSource, build_pool
from tests.conftest import make_tone_corpus

SHARD_FRAMES = 300  # a few items per shard (items are 60-140 frames at 100 Hz, 30-70 at 50 Hz)


@pytest.fixture(scope="module")
def utts(tmp_path_factory):
    root = make_tone_corpus(tmp_path_factory.mktemp("tones") / "tones", n_per_class=6)
    return load_manifest_dir(root).utterances


def _crops(n: int):
    """(start, length) crops of an n-frame item: the head, the middle, the tail."""
    k = max(1, n // 3)
    return [(0, k), (n // 3, k), (n - k, k)]


@pytest.mark.parametrize("name", ["fbank_no_cmvn", "random:hubert_tiny"])
def test_cached_batches_equal_live_batches(utts, tmp_path, monkeypatch, name):
    up = build_upstream(name)
    L1, D = up.spec.num_layers, up.spec.hidden_size
    monkeypatch.setattr(features, "SHARD_BYTES", SHARD_FRAMES * L1 * D * 2)
    pool = build_pool(up, utts, tmp_path / "pool", log=lambda *_: None)
    index = json.loads((tmp_path / "pool" / "index.json").read_text())
    last_of_shard = {}
    for uid, shard, offset, n in index["items"]:
        if offset + n > last_of_shard.get(shard, (None, -1))[1]:
            last_of_shard[shard] = (uid, offset + n)
    assert len(index["shards"]) >= 3
    for shard, (uid, end) in last_of_shard.items():  # the last item ends where its shard ends
        assert end == index["shards"][shard]["frames"], uid
    cached, live = FeatureSource(utts, pools=[pool]), FeatureSource(utts, upstream=up)
    assert cached.ids == live.ids and len(cached.ids) == len(utts)
    # fp16 storage on both paths; HuBERT's batched extraction differs from one item alone by ~1e-5
    tol = dict(rtol=2e-3, atol=2e-3) if up.spec.num_layers > 1 else dict(rtol=0, atol=0)
    lasts = {u for u, _ in last_of_shard.values()}
    checked_last = set()
    for uid in cached.ids:
        n = cached.frames(uid)
        assert n == live.frames(uid), uid
        a, la = cached.get_batch([uid])
        b, lb = live.get_batch([uid])
        assert la.tolist() == lb.tolist() == [n] and a.shape == (L1, 1, n, D)
        torch.testing.assert_close(a, b, **tol, msg=lambda m: f"{uid}: {m}")
        crops = _crops(n)
        a, la = cached.get_batch([uid] * len(crops), crops)
        b, lb = live.get_batch([uid] * len(crops), crops)
        assert la.tolist() == lb.tolist() == [c[1] for c in crops]
        torch.testing.assert_close(a, b, **tol, msg=lambda m: f"{uid} crops {crops}: {m}")
        checked_last |= {uid} & lasts
    assert checked_last == lasts
    # a padded batch of items of different lengths (one from each shard), padding zero
    ids = sorted(lasts)
    a, la = cached.get_batch(ids)
    b, lb = live.get_batch(ids)
    assert la.tolist() == lb.tolist() and len(set(la.tolist())) > 1
    torch.testing.assert_close(a, b, **tol)
    for k, n in enumerate(la.tolist()):
        assert float(a[:, k, n:].abs().sum()) == 0.0

