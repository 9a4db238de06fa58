"""Tests for harness.pretrain: masking, MFCC dump, labels, clustering, label quality, the model
(overfitting one batch), the loop's batching, export, recipes and a whole tiny pipeline."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from harness.errors import ConfigError, HarnessError
from harness.pretrain import batches, checkpoint, cluster, dump, labels as lab, loop, quality
from harness.pretrain.model import MaskedPredictionModel, compute_mask
from harness.pretrain.recipe import TrainConfig
from harness.pretrain.recipe_load import load_recipe, recipe_from_dict
from harness.pretrain.toy import make_toy_corpus, phone_labels
from upstreams.base import load_exported
from upstreams.hubert import HubertConfig, HubertEncoder

# A very small network: same CNN kernels/strides (20 ms frames) as every HuBERT.
MICRO = replace(HubertConfig.tiny(), conv_channels=(32,) * 7, encoder_dim=64, encoder_layers=2, encoder_heads=4,
                encoder_ffn_dim=128, final_dim=32, dropout=0.0, attention_dropout=0.0, dropout_input=0.0,
                layerdrop=0.0, feature_grad_mult=1.0)


def _model(k: int, **kw) -> MaskedPredictionModel:
    """HuBERT's masked-prediction model around MICRO with one label stream of k classes."""
    return MaskedPredictionModel(HubertEncoder(MICRO), [("main", k)], **kw)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_corpus(tmp_path_factory.mktemp("toy"), n_train=16, n_dev=4, seed=0)


# ----------------------------------------------------------------------------- masking


def _runs(row: torch.Tensor):
    out, n = [], 0
    for v in row.tolist() + [False]:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def test_mask_spans_counts_and_fraction():
    g = torch.Generator().manual_seed(0)
    # one row: nothing is cut, spans of 10 (overlapping spans make longer runs, never shorter)
    fr = []
    for _ in range(100):
        m = compute_mask(1, 2000, 0.8, 10, 2, generator=g)
        assert min(_runs(m[0])) >= 10
        fr.append(m.float().mean().item())
    assert 0.55 < np.mean(fr) < 0.59  # published ~57% (distinct starts, overlapping spans)
    # a batch: every row has the same masked count, a little below the single-row fraction
    fr = []
    for _ in range(50):
        m = compute_mask(8, 400, 0.8, 10, 2, generator=g)
        counts = m.sum(1)
        assert bool((counts == counts[0]).all())
        fr.append(m.float().mean().item())
    assert 0.48 < np.mean(fr) < 0.56
    # at least 2 spans even when 0.8 T / 10 rounds to fewer
    m = compute_mask(4, 12, 0.8, 10, 2, generator=g)
    assert bool((m.sum(1) >= 10).all())


def test_mask_is_deterministic_in_the_generator():
    a = compute_mask(3, 100, generator=torch.Generator().manual_seed(5))
    b = compute_mask(3, 100, generator=torch.Generator().manual_seed(5))
    c = compute_mask(3, 100, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ----------------------------------------------------------------------------- features and labels


def _utt(tmp_path, uid, seconds, seed=0):
    from harness.data.corpus import Utterance

    x = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * 16000)).astype(np.float32)
    p = tmp_path / f"{uid}.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    return Utterance(id=uid, path=str(p), duration=len(x) / 16000)


def test_mfcc_dump_shape_rate_and_50hz_labels(tmp_path):
    utts = [_utt(tmp_path, "a", 1.5, 0), _utt(tmp_path, "b", 2.013, 1), _utt(tmp_path, "c", 0.7, 2)]
    for r in range(2):  # two shards, as two ranks would write them
        dump.dump_mfcc(utts, tmp_path / "feats", r, 2)
    dump.mark_complete(tmp_path / "feats", 3)
    reader = dump.FeatureReader(tmp_path / "feats")
    assert reader.dim == 39 and reader.rate == 100.0 and reader.ids == ["a", "b", "c"]
    for u in utts:
        n = int(round(u.duration * 16000))
        f = reader.get(reader.index(u.id))
        assert f.dtype == np.float16 and f.shape == (1 + (n - 400) // 160, 39)
        ref = dump.mfcc_features(torch.from_numpy(sf.read(u.path, dtype="float32")[0])).numpy()
        np.testing.assert_allclose(f.astype(np.float32), ref, rtol=2e-3, atol=2e-2)
    # labels: nearest centroid of every second MFCC frame = exactly the 50 Hz CNN frame count
    cents = cluster.sample_frames(reader, 1.0)[:: 37][:5]
    ns = {u.id: int(round(u.duration * 16000)) for u in utts}
    lab.assign_labels(reader, cents, tmp_path / "labels", ns, MICRO)
    store = lab.LabelStore(tmp_path / "labels")
    for u in utts:
        y = store.get(u.id)
        assert len(y) == lab.num_frames(MICRO, ns[u.id]) == (reader.lengths[reader.index(u.id)] + 1) // 2
        full, _ = cluster.nearest(reader.get(reader.index(u.id)).astype(np.float32), cents)
        np.testing.assert_array_equal(y, full[::2])
    assert dump.mfcc_frames(ns["b"]) == reader.lengths[1]


def test_label_length_mismatch_names_the_utterance(tmp_path):
    utts = [_utt(tmp_path, "short-one", 1.0), _utt(tmp_path, "liar-utt-7", 1.0, 1)]
    dump.dump_mfcc(utts, tmp_path / "feats")
    reader = dump.FeatureReader(tmp_path / "feats")
    cents = cluster.sample_frames(reader, 1.0)[:4]
    ns = {"short-one": 16000, "liar-utt-7": 16000 + 3200}  # manifest claims 0.2 s more audio
    with pytest.raises(HarnessError, match="liar-utt-7"):
        lab.assign_labels(reader, cents, tmp_path / "labels", ns, MICRO)
    # within 0.1 s: accepted, padded with -1 (ignored) or truncated to the audio's frames
    y = lab.fit_to_audio("u", np.arange(45), 16000, MICRO)
    assert len(y) == 49 and list(y[-4:]) == [-1] * 4
    assert len(lab.fit_to_audio("u", np.arange(53), 16000, MICRO)) == 49
    with pytest.raises(HarnessError, match="utt-x"):
        lab.fit_to_audio("utt-x", np.arange(60), 16000, MICRO)


# ----------------------------------------------------------------------------- clustering


def _blobs(n=20000, k=4, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (k, d))
    return (centres[rng.integers(k, size=n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def test_faiss_kmeans_fits_on_all_points():
    """At convergence each centroid is the mean of the points assigned to it. Fitted on all
    points, that holds on the full data; faiss's default (subsample to 256 k points) breaks it."""
    import faiss

    x = _blobs()
    res = cluster.fit_kmeans(x, 4, niter=100, seed=1)
    assert res.n_points == len(x)

    def mean_gap(c):
        a, _ = cluster.nearest(x, c)
        return max(np.abs(x[a == j].mean(0) - c[j]).max() for j in range(len(c)))

    assert mean_gap(res.centroids) < 1e-3
    sub = faiss.Kmeans(x.shape[1], 4, niter=100, seed=1)  # default max_points_per_centroid = 256
    sub.train(x)
    assert mean_gap(sub.centroids) > 1e-2  # the check above would catch the subsampling


def test_faiss_inertia_close_to_sklearn_reference():
    rng = np.random.default_rng(3)
    x = np.concatenate([_blobs(6000, 12, 10, seed=s) for s in range(2)]) + rng.normal(0, 2, (12000, 10)).astype(np.float32)
    ours = cluster.fit_kmeans(x, 20, niter=50, seed=0)
    ref = cluster.fit_sklearn_reference(x, 20, seed=0, n_init=3, max_iter=50)
    assert ours.inertia == pytest.approx(cluster.inertia(x, ours.centroids))
    assert ours.inertia <= 1.03 * ref.inertia


def test_sample_frames_fraction():
    class R:  # a reader stand-in
        lengths = [10] * 50

        def __len__(self):
            return 50

        def get(self, i):
            return np.full((10, 2), i, np.float16)

    x = cluster.sample_frames(R(), 0.2, seed=0)
    assert x.shape == (100, 2) and len(np.unique(x[:, 0])) == 10
    assert cluster.sample_frames(R(), 1.0).shape == (500, 2)
    assert cluster.sample_frames(R(), 1.0, max_frames=55).shape == (50, 2)


# ----------------------------------------------------------------------------- label quality


def test_pnmi_and_purity():
    rng = np.random.default_rng(0)
    phones = [f"p{i}" for i in rng.integers(0, 30, 50000)]
    truth = [int(p[1:]) for p in phones]
    q = quality.label_quality(phones, truth)
    assert q["pnmi"] == pytest.approx(1.0) and q["phone_purity"] == pytest.approx(1.0)
    q = quality.label_quality(phones, rng.integers(0, 50, 50000).tolist())
    assert 0.0 <= q["pnmi"] < 0.02 and q["phone_purity"] < 0.1
    # labels that merge phones pairwise: purity 1/2 per merged pair, PNMI = 1 - ln 2 / ln 4
    q = quality.label_quality(["a", "b", "c", "d"] * 100, [0, 0, 1, 1] * 100)
    assert q["phone_purity"] == pytest.approx(0.5) and q["pnmi"] == pytest.approx(0.5)
    assert q["cluster_purity"] == pytest.approx(1.0)


def test_frame_phones_use_frame_centres():
    ali = [["sil", 0.0, 0.03], ["a", 0.03, 0.1], ["b", 0.1, 0.2]]
    # frame t centre = 0.02 t + 0.0125
    assert quality.frame_phones(ali, 11, MICRO) == ["sil", "a", "a", "a", "a", "b", "b", "b", "b", "b", None]


# ----------------------------------------------------------------------------- model


def test_overfit_one_batch_masked_accuracy(toy):
    """docs/pretrain.md section 7: overfitting one batch reaches > 50% masked accuracy in a few hundred steps."""
    torch.manual_seed(0)
    labels, inv = phone_labels(toy)
    utts = toy.select(split="train")[:4]
    crop = min(int(round(u.duration * 16000)) for u in utts)
    from harness.audio import load_audio

    wavs = torch.stack([load_audio(u.path)[:crop] for u in utts])
    T = lab.num_frames(MICRO, crop)
    y = {"main": torch.stack([torch.from_numpy(labels[u.id][:T]) for u in utts])}
    model = _model(len(inv))
    emb = model.label_embs["main"]
    assert emb.min() >= 0 and emb.max() < 1  # U[0, 1) codewords
    opt, sched = loop.build_optimizer(model, TrainConfig(steps=300, lr=2e-3, warmup_frac=0.05))
    g = torch.Generator().manual_seed(0)
    accs, first_ce = [], None
    for step in range(300):
        mask = compute_mask(len(utts), T, generator=g)
        out = model(wavs, y, mask)
        (out["loss"] / out["n_masked"]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        opt.zero_grad()
        sched.step()
        first_ce = first_ce if first_ce is not None else float(out["ce"] / out["n_masked"])
        accs.append(float(out["correct_masked"] / out["n_masked"]))
        if step >= 20 and np.mean(accs[-10:]) > 0.6:
            break
    assert first_ce == pytest.approx(np.log(len(inv)), abs=0.5)  # starts near ln K
    assert np.mean(accs[-10:]) > 0.5, f"masked accuracy {np.mean(accs[-10:]):.3f} after {step + 1} steps"


def test_loss_counts_masked_frames_only():
    torch.manual_seed(0)
    model = _model(5).eval()
    wav = 0.1 * torch.randn(2, 16000)
    y = torch.randint(0, 5, (2, 49))
    y[0, :5] = -1
    mask = compute_mask(2, 49, generator=torch.Generator().manual_seed(0))
    out = model(wav, {"main": y}, mask)
    assert int(out["n_masked"]) == int((mask & (y >= 0)).sum())
    assert int(out["n_unmasked"]) == int((~mask & (y >= 0)).sum())
    # changing labels of unmasked frames changes nothing in the loss
    y2 = torch.where(mask, y, (y + 1) % 5)
    assert float(model(wav, {"main": y2}, mask)["loss"].detach()) == pytest.approx(float(out["loss"].detach()), rel=1e-6)
    pen = float(out["feature_pen"])
    assert float(out["loss"].detach()) == pytest.approx(float(out["ce"]) + 10 * pen * int(out["n_masked"]), rel=1e-5)


# ----------------------------------------------------------------------------- loop pieces


def test_lr_schedule_warmup_then_linear_decay():
    model = torch.nn.Linear(2, 2)
    opt, sched = loop.build_optimizer(model, TrainConfig(steps=100, lr=1.0, warmup_frac=0.1))
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[55] == pytest.approx(0.5) and lrs[-1] == pytest.approx(1 / 90)
    g = opt.param_groups[0]
    assert g["betas"] == (0.9, 0.98) and g["eps"] == 1e-6 and g["weight_decay"] == 0.01


def test_step_batches_crop_labels_and_rank_split(toy, tmp_path):
    labels, inv = phone_labels(toy)
    lab.write_labels(tmp_path / "labels", labels, len(inv))
    items = [batches.Item.from_utterance(u) for u in toy.select(split="train")]
    cfg = TrainConfig(steps=10, batch_samples=3 * 16000, seed=3)
    dirs = {"main": tmp_path / "labels"}
    ranks = [batches.StepBatches(items, dirs, cfg, MICRO, rank=r, world=2) for r in range(2)]
    accum = batches.StepBatches(items, dirs, replace(cfg, grad_accum=2), MICRO)
    for step in range(6):
        a, parts = accum[step], [r[step] for r in ranks]
        a["labels"] = a["labels"]["main"]
        for p in parts:
            p["labels"] = p["labels"]["main"]
        assert a["wavs"].shape[:2] == (2, parts[0]["wavs"].shape[1])
        for key in ("wavs", "labels", "mask"):  # rank r's micro-batch = micro-batch r of one process
            assert torch.equal(a[key].flatten(0, 1), torch.cat([p[key][0] for p in parts])), key
        a = {k: v.flatten(0, 1)[None] for k, v in a.items() if v.ndim >= 2}
        # every crop is on the 320-sample grid and its labels are those of the same frames
        for row in range(a["wavs"].shape[1]):
            w = a["wavs"][0, row]
            uid = _find_crop(toy, w)
            full = labels[uid]
            f0 = _crop_frame(toy, uid, w)
            T = a["labels"].shape[-1]
            np.testing.assert_array_equal(a["labels"][0, row].numpy(), full[f0: f0 + T])
        assert a["wavs"].shape[-1] <= cfg.max_sample_size


def _find_crop(corpus, w):
    from harness.audio import load_audio

    for u in corpus.select(split="train"):
        x = load_audio(u.path)
        if len(x) >= len(w) and _crop_frame_x(x, w) is not None:
            return u.id
    raise AssertionError("crop not found")


def _crop_frame_x(x, w):
    for f0 in range((len(x) - len(w)) // 320 + 1):
        if torch.equal(x[f0 * 320: f0 * 320 + len(w)], w):
            return f0
    return None


def _crop_frame(corpus, uid, w):
    from harness.audio import load_audio

    u = next(u for u in corpus.utterances if u.id == uid)
    return _crop_frame_x(load_audio(u.path), w)


# ----------------------------------------------------------------------------- recipes


def test_recipes_load_and_unknown_keys_fail(tmp_path):
    tiny, base = load_recipe("hubert_tiny"), load_recipe("hubert_base")
    assert len(tiny.iterations) == 2 and tiny.iterations[1].features.source == "layer"
    assert 50 <= tiny.iterations[0].cluster.k <= 100 and tiny.iterations[0].model.encoder_layers <= 4
    b1, b2 = base.iterations
    assert (b1.cluster.k, b2.cluster.k, b2.features.layer) == (100, 500, 6)
    assert (b1.train.steps, b2.train.steps) == (250_000, 400_000)
    assert b2.model.encoder_layers == 12 and b2.model.encoder_dim == 768 and b2.model.final_dim == 256
    assert b2.train.lr == 5e-4 and b2.train.grad_clip == 10.0 and b2.train.max_sample_size == 250_000
    with pytest.raises(ConfigError, match="lrr"):
        recipe_from_dict({"train": {"lrr": 1}})
    with pytest.raises(ConfigError, match="colour"):
        recipe_from_dict({"colour": 1})
    with pytest.raises(ConfigError, match="layer"):
        recipe_from_dict({"model": {"preset": "tiny"}, "iterations": [{}, {"features": {"source": "layer", "layer": 9}}]})
    assert tiny.iterations[0].family == "hubert" and tiny.iterations[0].objective == "masked_prediction"
    wl = load_recipe("wavlm_tiny")
    assert [it.family for it in wl.iterations] == ["wavlm", "wavlm"]
    assert [it.objective for it in wl.iterations] == ["denoising", "denoising"]
    h1, w1 = tiny.iterations[0], wl.iterations[0]
    assert w1.train == h1.train and w1.cluster == h1.cluster and w1.data == h1.data  # equal updates, same labels
    assert w1.objective_options.mix_prob == 0.2 and w1.model.num_buckets == 320 and w1.model.max_distance == 800
    lab_ = load_recipe("wavlablm_tiny")
    assert [(it.family, it.objective, it.continue_previous) for it in lab_.iterations] == [
        ("hubert", "masked_prediction", False), ("hubert", "denoising", False), ("hubert", "denoising", True)]
    assert lab_.iterations[2].data.balance == "language" and lab_.iterations[1].features.source == "layer"
    for name in ("wavlm_base", "wavlm_base_plus", "wavlablm_base"):
        r = load_recipe(name)
        last = r.iterations[-1]
        assert last.objective == "denoising" and last.model.encoder_dim == 768 and last.cluster.k == 500
    assert load_recipe("wavlm_base_plus").iterations[-1].objective_options.noise_prob == 0.1
    assert load_recipe("wavlm_base").iterations[-1].objective_options.noise_prob == 0.0
    with pytest.raises(ConfigError, match="objective.name.*denoisng"):
        recipe_from_dict({"objective": {"name": "denoisng"}})
    with pytest.raises(ConfigError, match="mix_prob"):
        recipe_from_dict({"objective": {"name": "denoising", "mix_prob": 2.0}})
    with pytest.raises(ConfigError, match="model.*wavlmm"):
        recipe_from_dict({"model": {"family": "wavlmm"}})
    with pytest.raises(ConfigError, match="cannot continue"):
        recipe_from_dict({"iterations": [{"continue": True}]})
    with pytest.raises(ConfigError, match="continues iteration 1"):
        recipe_from_dict({"model": {"preset": "tiny"}, "iterations": [{}, {"continue": True, "model": {"encoder_layers": 2}}]})
    p = tmp_path / "r.yaml"
    p.write_text("name: mine\nmodel: {preset: tiny}\niterations:\n  - cluster: {k: 7}\n")
    r = load_recipe(p)
    assert r.name == "mine" and r.iterations[0].cluster.k == 7 and r.iteration_name(1) == "mine-it1"


# ----------------------------------------------------------------------------- export + pipeline


def test_export_round_trip(tmp_path):
    from harness.pretrain.recipe import IterationConfig
    from harness.pretrain.export import export_iteration

    torch.manual_seed(0)
    model = _model(7)
    (tmp_path / "train").mkdir()
    checkpoint.save_checkpoint(tmp_path / "train" / checkpoint.CHECKPOINT, {"model": model.state_dict()})
    (tmp_path / "train" / checkpoint.DONE).write_text("{}")
    export_iteration(tmp_path / "train", IterationConfig(model=MICRO), tmp_path / "up", "toy-it1")
    up = load_exported(tmp_path / "up")
    assert up.spec.name == "toy-it1" and up.spec.num_layers == MICRO.encoder_layers + 1
    x = 0.1 * torch.randn(2, 12000)
    lens = torch.tensor([12000, 9000])
    model.eval()
    with torch.no_grad():
        ref = model.encoder(x, lens).hidden_states
        got = up(x, lens).layers
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_pipeline_two_iterations_resumes_and_exports(toy, tmp_path):
    from harness.pretrain.run import pretrain

    recipe = tmp_path / "micro.yaml"
    m = {k: (list(v) if isinstance(v, tuple) else v) for k, v in MICRO.to_dict().items()}
    recipe.write_text(json.dumps({  # JSON is YAML
        "name": "micro", "data": {"min_seconds": 1.0},
        "model": {"preset": "tiny", **m},
        "cluster": {"k": 12, "sample_fraction": 1.0, "niter": 20},
        "train": {"steps": 12, "lr": 2e-3, "batch_samples": 64000, "checkpoint_every": 5, "log_every": 6},
        "iterations": [{"features": {"source": "mfcc"}}, {"features": {"source": "layer", "layer": 1}}]}))
    lines = []
    up = pretrain(recipe, str(toy.root), tmp_path / "run", log=lines.append)
    assert up == tmp_path / "run" / "iter2" / "upstream"
    assert load_exported(up).spec.name == "micro-it2"
    pre = json.loads((up / "upstream.json").read_text())["pretraining"]  # what the board's summary shows
    assert pre["corpus"] == str(toy.root) and pre["updates"] == 12 and pre["iteration"] == 2
    assert pre["utterances"] > 0 and pre["hours"] > 0
    for k in (1, 2):
        s = json.loads((tmp_path / "run" / f"iter{k}" / "summary.json").read_text())
        assert s["name"] == f"micro-it{k}" and s["k"] == 12
        q = s["label_quality"]["dev"]
        assert 0 < q["pnmi"] <= 1 and 0 < q["phone_purity"] <= 1 and q["frames"] > 0
        assert 0 <= s["masked_acc"]["dev"] <= 1 and s["masked_acc"]["train"] is not None
        assert set(s["times_s"]) >= {"features_train", "clusters_main", "labels_main_train", "train"}
    f2 = dump.FeatureReader(tmp_path / "run" / "iter2" / "features" / "train")
    assert f2.dim == MICRO.encoder_dim and f2.rate == 50.0
    # idempotent: a second call redoes nothing
    lines.clear()
    mtime = (tmp_path / "run" / "iter1" / "train" / checkpoint.CHECKPOINT).stat().st_mtime_ns
    pretrain(recipe, str(toy.root), tmp_path / "run", log=lines.append)
    assert (tmp_path / "run" / "iter1" / "train" / checkpoint.CHECKPOINT).stat().st_mtime_ns == mtime
    assert not any("loss" in ln or "resuming" in ln for ln in lines), lines
    # another recipe in the same folder is refused
    recipe2 = tmp_path / "micro2.yaml"
    recipe2.write_text(recipe.read_text().replace('"k": 12', '"k": 13'))
    with pytest.raises(HarnessError, match="another recipe"):
        pretrain(recipe2, str(toy.root), tmp_path / "run", log=lines.append)
    # a recipe sharing iteration 1 (a different iteration 2) reuses it instead of retraining it
    from harness.pretrain.recipe_load import load_recipe
    from harness.pretrain.run_folder import reuse_iterations, shared_iterations

    recipe3 = tmp_path / "micro3.yaml"
    recipe3.write_text(recipe.read_text().replace('"layer": 1}', '"layer": 2}').replace('"micro"', '"micro3"'))
    assert shared_iterations(load_recipe(recipe), load_recipe(recipe3)) == 1
    assert shared_iterations(load_recipe(recipe), load_recipe(recipe2)) == 0
    others = [tmp_path / "run", tmp_path / "nothing_here"]
    assert reuse_iterations(recipe3, str(toy.root), tmp_path / "run3", others, log=lines.append) == 1
    assert reuse_iterations(recipe3, str(toy.root), tmp_path / "run3", others, log=lines.append) == 0  # has it
    assert reuse_iterations(recipe2, str(toy.root), tmp_path / "run2", others, log=lines.append) == 0
    ck = tmp_path / "run3" / "iter1" / "train" / checkpoint.CHECKPOINT
    assert ck.read_bytes() == (tmp_path / "run" / "iter1" / "train" / checkpoint.CHECKPOINT).read_bytes()
    lines.clear()
    pretrain(recipe3, str(toy.root), tmp_path / "run3", log=lines.append)
    assert not any("micro3-it1" in ln and "loss" in ln for ln in lines)
    assert json.loads((tmp_path / "run3" / "iter2" / "summary.json").read_text())["name"] == "micro3-it2"
    assert ck.stat().st_mtime_ns == (tmp_path / "run" / "iter1" / "train" / checkpoint.CHECKPOINT).stat().st_mtime_ns


def test_nomask_weight_adds_unmasked_cross_entropy():
    torch.manual_seed(0)
    wav = 0.1 * torch.randn(2, 16000)
    y = torch.randint(0, 5, (2, 49))
    mask = compute_mask(2, 49, generator=torch.Generator().manual_seed(0))
    a = _model(5).eval()
    b = _model(5, nomask_weight=0.5).eval()
    b.load_state_dict(a.state_dict())
    oa, ob = a(wav, {"main": y}, mask), b(wav, {"main": y}, mask)
    logits = a.logits(a.encoder(wav, mask=mask).hidden_states[-1], "main")
    ce_u = torch.nn.functional.cross_entropy(logits[~mask], y[~mask], reduction="sum")
    assert float(ob["loss"].detach()) == pytest.approx(float(oa["loss"].detach()) + 0.5 * float(ce_u.detach()), rel=1e-5)
    assert int(ob["correct_unmasked"]) == int(oa["correct_unmasked"])


def test_language_balanced_subset():
    from harness.data.corpus import Utterance
    from harness.pretrain.utterances import balance_languages

    utts = [Utterance(f"{lang}{i}", "x.wav", 3.0, language=lang)
            for lang, n in (("en", 30), ("fr", 10), ("sw", 4), ("yo", 2)) for i in range(n)]
    out = balance_languages(utts)  # median of 30, 10, 4, 2 = 7
    counts = {lang: sum(u.language == lang for u in out) for lang in ("en", "fr", "sw", "yo")}
    assert counts == {"en": 7, "fr": 7, "sw": 4, "yo": 2}
    assert [u.id for u in out] == [u.id for u in utts if u in out]  # manifest order kept
    assert [u.id for u in balance_languages(utts, 3, seed=1)] == [u.id for u in balance_languages(utts, 3, seed=1)]
    assert [u.id for u in balance_languages(utts, 3, seed=1)] != [u.id for u in balance_languages(utts, 3, seed=2)]
    with pytest.raises(HarnessError, match="no language"):
        balance_languages([Utterance("u1", "x.wav", 3.0)])


def test_denoising_without_noise_clips_is_refused(toy, tmp_path):
    from harness.pretrain.run import pretrain

    recipe = tmp_path / "noisy.yaml"
    recipe.write_text(json.dumps({"name": "noisy", "model": {"family": "wavlm", "preset": "tiny"},
                                  "objective": {"name": "denoising", "noise_prob": 0.1}}))
    with pytest.raises(HarnessError, match="no noise subset: pass --noise DIR"):
        pretrain(recipe, str(toy.root), tmp_path / "run")
    with pytest.raises(HarnessError, match="no .wav or .flac"):
        (tmp_path / "empty").mkdir()
        pretrain(recipe, str(toy.root), tmp_path / "run", noise=str(tmp_path / "empty"))


def test_run_folder_made_before_a_config_field_existed_still_matches():
    import copy

    from harness.pretrain.recipe import recipe_to_dict
    from harness.pretrain.recipe_load import recipe_from_dict
    from harness.pretrain.run_folder import same_run

    rec = recipe_from_dict({"model": {"preset": "tiny"}, "iterations": [{}, {"features": {"source": "layer", "layer": 2}}]})
    ident = {"recipe": recipe_to_dict(rec), "corpus": "c", "train_utterances": 3, "dev_utterances": 1}
    old = copy.deepcopy(ident)
    for it in old["recipe"]["iterations"]:  # as written before these fields were added
        del it["cluster"]["method"], it["model"]["normalize"], it["train"]["upsample_alpha"]
    assert same_run(old, ident, rec)
    # a new field set away from its default: the old run was not made with it
    rec2 = recipe_from_dict({"model": {"preset": "tiny", "normalize": True}})
    ident2 = {**ident, "recipe": recipe_to_dict(rec2)}
    old2 = copy.deepcopy(ident2)
    del old2["recipe"]["iterations"][0]["model"]["normalize"]
    assert not same_run(old2, ident2, rec2)
    changed = copy.deepcopy(ident)
    changed["recipe"]["iterations"][1]["cluster"]["k"] = 99
    assert not same_run(changed, ident, rec)
    unknown = copy.deepcopy(ident)
    unknown["recipe"]["data"]["removed_field"] = 1
    assert not same_run(unknown, ident, rec)
    assert not same_run({**ident, "corpus": "other"}, ident, rec)


def test_recipe_overrides_reach_every_iteration():
    base = load_recipe("mshubert_base")
    short = load_recipe("mshubert_base", ["train.steps=3", "train.batch_samples=32000", "cluster.niter=5"])
    assert [it.train.steps for it in base.iterations] == [250000, 400000]
    assert [it.train.steps for it in short.iterations] == [3, 3]
    assert {it.train.batch_samples for it in short.iterations} == {32000}
    assert {it.cluster.niter for it in short.iterations} == {5}
    # everything not overridden is the recipe's
    assert short.iterations[1].model == base.iterations[1].model
    for bad, msg in (("steps=3", "TABLE.KEY=VALUE"), ("train.stepz=3", "stepz"), ("train.steps=-1", "steps")):
        with pytest.raises(ConfigError, match=msg):
            load_recipe("hubert_tiny", [bad])


def test_export_every_keeps_step_exports_resumes_and_leaves_final_weights(toy, tmp_path, monkeypatch, capsys):
    """--export-every N: exports after steps N, 2N, ... (not the last), loadable, recording step
    and training seconds; a run killed between two exports and resumed ends with the same
    exports and, like an uninterrupted run without exports, bit-identical final weights (dropout
    on: an export must draw no random number). Also the iteration's diagnostics: curves.png and
    codebook usage / PNMI / purity in summary.json."""
    from harness.pretrain import export as export_mod
    from harness.pretrain.run import pretrain

    recipe = tmp_path / "micro.yaml"
    m = {k: (list(v) if isinstance(v, tuple) else v) for k, v in MICRO.to_dict().items()}
    recipe.write_text(json.dumps({
        "name": "micro", "data": {"min_seconds": 1.0},
        "model": {"preset": "tiny", **m, "dropout": 0.1, "layerdrop": 0.3},
        "cluster": {"k": 12, "sample_fraction": 1.0, "niter": 20},
        "train": {"steps": 12, "lr": 2e-3, "batch_samples": 64000, "checkpoint_every": 5, "log_every": 3},
        "iterations": [{"features": {"source": "mfcc"}}]}))
    plain = pretrain(recipe, str(toy.root), tmp_path / "plain", log=lambda s: None)
    with_ex = pretrain(recipe, str(toy.root), tmp_path / "ex", log=lambda s: None, export_every=5)
    names = lambda run: sorted(p.name for p in (run / "iter1" / "exports").iterdir())  # noqa: E731
    assert not (tmp_path / "plain" / "iter1" / "exports").exists()
    assert names(tmp_path / "ex") == ["step000005", "step000010"]
    final = (plain / "upstream.safetensors").read_bytes()
    assert (with_ex / "upstream.safetensors").read_bytes() == final
    recs = {}
    for step in (5, 10):
        folder = tmp_path / "ex" / "iter1" / "exports" / f"step{step:06d}"
        up = load_exported(folder)
        assert up.spec.name == f"micro-it1-step{step:06d}"
        recs[step] = json.loads((folder / "upstream.json").read_text())["pretraining"]
        assert recs[step]["step"] == recs[step]["updates"] == step and recs[step]["iteration"] == 1
        assert (folder / "upstream.safetensors").read_bytes() != final
    assert 0 < recs[5]["train_seconds"] < recs[10]["train_seconds"]
    last = json.loads((with_ex / "upstream.json").read_text())["pretraining"]
    assert last["step"] == 12 and last["train_seconds"] >= recs[10]["train_seconds"]

    # killed at the step-10 export (checkpoint at step 5), then resumed
    real, calls = export_mod.export_encoder, []

    def dies_at_10(encoder, family, folder, name, pretraining=None):
        calls.append(pretraining["step"])
        if pretraining["step"] == 10 and calls.count(10) == 1:
            raise KeyboardInterrupt("killed")
        return real(encoder, family, folder, name, pretraining=pretraining)

    monkeypatch.setattr(export_mod, "export_encoder", dies_at_10)
    with pytest.raises(KeyboardInterrupt):
        pretrain(recipe, str(toy.root), tmp_path / "killed", log=lambda s: None, export_every=5)
    assert names(tmp_path / "killed") == ["step000005"]
    lines = []
    resumed = pretrain(recipe, str(toy.root), tmp_path / "killed", log=lines.append, export_every=5)
    assert any("resuming at step 5" in ln for ln in lines), lines
    assert calls == [5, 10, 10, 12]  # the export at 5 is not redone, the one at 10 is
    assert names(tmp_path / "killed") == ["step000005", "step000010"]
    assert (resumed / "upstream.safetensors").read_bytes() == final
    for step in ("step000005", "step000010"):
        a, b = (tmp_path / r / "iter1" / "exports" / step / "upstream.safetensors" for r in ("ex", "killed"))
        assert a.read_bytes() == b.read_bytes(), step

    # the module entry point (python -m harness.pretrain = harness pretrain) takes the flag; a
    # finished iteration cannot export after the fact
    from harness.pretrain.__main__ import main as module_main

    assert module_main(["--recipe", str(recipe), "--corpus", str(toy.root), "--out", str(tmp_path / "plain"),
                        "--export-every", "4"]) == 0
    out = capsys.readouterr()
    assert "no step export of step(s) 4, 8" in out.out + out.err

    # diagnostics of the iteration
    it1 = tmp_path / "ex" / "iter1"
    import matplotlib.image as mpimg

    img = mpimg.imread(it1 / "curves.png")
    assert img.shape[0] > 100 and img.shape[1] > 300 and img[..., :3].std() > 0.05
    s = json.loads((it1 / "summary.json").read_text())
    for split in ("train", "dev"):
        q = s["label_quality"][split]
        assert q["k"] == 12 and 1 <= q["clusters_used"] <= 12
        assert 0 < q["usage_entropy_bits"] <= np.log2(q["clusters_used"]) + 1e-9
        assert q["usage_perplexity"] == pytest.approx(2 ** q["usage_entropy_bits"])
        assert 1 <= q["usage_perplexity"] <= q["clusters_used"] + 1e-9
        assert 0 < q["pnmi"] <= 1 and 0 < q["phone_purity"] <= 1


def test_codebook_usage():
    u = quality.codebook_usage([5, 5, 5, 5, 0, 0])
    assert u == {"k": 6, "clusters_used": 4, "usage_entropy_bits": 2.0, "usage_perplexity": 4.0}
    u = quality.codebook_usage([9, 0, 0])
    assert u["clusters_used"] == 1 and u["usage_entropy_bits"] == 0.0 and u["usage_perplexity"] == 1.0


def test_warm_start_starts_from_the_previous_encoder_with_new_labels(toy, tmp_path):
    """warm_start: iteration 2 clusters its own labels but its encoder starts from iteration 1's
    trained encoder (an lr of ~0 keeps it there), its heads fresh; the updates add up. The
    log-Mel front end (preset small's) runs the whole pipeline."""
    from harness.pretrain.run import pretrain

    m = {k: (list(v) if isinstance(v, tuple) else v) for k, v in MICRO.to_dict().items()}
    m["frontend"] = "fbank"
    recipe = tmp_path / "warm.yaml"
    recipe.write_text(json.dumps({
        "name": "warm", "data": {"min_seconds": 1.0}, "model": {"preset": "small", **m},
        "cluster": {"k": 8, "sample_fraction": 1.0, "niter": 10},
        "train": {"steps": 6, "lr": 2e-3, "batch_samples": 64000, "checkpoint_every": 6, "log_every": 6,
                  "feature_pen": 0.0},
        "iterations": [{"features": {"source": "mfcc"}},
                       {"features": {"source": "layer", "layer": 1}, "warm_start": True,
                        "train": {"steps": 2, "lr": 1e-12, "warmup_frac": 0.0}}]}))
    lines = []
    up = pretrain(recipe, str(toy.root), tmp_path / "run", log=lines.append)
    s1 = checkpoint.final_model_state(tmp_path / "run" / "iter1" / "train")
    s2 = checkpoint.final_model_state(tmp_path / "run" / "iter2" / "train")
    enc = [k for k in s1 if k.startswith("encoder.")]
    assert enc and all(torch.allclose(s1[k], s2[k], atol=1e-6) for k in enc)
    heads = [k for k in s1 if not k.startswith("encoder.")]
    assert heads and any(not torch.allclose(s1[k], s2[k]) for k in heads)
    assert (tmp_path / "run" / "iter2" / "labels" / "main").is_dir()
    assert any("encoder warm-started from iteration 1" in line for line in lines)
    assert json.loads((up / "upstream.json").read_text())["pretraining"]["updates"] == 8
    with pytest.raises(ConfigError, match="warm_start needs a previous iteration"):
        recipe_from_dict({"iterations": [{"warm_start": True}]})
    with pytest.raises(ConfigError, match="must be iteration 1's"):
        recipe_from_dict({"model": {"preset": "tiny"},
                          "iterations": [{}, {"warm_start": True, "features": {"source": "layer", "layer": 1},
                                              "model": {"encoder_layers": 2}}]})


def test_pretrain_seed_changes_the_run_and_is_recorded(toy, tmp_path):
    """Pre-training seed s > 0 (harness.pretrain.seeds): other k-means centroids and other weights
    than seed 0 (which twice gives the same bytes), exports named <recipe>-s<s>-it<k>, the seed
    in recipe.json and in the export's pretraining record (what result.json's upstream_facts
    carries); seed 0's record and names are those of a run made before seeds. A seed-1 run never
    reuses seed 0's iterations."""
    from harness.catalog import upstream_facts
    from harness.pretrain.run import pretrain
    from harness.pretrain.run_folder import reuse_iterations

    recipe = tmp_path / "micro.yaml"
    m = {k: (list(v) if isinstance(v, tuple) else v) for k, v in MICRO.to_dict().items()}
    recipe.write_text(json.dumps({
        "name": "micro", "data": {"min_seconds": 1.0}, "model": {"preset": "tiny", **m},
        "cluster": {"k": 12, "sample_fraction": 1.0, "niter": 5},
        "train": {"steps": 4, "lr": 2e-3, "batch_samples": 64000, "checkpoint_every": 4, "log_every": 2},
        "iterations": [{"features": {"source": "mfcc"}}]}))
    quiet = lambda s: None  # noqa: E731
    s0 = pretrain(recipe, str(toy.root), tmp_path / "micro", log=quiet)
    s0b = pretrain(recipe, str(toy.root), tmp_path / "micro_again", log=quiet)
    assert reuse_iterations(recipe, str(toy.root), tmp_path / "micro-s1", [tmp_path / "micro"], log=quiet,
                            pretrain_seed=1) == 0
    s1 = pretrain(recipe, str(toy.root), tmp_path / "micro-s1", log=quiet, pretrain_seed=1)
    weights = lambda up: (up / "upstream.safetensors").read_bytes()  # noqa: E731
    assert weights(s0) == weights(s0b) and weights(s1) != weights(s0)
    cents = lambda up: np.load(up.parent / "clusters" / "main" / "centroids.npy")  # noqa: E731
    assert np.array_equal(cents(s0), cents(s0b)) and not np.array_equal(cents(s1), cents(s0))
    assert load_exported(s0).spec.name == "micro-it1" and load_exported(s1).spec.name == "micro-s1-it1"
    f0, f1 = upstream_facts(load_exported(s0))["pretraining"], upstream_facts(load_exported(s1))["pretraining"]
    assert "pretrain_seed" not in f0 and f0["recipe"] == "micro"
    assert f1["pretrain_seed"] == 1 and f1["recipe"] == "micro-s1"
    assert {k: v for k, v in f1.items() if k not in ("pretrain_seed", "recipe", "train_seconds")} == \
        {k: v for k, v in f0.items() if k not in ("recipe", "train_seconds")}
    ident = json.loads((tmp_path / "micro-s1" / "recipe.json").read_text())
    assert ident["recipe"]["pretrain_seed"] == 1 and ident["recipe"]["iterations"][0]["train"]["seed"] == 2
    assert "pretrain_seed" not in json.loads((tmp_path / "micro" / "recipe.json").read_text())["recipe"]
