"""The two-speaker and noise subsets of the synth corpus: "mix" (separation), "conv"
(diarization) and "noise" (synth_plan_mix.plan_mix / plan_conv / plan_noise and their renderers)."""

import gzip
import hashlib
import json
import multiprocessing as mp
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.data import noise
from harness.data.corpus import load_manifest_dir, overlap_ratio
from harness.data.synth_plan import make_plan
from harness.data.synth_plan_mix import NOISE_KINDS
from harness.data.synth_spec import SIZES

SR = 16000
NEW = ("mix", "conv", "noise")


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    return load_manifest_dir(tiny_corpus)


@pytest.fixture(scope="module")
def plan():
    return {it.id: it for it in make_plan("tiny", 0).items}


def _int16(path):
    x, sr = sf.read(path, dtype="int16")
    assert sr == SR and x.ndim == 1
    return x


def _db(x):
    return 20 * np.log10(noise.rms(x))


def test_counts_match_the_sizes(corpus):
    for size, want in (("tiny", {"mix": (48, 4, 4), "conv": (10, 4, 4), "noise": (6, 2, 2)}),
                       ("small", {"mix": (160, 40, 40), "conv": (100, 25, 25),
                                  "noise": (30, 10, 10)}),
                       ("medium", {"mix": (1000, 200, 200), "conv": (600, 100, 100),
                                   "noise": (200, 50, 50)})):
        spec = SIZES[size]
        assert (spec.mix, spec.conv, spec.noise) == (want["mix"], want["conv"], want["noise"])
    counts = corpus.meta["counts"]
    for sub, (tr, dv, te) in (("mix", (48, 4, 4)), ("conv", (10, 4, 4)), ("noise", (6, 2, 2))):
        assert counts[sub] == {"train": tr, "dev": dv, "test": te}
        got = Counter(u.split for u in corpus.select(subset=sub))
        assert got == {"train": tr, "dev": dv, "test": te}
    assert corpus.meta["mix"]["mode"] == "min"


def test_mixture_is_exactly_the_sum_of_its_sources(corpus, tiny_corpus):
    mixes = corpus.select(subset="mix")
    raw = [json.loads(line) for line in
           gzip.decompress((tiny_corpus / "supervisions.jsonl.gz").read_bytes()).decode().splitlines()]
    stored = {r["id"]: r["custom"]["sources"] for r in raw if r["custom"]["subset"] == "mix"}
    for u in mixes:
        c = u.custom
        assert (u.text, u.speaker, u.language, c["mode"], c["dataset"]) == (None, None, "en", "min", "synth")
        # the manifest keeps relative paths; the loader hands out absolute, openable ones
        assert all(not Path(p).is_absolute() for p in stored[u.id])
        assert c["sources"] == [str(tiny_corpus / p) for p in stored[u.id]]
        m, s1, s2 = _int16(u.path), _int16(c["sources"][0]), _int16(c["sources"][1])
        assert len(m) == len(s1) == len(s2) == round(u.duration * SR)
        assert np.array_equal(m.astype(np.int32), s1.astype(np.int32) + s2.astype(np.int32))
        assert noise.rms(s1) > 0 and noise.rms(s2) > 0
        assert 1.0 < u.duration < 5.0
    assert 2.0 < np.mean([u.duration for u in mixes]) < 4.0


def test_relative_level_is_the_planned_one(corpus, plan):
    rel = []
    for u in corpus.select(subset="mix"):
        s1, s2 = (_int16(p).astype(np.float64) for p in u.custom["sources"])
        got = _db(s2) - _db(s1)
        assert got == pytest.approx(u.custom["rel_level_db"], abs=0.1)
        assert u.custom["rel_level_db"] == plan[u.id].render["rel_level_db"]
        rel.append(u.custom["rel_level_db"])
    assert min(rel) >= -5 and max(rel) <= 5 and np.std(rel) > 1.5
    small = [it.custom["rel_level_db"] for it in make_plan("small", 0).items if it.subset == "mix"]
    assert min(small) < -4.5 and max(small) > 4.5
    assert Counter(np.digitize(small, [-2.5, 0, 2.5])).most_common()[-1][1] > 0.15 * len(small)


def test_dev_test_speakers_never_in_training(corpus):
    meta = corpus.meta["speakers"]

    def spk(u):
        return u.custom["source_speakers"] if u.subset == "mix" else u.custom["speakers"]

    for sub in ("mix", "conv"):
        by = {sp: set() for sp in ("train", "dev", "test")}
        for u in corpus.select(subset=sub):
            pair = spk(u)
            assert len(pair) == 2 and pair[0] != pair[1]
            by[u.split].update(pair)
        assert all(meta[s]["role"] == "train" for s in by["train"])
        for sp in ("dev", "test"):
            assert by[sp] and all(meta[s]["role"] == "heldout" and meta[s]["asv_split"] == sp
                                  for s in by[sp])
        assert not by["train"] & (by["dev"] | by["test"]) and not by["dev"] & by["test"]
        # and no dev/test speaker is in any training subset at all
        trained = {u.speaker for u in corpus.select(split="train") if u.speaker}
        assert not trained & (by["dev"] | by["test"])


def test_conversation_segments_agree_with_the_audio(corpus, plan):
    for u in corpus.select(subset="conv"):
        c = u.custom
        x = _int16(u.path).astype(np.float64) / 32768
        segs = c["segments"]
        assert 4 <= len(segs) <= 6 and 4.0 < u.duration < 20.0  # v2: rates jittered down to 0.92x
        assert segs == sorted(segs, key=lambda s: (s[1], s[2]))
        assert {s[0] for s in segs} == set(c["speakers"]) and segs[0][0] == c["speakers"][0]
        assert [s[0] for s in segs][::2] == [c["speakers"][0]] * len(segs[::2])  # alternating
        assert all(0 <= s < e <= u.duration for _, s, e in segs)
        inside = np.zeros(len(x), dtype=bool)
        for _, s, e in segs:
            inside[int(s * SR):int(e * SR)] = True
            assert noise.rms(x[int(s * SR):int(e * SR)]) > 0.01  # every segment holds speech
        assert (~inside).sum() > 0.2 * SR  # lead + tail + pauses
        cond = plan[u.id].render["cond"]
        if "noise" in cond:  # speech over its planned noise floor (SNR over the whole call)
            assert noise.rms(x[inside]) > 1.5 * noise.rms(x[~inside])
        elif "room" not in cond:  # dry and clean: only speech between the labels' edges
            assert noise.rms(x[inside]) > 30 * noise.rms(x[~inside])
        else:  # a room: the reverberant tail spills into the pauses, but far below the speech
            assert noise.rms(x[inside]) > 3 * noise.rms(x[~inside])
        # the same speaker never overlaps itself
        for spk in c["speakers"]:
            own = [s for s in segs if s[0] == spk]
            assert all(a[2] <= b[1] for a, b in zip(own, own[1:]))
        assert c["overlap_ratio"] == pytest.approx(overlap_ratio(segs), abs=1e-3)
        assert c["overlap_ratio"] == pytest.approx(plan[u.id].render["overlap_ratio"], abs=0.1)
    ratios = [u.custom["overlap_ratio"] for u in corpus.select(subset="conv")]
    assert min(ratios) < 0.1 and max(ratios) > 0.2


def test_overlap_ratio_definition():
    assert overlap_ratio([["a", 0, 2], ["b", 1, 3]]) == pytest.approx(1 / 3)
    assert overlap_ratio([["a", 0, 1], ["b", 2, 3]]) == 0.0
    assert overlap_ratio([["a", 0, 4], ["b", 1, 2], ["a", 5, 6]]) == pytest.approx(1 / 5)
    assert overlap_ratio([]) == 0.0


def test_planned_overlap_ratios_spread_over_small():
    conv = [it for it in make_plan("small", 0).items if it.subset == "conv"]
    assert len(conv) == 150
    r = np.array([it.render["overlap_ratio"] for it in conv])
    assert r.min() >= 0 and r.max() <= 0.4 and r.min() < 0.03 and r.max() > 0.37
    quarters = np.bincount(np.minimum((r / 0.1).astype(int), 3), minlength=4)
    assert quarters.min() > 0.15 * len(conv)
    kinds = Counter(g[0] for it in conv for g in it.render["gaps"])
    assert kinds["pause"] > 0.2 * sum(kinds.values()) and kinds["overlap"] > 0.2 * sum(kinds.values())
    for it in conv:
        n = len(it.render["texts"])
        assert 4 <= n <= 6 and len(it.render["gaps"]) == n - 1
        assert (it.render["overlap_ratio"] < 0.02) == all(g[0] == "pause" for g in it.render["gaps"])
        assert all(0.1 <= g[1] <= 0.8 for g in it.render["gaps"] if g[0] == "pause")


def test_noise_clips(corpus):
    clips = corpus.select(subset="noise")
    assert {u.custom["noise_kind"] for u in clips} == set(NOISE_KINDS)
    assert {u.custom["noise_kind"] for u in clips if u.split == "train"} == set(NOISE_KINDS)
    for u in clips:
        assert u.custom["dataset"] == "synth" and u.speaker is None and u.text is None
        x = _int16(u.path).astype(np.float64) / 32768
        assert len(x) == 4 * SR
        assert -35.5 < _db(x) < -19.5
        kind = u.custom["noise_kind"]
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        if kind == "hum":
            assert min(abs(f[np.argmax(spec)] - hz) for hz in (50, 60)) < 1.5
        if kind == "babble":  # speech: most energy below 4 kHz, loudness varies over time
            assert spec[f < 4000].sum() > 0.8 * spec.sum()
            frames = x[: len(x) // 400 * 400].reshape(-1, 400)
            assert np.std(np.sqrt((frames ** 2).mean(1))) > 0.1 * noise.rms(x)
        if kind == "white":
            assert spec[f > 4000].sum() > 0.4 * spec.sum()


def test_existing_tasks_ignore_the_new_subsets(corpus):
    from harness.registry import TASKS, load_all

    load_all()
    for name in ("pr", "asr", "ks", "sid", "asv", "lid"):
        splits = TASKS.get(name)().prepare(corpus)
        for utts in splits.as_dict().values():
            assert utts and not {u.subset for u in utts} & set(NEW), name


def _hashes(root: Path, rels):
    return {r: hashlib.md5((root / r).read_bytes()).hexdigest() for r in rels}


def test_same_seed_gives_identical_files(tiny_corpus, tmp_path):
    """Two shards (mixtures + conversations, conversation + noise incl. babble) rendered again in
    fresh processes give the same bytes as the corpus built by generate()."""
    from harness.data.synth_render import render_shard

    p = make_plan("tiny", 0)
    shards = p.shards(SIZES["tiny"].shard_seconds)
    pick = [i for i, sh in enumerate(shards) if {"mix", "conv"} <= {it.subset for it in sh}][:1]
    pick += [i for i, sh in enumerate(shards) if "noise" in {it.subset for it in sh}][:1]
    assert len(pick) == 2
    jobs = [{"shard": i, "digest": p.digest(), "root": str(tmp_path),
             "result": str(tmp_path / f"shard-{i}.json"),
             "items": [asdict(it) for it in shards[i]]} for i in pick]
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        pool.map(render_shard, jobs)
    rels = []
    for i in pick:
        for it in shards[i]:
            rels.append(it.path)
            rels.extend(it.custom.get("sources", []))
    assert sum(r.startswith("audio/mix/s") for r in rels) >= 4
    assert any(it.custom.get("noise_kind") == "babble" for i in pick for it in shards[i])
    assert _hashes(tmp_path, rels) == _hashes(Path(tiny_corpus), rels)


def test_sources_resolve_from_a_relative_corpus_path(tiny_corpus, monkeypatch):
    """`--corpus data/synth/small` (relative) must still give source paths that open."""
    import os

    from harness.data.corpus import load_manifest_dir

    monkeypatch.chdir(tiny_corpus.parent)
    corp = load_manifest_dir(Path(tiny_corpus.name))
    mixes = [u for u in corp.utterances if u.subset == "mix"]
    assert mixes
    for u in mixes[:3]:
        assert all(os.path.isabs(p) and os.path.exists(p) for p in u.custom["sources"])
