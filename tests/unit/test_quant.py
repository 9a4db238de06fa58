"""The int8 feature cache (issue 30 item 3): the quantisation error bound, half the bytes, and
cached int8 batches equal to live ones (the live path rounds the same way)."""

import json

import numpy as np
import pytest
import torch

from harness.batches import HostBatch, device_batch
from harness.data.corpus import load_manifest_dir
from harness.evaluate import build_upstream
from harness.features import FeatureSource, build_pool
from harness.quant import QuantizedPool, fake_quantize, quantize
from tests.conftest import make_tone_corpus


def _heavy(t=200, l1=4, d=32, seed=0):
    """Layers with a few channels 100x larger than the rest (as transformer hidden states have)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(t, l1, d, generator=g)
    x[:, :, :3] *= 100.0
    x[:, 1, 5] = 0.0  # an all-zero channel
    return x


def test_error_is_at_most_half_a_step_of_each_channel():
    x = _heavy()
    q, s = quantize(x)
    assert q.dtype == torch.int8 and s.dtype == torch.float32 and s.shape == x.shape[1:]
    assert int(q.abs().max()) == 127  # the largest value of every non-zero channel uses the full range
    err = (q.float() * s - x).abs()
    bound = x.abs().amax(0) / 254  # scale / 2
    assert bool((err <= bound * (1 + 1e-5) + 1e-12).all()), float((err - bound).max())
    assert float(err.max()) > 0.3 * float(bound.max())  # the bound is not loose by orders of magnitude
    assert bool((q[:, 1, 5] == 0).all()) and float(s[1, 5]) == 1.0  # the zero channel stays exactly 0
    # against float16 (the default cache): int8 errs more, but only within its bound
    rel = float(((q.float() * s - x).norm() / x.norm()))
    assert rel < 1 / 127


def test_fake_quantize_is_quantize_on_each_item_and_keeps_padding_zero():
    items = [_heavy(t, seed=t) for t in (50, 80, 20)]
    lengths = torch.tensor([50, 80, 20])
    layers = torch.zeros(4, 3, 80, 32)
    for k, x in enumerate(items):
        layers[:, k, : x.shape[0]] = x.permute(1, 0, 2)
    layers[:, 2, 20:] = 1e6  # garbage beyond an item's end must not set its scale
    out = fake_quantize(layers, lengths)
    for k, x in enumerate(items):
        q, s = quantize(x)
        assert torch.equal(out[:, k, : x.shape[0]], (q.float() * s).permute(1, 0, 2))
        assert not out[:, k, x.shape[0]:].any()


def test_device_batch_decodes_int8_rows_with_their_items_scales():
    items = [_heavy(t, seed=t) for t in (7, 3, 5)]
    qs = [quantize(x) for x in items]
    hb = HostBatch(torch.cat([q for q, _ in qs]), [7, 3, 5], torch.stack([s for _, s in qs]))
    layers, lengths = device_batch(hb, "cpu")
    assert lengths.tolist() == [7, 3, 5] and layers.shape == (4, 3, 7, 32)
    for k, (q, s) in enumerate(qs):
        n = q.shape[0]
        assert torch.equal(layers[:, k, :n], (q.float() * s).permute(1, 0, 2))
        assert not layers[:, k, n:].any()


@pytest.fixture(scope="module")
def utts(tmp_path_factory):
    root = make_tone_corpus(tmp_path_factory.mktemp("tones") / "tones", n_per_class=4)
    return load_manifest_dir(root).utterances


def _bytes(folder, names):
    return sum((folder / n).stat().st_size for n in names)


@pytest.mark.parametrize("name", ["fbank_no_cmvn", "random:hubert_tiny"])
def test_int8_pool_is_half_the_bytes_and_equals_live(utts, tmp_path, name):
    up = build_upstream(name)
    p16 = build_pool(up, utts, tmp_path / "p16", log=lambda *_: None)
    p8 = build_pool(up, utts, tmp_path / "p8", log=lambda *_: None, dtype="int8")
    assert isinstance(p8, QuantizedPool) and not isinstance(p16, QuantizedPool)
    i16, i8 = (json.loads((tmp_path / f / "index.json").read_text()) for f in ("p16", "p8"))
    shards16 = _bytes(tmp_path / "p16", [e["name"] for e in i16["shards"]])
    shards8 = _bytes(tmp_path / "p8", [e["name"] for e in i8["shards"]])
    header = 128 * len(i8["shards"])  # .npy headers
    assert shards8 <= shards16 / 2 + header
    scales = (tmp_path / "p8" / "scales.npy").stat().st_size
    assert scales <= len(utts) * up.spec.num_layers * up.spec.hidden_size * 4 + 128
    # reopening checks the scales too (and finds them sound)
    again = QuantizedPool(tmp_path / "p8")
    uid = again._row and next(iter(again._row))
    assert np.array_equal(again.scale(uid), p8.scale(uid))

    cached = FeatureSource(utts, pools=[p8], cache_dtype="int8")
    live = FeatureSource(utts, upstream=up, cache_dtype="int8")
    ref16 = FeatureSource(utts, pools=[p16])
    ids = cached.ids[:4]
    a, la = cached.get_batch(ids)
    b, lb = live.get_batch(ids)
    c, _ = ref16.get_batch(ids)
    assert la.tolist() == lb.tolist()
    step = (c.abs().amax(dim=2, keepdim=True) / 127)  # one quantisation step per (layer, item, channel)
    if up.spec.num_layers == 1:  # fbank: deterministic, the same numbers exactly
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    else:  # batched HuBERT differs by ~1e-5 from one item alone: a value may round one step apart
        assert bool(((a - b).abs() <= step * 1.01 + 1e-4).all())
    # int8 against float16: within half a step plus float16's own rounding
    assert bool(((a - c).abs() <= step * 0.51 + c.abs() * 2**-10 + 1e-6).all())

    # the stamp and `harness data verify` cover the scales file like a shard
    from harness.features import DamagedPool
    from harness.poolstamp import pool_class, stamp_mismatch, verify_cache, write_stamp

    write_stamp(tmp_path / "p8")
    assert stamp_mismatch(tmp_path / "p8") is None

    def check(f, full):
        return pool_class(f)(f, verify=full)

    assert verify_cache(tmp_path, check, DamagedPool, log=lambda *_: None) == (2, 0)
    sc = tmp_path / "p8" / "scales.npy"
    data = bytearray(sc.read_bytes())
    data[-4:] = b"\x00\x00\x80\x7f"  # the last scale becomes +inf
    sc.write_bytes(bytes(data))
    assert stamp_mismatch(tmp_path / "p8") == "scales.npy changed since it was verified"
    assert verify_cache(tmp_path, check, DamagedPool, log=lambda *_: None) == (1, 1)


def test_budget_line_says_what_to_pass():
    from harness.batches import budget_line

    line = budget_line(400 * 2**30, 201 * 2**30, 20, "float16")
    assert "\n" not in line and "400.0 GiB in float16 > budget 20 GiB" in line
    assert "--cache-budget-gb 400, or --cache-dtype int8 --cache-budget-gb 201" in line
    assert "pass --cache-budget-gb 201" in budget_line(400 * 2**30, 201 * 2**30, 20, "int8")


def test_an_int8_probe_learns_and_is_a_different_run(tmp_path):
    from harness.evaluate import evaluate
    from harness.request import EvalRequest

    corpus = make_tone_corpus(tmp_path / "tones")
    over = {"steps": 60, "eval_every": 20, "batch_seconds": 8.0}
    r16 = evaluate(EvalRequest("fbank_no_cmvn", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[3e-3],
                               overrides=over), log=lambda *_: None)[0]
    r8 = evaluate(EvalRequest("fbank_no_cmvn", "lid", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[3e-3],
                              overrides={**over, "cache_dtype": "int8"}), log=lambda *_: None)[0]
    assert r8["metrics"]["test"]["acc"] > 80.0  # chance is 33 %
    assert r8["config_hash"] != r16["config_hash"] and r8["run_id"] != r16["run_id"]
    assert len(list((tmp_path / "cache" / "features").rglob("scales.npy"))) >= 1
