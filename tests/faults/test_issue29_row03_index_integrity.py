"""Issue 29, row 3: the feature pool's index.json is covered by the integrity check.

Frame offsets of 10 items moved in index.json (still valid JSON, every shard intact): the pool is
named damaged in one line and rebuilt, and the rerun's metrics and features are the clean run's
(on f051749 the moved offsets were read as they stood: another test PER, no message).
"""

from __future__ import annotations

import json

import pytest

from harness.features import CachedPool, DamagedPool, index_digest
from tests.faults.test_caches import _rerun_rebuilds, clean_run  # noqa: F401 (a fixture)


def _shift_offsets(pool, n=10, by=3):
    path = pool / "index.json"
    idx = json.loads(path.read_text())
    moved = 0
    for item in idx["items"]:
        if moved < n and item[2] >= by:
            item[2] -= by
            moved += 1
    assert moved == n
    path.write_text(json.dumps(idx))
    return idx


def test_row03_shifted_offsets_in_the_index_are_named_and_rebuilt(tmp_path, clean_run):  # noqa: F811
    pool = clean_run[2]
    _shift_offsets(pool)
    with pytest.raises(DamagedPool, match="index.json"):
        CachedPool(pool)
    _rerun_rebuilds(tmp_path, clean_run)


def test_row03_an_item_outside_its_shard_is_damage_even_with_a_matching_digest(clean_run):  # noqa: F811
    pool = clean_run[2]
    idx = json.loads((pool / "index.json").read_text())
    idx["items"][0][2] = idx["shards"][0]["frames"]  # starts where the shard ends
    idx["digest"] = index_digest(idx)
    (pool / "index.json").write_text(json.dumps(idx))
    with pytest.raises(DamagedPool, match="outside the shards"):
        CachedPool(pool)
