"""MS-HuBERT (harness/pretrain/objectives/mshubert.py): Swap, hierarchical label sets, dropped
sets, learning, the whole pipeline and its recipes."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.pretrain import checkpoint, cluster, labels as lab, loop
from harness.pretrain.model import compute_mask
from harness.pretrain.objectives.mshubert import MSHubertOptions, MultiClusterSwapModel, exchange_masked
from harness.pretrain.recipe import TrainConfig
from harness.pretrain.recipe_load import load_recipe, recipe_from_dict
from harness.pretrain.toy import make_toy_corpus, phone_labels
from upstreams.base import load_exported
from upstreams.hubert import HubertConfig, HubertEncoder

MICRO = replace(HubertConfig.tiny(), conv_channels=(32,) * 7, encoder_dim=64, encoder_layers=2, encoder_heads=4,
                encoder_ffn_dim=128, final_dim=32, dropout=0.0, attention_dropout=0.0, dropout_input=0.0,
                layerdrop=0.0, feature_grad_mult=1.0)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_corpus(tmp_path_factory.mktemp("toy"), n_train=16, n_dev=4, seed=0)


def _model(streams, layers, config=MICRO, **kw) -> MultiClusterSwapModel:
    return MultiClusterSwapModel(HubertEncoder(config), streams, layers, **kw)


def _batch(B=2, seconds=1.0, k=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    wav = 0.1 * torch.randn(B, int(seconds * 16000), generator=g)
    T = int(MICRO.num_frames(wav.shape[1]))
    y0 = torch.randint(0, k, (B, T), generator=g)
    return wav, {"a": y0, "b": y0 // 2, "c": y0 // 4}, compute_mask(B, T, generator=g)


# ----------------------------------------------------------------------------- swap


def test_exchange_swaps_masked_frames_and_leaves_the_others():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(6, 20, 8, generator=g)
    mask = compute_mask(3, 20, mask_length=4, generator=g)
    out = exchange_masked(h, mask)
    a, b, oa, ob = h[:3], h[3:], out[:3], out[3:]
    assert bool(mask.any()) and bool((~mask).any())
    assert torch.equal(oa[mask], b[mask]) and torch.equal(ob[mask], a[mask])
    assert torch.equal(oa[~mask], a[~mask]) and torch.equal(ob[~mask], b[~mask])
    assert torch.equal(exchange_masked(out, mask), h)  # an exchange undoes itself


def test_layer_hook_runs_after_every_layer_and_the_plain_path_is_unchanged():
    torch.manual_seed(0)
    enc = HubertEncoder(replace(MICRO, encoder_layers=3)).eval()
    wav = 0.1 * torch.randn(2, 12000)
    lens = torch.tensor([12000, 9000])
    mask = compute_mask(2, int(MICRO.num_frames(12000)), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = enc(wav, lens, mask=mask).hidden_states
        x, _, _, pad = enc.front_end(wav, lens)
        seen = []
        got = enc.transformer_states(enc.apply_mask(x, mask), pad, None, lambda i, h: (seen.append(i), h)[1])
    assert seen == [1, 2, 3]
    for r, s in zip(ref, got):
        assert torch.equal(r, s)


def test_swapped_states_read_the_masked_stream():
    """At masked frames the loss reads the chain that started from the mask embedding: in the
    masked view's row after an even number of exchanges, in the other row after an odd one."""
    torch.manual_seed(0)
    cfg = replace(MICRO, encoder_layers=3)
    model = _model([("a", 12)], [3], cfg).eval()
    wav, _, mask = _batch()
    enc = model.encoder
    with torch.no_grad():
        x, _, _, pad = enc.front_end(wav)
        two = enc.transformer_states(torch.cat([enc.apply_mask(x, mask), x]), torch.cat([pad, pad]), None,
                                     lambda i, h: exchange_masked(h, mask))
        stream, _, _ = model.swapped_states(wav, None, mask)
        model.loss_view = "masked_row"
        row, _, _ = model.swapped_states(wav, None, mask)
    B = wav.shape[0]
    for layer in range(4):
        assert torch.equal(row[layer], two[layer][:B])
        assert torch.equal(stream[layer][~mask], two[layer][:B][~mask])
        other = layer % 2 == 1
        assert torch.equal(stream[layer][mask], two[layer][B:][mask] if other else two[layer][:B][mask])
    assert not torch.equal(stream[1][mask], row[1][mask])


# ----------------------------------------------------------------------------- hierarchy


def test_hierarchical_levels_follow_their_parents(tmp_path):
    """Level 1 is k-means on level 0's centroids; a frame's level-1 label is the parent of its
    level-0 label, and each level-1 centroid is the mean of the level-0 centroids it owns."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.3, (400, 4)) for c in rng.normal(0, 4, (12, 4))]).astype(np.float32)
    fine = cluster.fit_kmeans(x, 24, niter=30, seed=0)
    coarse = cluster.fit_kmeans(fine.centroids, 6, niter=50, seed=0)
    parents = cluster.nearest(fine.centroids, coarse.centroids)[0]
    for c in range(6):
        own = fine.centroids[parents == c]
        assert len(own) > 0
        np.testing.assert_allclose(own.mean(0), coarse.centroids[c], atol=1e-4)
    y = cluster.nearest(x, fine.centroids)[0]
    utts = {"u1": y[:700], "u2": y[700:1900], "u3": y[1900:]}
    lab.write_labels(tmp_path / "fine", utts, 24, rank=1, world=2)
    lab.derive_labels(tmp_path / "fine", parents, tmp_path / "coarse", 6, rank=1, world=2)
    store = lab.LabelStore(tmp_path / "coarse")
    assert store.k == 6 and store.ids == ["u1", "u2", "u3"]
    for uid, v in utts.items():
        np.testing.assert_array_equal(store.get(uid), parents[v])
    with pytest.raises(Exception, match="parent map"):
        lab.derive_labels(tmp_path / "fine", parents[:5], tmp_path / "bad", 6, rank=1, world=2)


# ----------------------------------------------------------------------------- dropped sets


def test_dropped_sets_change_only_which_terms_enter():
    torch.manual_seed(0)
    model = _model([("a", 12), ("b", 6), ("c", 3)], [1, 2, 2], drop_sets=2, seed=5)
    wav, y, mask = _batch()
    full = model(wav, y, mask)
    assert set(full["terms"]) == {"a", "b", "c"}
    seen = set()
    for step in range(12):
        drop = model.dropped(step)
        assert len(drop) == 2 and drop == model.dropped(step)  # seeded by (seed, step)
        seen.add(tuple(drop))
        model.zero_grad(set_to_none=True)
        out = model(wav, y, mask, step=step)
        kept = {"a", "b", "c"} - set(drop)
        assert set(out["terms"]) == kept
        for n in kept:
            assert torch.equal(out["terms"][n], full["terms"][n])
        for key in ("n_masked", "correct_masked", "n_unmasked", "correct_unmasked", "feature_pen"):
            assert torch.equal(out[key], full[key])
        pen = 10.0 * out["feature_pen"] * out["n_masked"]
        assert float(out["loss"].detach()) == pytest.approx(float(sum(out["terms"].values()) + pen), rel=1e-6)
        out["loss"].backward()
        for n in ("a", "b", "c"):
            assert (model.final_proj[n].weight.grad is None) == (n in drop)
    assert len(seen) == 3  # every pair of sets gets dropped at some step
    other = _model([("a", 12), ("b", 6), ("c", 3)], [1, 2, 2], drop_sets=2, seed=6)
    assert [other.dropped(s) for s in range(12)] != [model.dropped(s) for s in range(12)]  # the seed matters
    assert model.dropped(None) == []  # evaluation drops nothing


# ----------------------------------------------------------------------------- learning


def test_overfit_one_batch_masked_accuracy(toy):
    """As test_pretrain's overfit test, with Swap, two hierarchical label sets (the finest on
    layer 2, the coarse one on layer 1) and one set dropped per step: > 50% masked accuracy on
    the finest set."""
    torch.manual_seed(0)
    labels, inv = phone_labels(toy)
    utts = toy.select(split="train")[:4]
    crop = min(int(round(u.duration * 16000)) for u in utts)
    from harness.audio import load_audio

    wavs = torch.stack([load_audio(u.path)[:crop] for u in utts])
    T = lab.num_frames(MICRO, crop)
    fine = torch.stack([torch.from_numpy(labels[u.id][:T]) for u in utts])
    parents = torch.arange(len(inv)) // 2
    y = {"fine": fine, "coarse": parents[fine]}
    model = _model([("fine", len(inv)), ("coarse", int(parents.max()) + 1)], [2, 1], drop_sets=1, seed=0)
    opt, sched = loop.build_optimizer(model, TrainConfig(steps=300, lr=2e-3, warmup_frac=0.05))
    g = torch.Generator().manual_seed(0)
    accs, first_ce = [], None
    for step in range(300):
        mask = compute_mask(len(utts), T, generator=g)
        out = model(wavs, y, mask, step=step)
        (out["loss"] / out["n_masked"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        if first_ce is None and "fine" in out["terms"]:
            first_ce = float(out["terms"]["fine"] / out["n_masked"])
        accs.append(float(out["correct_masked"] / out["n_masked"]))
        if step >= 20 and np.mean(accs[-10:]) > 0.6:
            break
    assert first_ce == pytest.approx(np.log(len(inv)), abs=0.5)  # starts near ln K
    assert np.mean(accs[-10:]) > 0.5, f"masked accuracy {np.mean(accs[-10:]):.3f} after {step + 1} steps"


# ----------------------------------------------------------------------------- pipeline + recipes


def test_pretrain_mshubert_exports_a_plain_hubert(toy, tmp_path):
    from harness.pretrain.run import pretrain

    recipe = tmp_path / "ms.yaml"
    m = {k: (list(v) if isinstance(v, tuple) else v) for k, v in MICRO.to_dict().items()}
    recipe.write_text(json.dumps({  # JSON is YAML
        "name": "ms", "data": {"min_seconds": 1.0}, "model": {"preset": "tiny", **m},
        "objective": {"name": "mshubert", "levels": [12, 6, 3], "drop_sets": 1},
        "cluster": {"k": 12, "sample_fraction": 1.0, "niter": 20},
        "train": {"steps": 6, "lr": 2e-3, "batch_samples": 64000, "checkpoint_every": 3, "log_every": 3},
        "iterations": [{"features": {"source": "mfcc"}}]}))
    lines = []
    up = pretrain(recipe, str(toy.root), tmp_path / "run", log=lines.append)
    exported = load_exported(up)
    assert exported.spec.family == "hubert" and exported.spec.name == "ms-it1"
    root = tmp_path / "run" / "iter1"
    parents = {k: np.load(root / "clusters" / f"km{k}" / "parents.npy") for k in (6, 3)}
    assert len(parents[6]) == 12 and len(parents[3]) == 6
    for split in ("train", "dev"):
        s12, s6, s3 = (lab.LabelStore(root / "labels" / f"km{k}" / split) for k in (12, 6, 3))
        assert (s12.k, s6.k, s3.k) == (12, 6, 3) and s12.ids == s6.ids == s3.ids
        for uid in s12.ids:
            np.testing.assert_array_equal(s6.get(uid), parents[6][s12.get(uid)])
            np.testing.assert_array_equal(s3.get(uid), parents[3][s6.get(uid)])
    sd = checkpoint.final_model_state(root / "train")
    assert {"final_proj.km12.weight", "final_proj.km6.weight", "final_proj.km3.weight"} <= set(sd)
    s = json.loads((root / "summary.json").read_text())
    assert s["objective"] == "mshubert" and s["k"] == 12 and 0 <= s["masked_acc"]["dev"] <= 1
    wav = 0.1 * torch.randn(1, 16000)
    with torch.no_grad():
        ref = HubertEncoder(MICRO)
        ref.load_state_dict({k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")})
        for a, b in zip(ref.eval()(wav).hidden_states, exported(wav, torch.tensor([16000])).layers):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_recipes_and_options():
    tiny, noswap, single = (load_recipe(n) for n in ("mshubert_tiny", "mshubert_tiny_noswap", "mshubert_tiny_single"))
    hub = load_recipe("hubert_tiny")
    for r in (tiny, noswap, single):
        it1, it2 = r.iterations
        assert it1 == hub.iterations[0] and it2.objective == "mshubert"
        assert (it2.train, it2.model, it2.cluster, it2.features) == (hub.iterations[1].train, hub.iterations[1].model,
                                                                     hub.iterations[1].cluster, hub.iterations[1].features)
    o, on, os_ = (r.iterations[1].objective_options for r in (tiny, noswap, single))
    assert o.levels == (100, 50, 25, 12) and o.layers(4) == [4, 3, 2, 1] and o.swap and o.drop_sets == 1
    assert on == replace(o, swap=False)
    assert os_ == replace(o, levels=(100,), head_layers=(4,), drop_sets=0)
    base = load_recipe("mshubert_base").iterations[1]
    assert base.objective_options.levels == (1000, 500, 250, 125, 50, 25) and base.objective_options.drop_sets == 2
    assert base.cluster.k == 1000 and base.features.layer == 6 and base.model.encoder_layers == 12
    assert [s.parent for s in base.label_streams()] == ["", "km1000", "km500", "km250", "km125", "km50"]
    # the paper's 3-set example (layers 8, 10, 12 of 12), finest on the last (Section 2.2.2's footnote)
    assert MSHubertOptions(levels=(100, 50, 25)).layers(12) == [12, 10, 8]
    assert MSHubertOptions(levels=(100, 50, 25), finest_on="first").layers(12) == [8, 10, 12]
    assert base.objective_options.layers(12) == [12, 10, 8, 6, 4, 2]
    assert MSHubertOptions().layers(12) == [12, 10, 8, 6, 4, 2]  # the defaults derive the Base layout
    ms = {"model": {"preset": "tiny"}, "cluster": {"k": 100}}
    with pytest.raises(ConfigError, match="levels.*cluster.k"):
        recipe_from_dict({**ms, "objective": {"name": "mshubert", "levels": [50, 25], "drop_sets": 1}})
    with pytest.raises(ConfigError, match="drop_sets"):
        recipe_from_dict({**ms, "objective": {"name": "mshubert", "levels": [100, 50], "drop_sets": 2}})
    with pytest.raises(ConfigError, match="head_layers.*1..4"):
        recipe_from_dict({**ms, "objective": {"name": "mshubert", "levels": [100, 50], "head_layers": [4, 5],
                                                      "drop_sets": 0}})
    with pytest.raises(ConfigError, match="strictly decreasing"):
        recipe_from_dict({**ms, "objective": {"name": "mshubert", "levels": [100, 100], "drop_sets": 0}})
    with pytest.raises(ConfigError, match="loss_vieww"):
        recipe_from_dict({**ms, "objective": {"name": "mshubert", "loss_vieww": "x"}})
    with pytest.raises(ConfigError, match="mshubert needs cluster.method kmeans, got 'ivf'"):
        recipe_from_dict({"model": {"preset": "tiny"}, "cluster": {"k": 100, "method": "ivf"},
                          "objective": {"name": "mshubert", "levels": [100, 50], "drop_sets": 0}})
