"""mHuBERT-147 (docs/pretrain.md section 4): faiss IVF labels, two-level language/dataset up-sampling, random-crop
batching, the synth corpus's dataset level and the recipes."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from harness.errors import ConfigError, HarnessError
from harness.pretrain import batches, cluster, dump, labels as lab, sampling
from harness.pretrain.recipe import ClusterConfig, TrainConfig, recipe_to_dict
from harness.pretrain.recipe_load import load_recipe
from harness.pretrain.toy import make_toy_corpus
from upstreams.hubert import HubertConfig

# A cheaper index of the same shape as the published one (OPQ -> IVF with an HNSW quantizer ->
# fast-scan PQ) for the tests that train several indices.
SMALL_FACTORY = "OPQ4_16,IVF{K}_HNSW32,PQ4x4fsr"
FRAMES = HubertConfig.tiny()  # 20 ms frames, 400-sample receptive field


def _blobs(n: int, d: int = 39, centres: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)) * 3
    return (c[rng.integers(0, centres, n)] + rng.standard_normal((n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    # three languages, imbalanced 3:2:1
    return make_toy_corpus(tmp_path_factory.mktemp("toy"), n_train=18, n_dev=3, seed=0,
                           languages=("aa", "aa", "aa", "bb", "bb", "cc"))


# ----------------------------------------------------------------------------- faiss IVF labels


def _coarse_lists(cb: cluster.IVFIndex, x: np.ndarray) -> np.ndarray:
    """The inverted list index.add files each row of x under (on a copy of the index)."""
    import faiss

    copy = faiss.deserialize_index(faiss.serialize_index(cb.index))
    copy.add(x)
    ivf = faiss.extract_index_ivf(copy)
    out = np.full(len(x), -1)
    for lst in range(ivf.nlist):
        n = ivf.invlists.list_size(lst)
        if n:
            out[faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), n).copy()] = lst
    return out


def test_published_ivf_index_on_39_dim_mfcc_labels_are_its_coarse_assignment(tmp_path):
    x = _blobs(400)
    res = cluster.fit_ivf(x, 16, seed=0)  # OPQ16_64 pads the 39-d input to 64 dims
    cb = res.codebook
    assert res.factory == "OPQ16_64,IVF16_HNSW32,PQ16x4fsr" and cb.k == 16 and res.n_points == 400
    assert cb.transform(x[:3]).shape == (3, 64)
    labels = cb.assign(x)
    assert labels.dtype == np.int64 and 0 <= labels.min() and labels.max() < 16
    np.testing.assert_array_equal(labels, _coarse_lists(cb, x))  # what the index itself does
    assert len(np.unique(labels)) >= 12
    assert res.notes and "OPQ" in res.notes[0]  # 400 frames < the 9,984 faiss asks for
    cb.save(tmp_path)
    back = cluster.load_codebook(tmp_path)
    assert isinstance(back, cluster.IVFIndex)
    np.testing.assert_array_equal(back.assign(x), labels)


def test_ivf_is_deterministic_for_a_seed_and_the_seed_reaches_faiss():
    import faiss

    x = _blobs(800)
    a, b, c = (cluster.fit_ivf(x, 16, SMALL_FACTORY, seed=s) for s in (0, 0, 1))
    blob = [faiss.serialize_index(r.codebook.index).tobytes() for r in (a, b, c)]
    assert blob[0] == blob[1] and blob[0] != blob[2]
    np.testing.assert_array_equal(a.codebook.assign(x), b.codebook.assign(x))
    # labels agree with an exact search over the IVF centroids in the OPQ space (HNSW is
    # approximate in general; with 16 centroids it finds the nearest)
    xt = a.codebook.transform(x)
    cents = a.codebook.ivf.quantizer.reconstruct_n(0, 16)
    exact, _ = cluster.nearest(xt, cents)
    assert (exact == a.codebook.assign(x)).mean() > 0.99
    assert a.inertia == pytest.approx(float(a.codebook.search(x)[1].sum()), rel=1e-5)


def test_ivf_config_and_factory_errors():
    assert ClusterConfig().method == "kmeans"
    with pytest.raises(ConfigError, match="method"):
        ClusterConfig(method="hnsw")
    with pytest.raises(ConfigError, match="ivf_factory"):
        ClusterConfig(method="ivf", ivf_factory="OPQ16_64,Flat")
    with pytest.raises(HarnessError, match="IVF lists"):
        cluster.fit_ivf(_blobs(300), 16, "IVF8,Flat")
    with pytest.raises(HarnessError, match="OPQ5"):
        cluster.fit_ivf(_blobs(300), 16, "OPQ5_64,IVF{K},Flat")


def test_label_stage_assigns_through_the_saved_codebook(toy, tmp_path):
    utts = toy.select(split="train")
    dump.dump_mfcc(utts, tmp_path / "feats")
    reader = dump.FeatureReader(tmp_path / "feats")
    ns = {u.id: int(round(u.duration * 16000)) for u in utts}
    x = np.concatenate([reader.get(i) for i in range(len(reader))])

    # k-means: a centroid array and the saved Centroids codebook give byte-identical shards
    km = cluster.fit_kmeans(x, 12, seed=0)
    (tmp_path / "km").mkdir()
    cluster.Centroids(km.centroids).save(tmp_path / "km")
    assert (tmp_path / "km" / "centroids.npy").is_file()
    cb = cluster.load_codebook(tmp_path / "km")
    assert isinstance(cb, cluster.Centroids)
    lab.assign_labels(reader, km.centroids, tmp_path / "l_arr", ns, FRAMES)
    lab.assign_labels(reader, cb, tmp_path / "l_cb", ns, FRAMES)
    for suffix in (".npy", ".json"):
        assert ((tmp_path / "l_arr" / f"shard0-of1{suffix}").read_bytes()
                == (tmp_path / "l_cb" / f"shard0-of1{suffix}").read_bytes())
    store = lab.LabelStore(tmp_path / "l_arr")
    uid = reader.ids[0]
    np.testing.assert_array_equal(store.get(uid), cluster.nearest(reader.get(0), km.centroids)[0][::2])

    # IVF: the label store holds the index's labels at the model's 50 Hz
    ivf = cluster.fit_ivf(x[::3], 12, SMALL_FACTORY, seed=0)  # a third of the frames: OPQ fitting is slow
    ivf.codebook.save(tmp_path)
    lab.assign_labels(reader, cluster.load_codebook(tmp_path), tmp_path / "l_ivf", ns, FRAMES)
    store = lab.LabelStore(tmp_path / "l_ivf")
    assert store.k == 12
    for i in range(len(reader)):
        np.testing.assert_array_equal(store.get(reader.ids[i]), ivf.codebook.assign(reader.get(i))[::2])


# ----------------------------------------------------------------------------- up-sampling


def _groups():
    """1,000 utterances: language a 600 (datasets x 450, y 150), b 300, c 90 (x 60, z 30), d 10."""
    spec = [("a", "x", 450), ("a", "y", 150), ("b", "x", 300), ("c", "x", 60), ("c", "z", 30), ("d", "x", 10)]
    langs = [lg for lg, _, n in spec for _ in range(n)]
    sets = [ds for _, ds, n in spec for _ in range(n)]
    return langs, sets


def test_upsampled_proportions_follow_the_two_level_formula():
    langs, sets = _groups()
    N, alpha, beta, epochs = len(langs), 0.7, 0.9, 300
    n_l = Counter(langs)
    p_l = {lg: (n / N) ** alpha for lg, n in n_l.items()}
    p_l = {lg: v / sum(p_l.values()) for lg, v in p_l.items()}
    n_ld = Counter(zip(langs, sets))
    p_d = {}
    for (lg, ds), n in n_ld.items():
        p_d[lg, ds] = (n / n_l[lg]) ** beta / sum((m / n_l[lg]) ** beta for (l2, _), m in n_ld.items() if l2 == lg)
    seen_l, seen_ld = Counter(), Counter()
    for e in range(epochs):
        idx = sampling.upsample_indices(langs, sets, alpha, beta, np.random.default_rng([0, e]))
        assert len(idx) == N
        per_utt = np.bincount(idx, minlength=N)
        # over-sampled "d" (10 utterances): whole copies + a remainder -> counts differ by at most 1
        d = per_utt[N - 10:]
        assert d.max() - d.min() <= 1
        # down-sampled "a/x": a draw without replacement
        assert per_utt[:450].max() <= 1
        seen_l.update(langs[i] for i in idx)
        seen_ld.update((langs[i], sets[i]) for i in idx)
    total = N * epochs
    # 300,000 draws: a share's standard error is below 0.001; tolerance 0.005 absolute
    for lg, p in p_l.items():
        assert seen_l[lg] / total == pytest.approx(p, abs=0.005), lg
    # within a language: tolerance 0.015 absolute (c, the smallest with two datasets, has ~41,000 draws)
    for (lg, ds), p in p_d.items():
        assert seen_ld[lg, ds] / seen_l[lg] == pytest.approx(p, abs=0.015), (lg, ds)
    # the smoothing did what it is for: d (1% of the data) is up-sampled ~3x, a is down-sampled
    assert seen_l["d"] / total > 0.025 and seen_l["a"] / total < 0.53


def _items(langs, sets):
    return [batches.Item(f"u{i:04d}", "x.wav", 0.0, 32000 + 160 * (i % 50), lg, ds)
            for i, (lg, ds) in enumerate(zip(langs, sets))]


def test_alpha_beta_one_is_the_plain_epoch_and_the_plan_is_seeded_per_epoch():
    langs, sets = _groups()
    items = _items(langs, sets)
    cfg = TrainConfig(steps=10, batch_samples=8 * 16000, seed=5)
    for e in range(3):  # exactly the plain plan's draw: one permutation of the epoch's generator
        np.testing.assert_array_equal(batches.epoch_order(items, cfg, np.random.default_rng([5, e])),
                                      np.random.default_rng([5, e]).permutation(len(items)))
    plain = batches.StepBatches(items, {}, cfg, FRAMES)
    assert sorted(i for b in plain.plan(0) for i in b) == list(range(len(items)))  # each utterance once

    up = replace(cfg, upsample_alpha=0.7, upsample_beta=0.9)
    order = batches.epoch_order(items, up, np.random.default_rng([5, 0]))
    assert len(order) == len(items) and len(set(order.tolist())) < len(items)  # repeats: "d" is up-sampled
    # every rank, and a resumed run, plan the same epochs
    ranks = [batches.StepBatches(items, {}, up, FRAMES, rank=r, world=2) for r in range(2)]
    again = batches.StepBatches(items, {}, replace(up, grad_accum=2), FRAMES)  # one process, same global batch
    for e in (0, 1):
        assert ranks[0].plan(e) == ranks[1].plan(e)
        assert again.plan(e) == ranks[0].plan(e)
    assert ranks[0].plan(0) != ranks[0].plan(1)
    with pytest.raises(HarnessError, match="no language"):
        batches.StepBatches([replace(items[0], language="")] + items[1:], {}, up, FRAMES)
    with pytest.raises(ConfigError, match="upsample_alpha"):
        TrainConfig(upsample_alpha=-0.5)


# ----------------------------------------------------------------------------- random-crop batching


def test_random_crop_to_the_shortest_item_with_aligned_labels(toy, tmp_path):
    from harness.audio import load_audio

    utts = toy.select(split="train")
    # label of frame t = t: a crop's first label is its start frame
    frames = {u.id: np.arange(lab.num_frames(FRAMES, int(round(u.duration * 16000)))) for u in utts}
    lab.write_labels(tmp_path / "labels", frames, 400)
    items = [batches.Item.from_utterance(u) for u in utts]
    cfg = TrainConfig(steps=8, batch_samples=6 * 16000, seed=2)
    sb = batches.StepBatches(items, {"main": tmp_path / "labels"}, cfg, FRAMES)
    audio = {u.id: load_audio(u.path) for u in utts}
    varied = rows = 0
    for step in range(cfg.steps):
        epoch, b = sb.locate(step)
        batch = [items[i] for i in sb.plan(epoch)[b]]
        out = sb[step]
        crop = int(out["crop"])
        assert crop == min(it.num_samples for it in batch)  # the shortest item, uncut
        assert out["wavs"].shape[-1] == crop
        T = lab.num_frames(FRAMES, crop)
        starts = []
        for row, it in enumerate(batch):
            labels = out["labels"]["main"][0, row]
            f0 = int(labels[0])
            np.testing.assert_array_equal(labels.numpy(), np.arange(f0, f0 + T))
            x = audio[it.id]
            assert torch.equal(out["wavs"][0, row], x[f0 * FRAMES.stride: f0 * FRAMES.stride + crop])
            starts.append(f0)
            rows += 1
            if it.num_samples == crop:
                assert f0 == 0
        varied += len(set(starts)) > 1
    assert rows >= 2 * cfg.steps
    assert varied >= cfg.steps // 2  # items start at different, random offsets


# ----------------------------------------------------------------------------- synth datasets


def test_synth_speech_has_two_datasets_per_language(tiny_corpus):
    from harness.data.corpora import load_corpus
    from harness.data.corpus import load_manifest_dir
    from harness.data.synth_spec import FAST_WPM, speech_dataset

    raw = load_manifest_dir(tiny_corpus)
    c = load_corpus(str(tiny_corpus))
    assert [u.id for u in c.utterances] == [u.id for u in raw.utterances]
    assert {u.custom["dataset"] for u in raw.utterances} == {"synth"}  # the files are unchanged
    rates = {s: m["rate"] for s, m in c.meta["speakers"].items()}
    for u, r in zip(c.utterances, raw.utterances):
        assert {k: v for k, v in u.custom.items() if k != "dataset"} == {k: v for k, v in r.custom.items() if k != "dataset"}
        if u.subset == "speech":
            assert u.custom["dataset"] == speech_dataset(rates[u.speaker])
            assert u.custom["dataset"] == ("synth-fast" if rates[u.speaker] >= FAST_WPM else "synth-read")
        else:
            assert u.custom["dataset"] == "synth"
    per = Counter((u.language, u.custom["dataset"]) for u in c.select("train", "speech"))
    # both datasets in English; which is bigger depends on tiny's 8 speakers' drawn rates (about 1
    # in 4 speakers is fast in expectation: rates are uniform over 140..210 wpm)
    assert per["en", "synth-read"] > 0 and per["en", "synth-fast"] > 0
    assert {ds for _, ds in per} == {"synth-read", "synth-fast"}


# ----------------------------------------------------------------------------- waveform normalisation


def test_waveform_normalisation_is_layer_norm_of_each_item():
    from upstreams.hubert import HubertEncoder

    cfg = replace(FRAMES, conv_channels=(16,) * 7, encoder_dim=32, encoder_layers=1, encoder_heads=2,
                  encoder_ffn_dim=32, dropout=0.0, attention_dropout=0.0, dropout_input=0.0, layerdrop=0.0)
    torch.manual_seed(0)
    plain = HubertEncoder(cfg).eval()
    normed = HubertEncoder(replace(cfg, normalize=True)).eval()
    normed.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(0)
    a, b = 0.3 * torch.randn(8000, generator=g) + 0.1, 0.05 * torch.randn(5000, generator=g)
    with torch.no_grad():
        ref = plain(torch.nn.functional.layer_norm(a, a.shape)[None]).hidden_states[-1]
        out = normed(a[None]).hidden_states[-1]
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(normed((7 * a - 2)[None]).hidden_states[-1], out, atol=1e-4, rtol=1e-4)  # level-free
        batch = torch.zeros(2, 8000)
        batch[0], batch[1, :5000] = a, b  # padding does not leak into the statistics
        both = normed(batch, torch.tensor([8000, 5000]))
        n_b = int(cfg.num_frames(5000))
        torch.testing.assert_close(both.hidden_states[-1][1, :n_b], normed(b[None]).hidden_states[-1][0], atol=1e-5, rtol=1e-5)
    assert not HubertConfig().normalize  # off unless a recipe asks


# ----------------------------------------------------------------------------- recipes


def test_mhubert_recipes():
    tiny, ablation, base = (load_recipe(n) for n in ("mhubert147_tiny", "mhubert147_tiny_noupsample",
                                                     "mhubert147_base"))
    assert [it.features.source for it in tiny.iterations] == ["mfcc", "layer", "layer"]
    for it in tiny.iterations + base.iterations:
        assert it.cluster.method == "ivf" and it.cluster.ivf_factory == cluster.IVF_FACTORY
        assert not it.continue_previous
    for it in tiny.iterations + base.iterations:
        assert (it.train.upsample_alpha, it.train.upsample_beta) == (0.7, 0.9)
    assert [it.cluster.k for it in base.iterations] == [1000, 1000, 1000]
    assert [it.features.layer for it in base.iterations[1:]] == [6, 9]
    assert base.iterations[0].model.encoder_layers == 12 and base.iterations[0].train.lr == 5e-4
    assert all(it.model.normalize for it in tiny.iterations + base.iterations)
    # the ablation: the same recipe, updates included, with plain epochs
    a, b = recipe_to_dict(tiny), recipe_to_dict(ablation)
    for it in a["iterations"] + b["iterations"]:
        it["train"].pop("upsample_alpha"), it["train"].pop("upsample_beta")
    assert {**a, "name": ""} == {**b, "name": ""}
    assert all((it.train.upsample_alpha, it.train.upsample_beta) == (1.0, 1.0) for it in ablation.iterations)
