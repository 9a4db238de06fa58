"""The embedded synth corpus generator (harness/data/synth*.py, noise.py)."""

import gzip
import hashlib
import json
import multiprocessing as mp
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.data import noise, synth
from harness.data.corpus import load_manifest_dir
from harness.data.synth_plan import make_plan
from harness.data.synth_plan_speech import KEYWORDS, SILENCE, UNKNOWN
from harness.data.synth_spec import SIZES
from harness.data.synth_text import chunk_paragraph, chunks, load_udhr, split_chunks
from harness.errors import HarnessError


def audio_hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted((root / "audio").rglob("*.flac"))}


def manifest_text(root: Path) -> dict:
    out = {n: gzip.decompress((root / n).read_bytes()).decode()
           for n in ("recordings.jsonl.gz", "supervisions.jsonl.gz")}
    for n in ("corpus.json", "trials_dev.txt", "trials_test.txt"):
        out[n] = (root / n).read_text()
    return out


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "tiny"
    assert synth.generate(root, size="tiny", seed=0, workers=2, progress=False) == root
    return root


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_manifest_dir(tiny_dir)


# -- text ---------------------------------------------------------------------------------------
def test_udhr_vendored_languages():
    udhr = load_udhr()
    assert len(udhr) >= 34
    assert {"en", "de", "fr", "es", "ru", "hi", "ko"} <= set(udhr)
    for code in ("en", "ru"):
        assert udhr[code]["voice"] and len(udhr[code]["paragraphs"]) > 40


def test_chunks_are_4_to_14_words():
    text = ("Everyone has the right to education, which shall be free at least in the elementary "
            "and fundamental stages, and elementary education shall be compulsory. Yes.")
    cs = chunk_paragraph(text)
    assert " ".join(cs).replace(",", "").split()[:4] == ["Everyone", "has", "the", "right"]
    assert all(3 <= len(c.split()) <= 14 for c in cs)
    n = [len(c.split()) for c in chunks("en")]
    assert len(n) > 150 and max(n) <= 14 and np.mean(n) > 6


def test_text_split_is_disjoint_and_seeded():
    a = split_chunks("de", 0)
    assert not (set(a["train"]) & set(a["dev"])) and not (set(a["train"]) & set(a["test"]))
    assert not (set(a["dev"]) & set(a["test"]))
    total = sum(len(v) for v in a.values())
    assert total == len(chunks("de"))
    assert 0.6 < len(a["train"]) / total < 0.8
    assert split_chunks("de", 0) == a and split_chunks("de", 1) != a


# -- noise --------------------------------------------------------------------------------------
def test_noise_colours_levels_and_seeding():
    n, sr = 32000, 16000
    spec = {}
    for colour in ("white", "pink", "brown"):
        x = noise.coloured_noise(n, colour, np.random.default_rng(0))
        assert x.dtype == np.float32 and noise.rms(x) == pytest.approx(1.0, rel=1e-3)
        p = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(n, 1 / sr)
        spec[colour] = p[(f > 100) & (f < 400)].mean() / p[(f > 4000) & (f < 7000)].mean()
    assert spec["white"] < 2 < spec["pink"] < spec["brown"]
    h = noise.hum(n, sr, np.random.default_rng(1), freq=60.0)
    f = np.fft.rfftfreq(n, 1 / sr)
    assert abs(f[np.argmax(np.abs(np.fft.rfft(h)))] - 60.0) < 1.0
    s = noise.NoiseSpec("pink", -30.0, 5)
    a, b = noise.render(s, n, sr), noise.render(s, n, sr)
    assert np.array_equal(a, b)
    assert 20 * np.log10(noise.rms(a)) == pytest.approx(-30.0, abs=0.01)
    assert not np.array_equal(a, noise.render(noise.NoiseSpec("pink", -30.0, 6), n, sr))
    with pytest.raises(HarnessError):
        noise.render(noise.NoiseSpec("purple", -30.0, 1), n, sr)


def test_mix_at_snr_and_babble():
    rng = np.random.default_rng(0)
    sig = np.sin(np.linspace(0, 300, 16000)).astype(np.float32)
    nz = noise.coloured_noise(8000, "white", rng)
    mix = noise.mix_at_snr(sig, nz, 10.0)
    got = 20 * np.log10(noise.rms(sig) / noise.rms(mix - sig))
    assert got == pytest.approx(10.0, abs=0.01)
    b = noise.babble([sig, nz, sig[::2]], 12000, rng, talkers=2)
    assert len(b) == 12000 and noise.rms(b) == pytest.approx(1.0, rel=1e-3)


# -- plan ---------------------------------------------------------------------------------------
def test_plan_is_deterministic_and_seed_dependent():
    a, b, c = make_plan("tiny", 0), make_plan("tiny", 0), make_plan("tiny", 1)
    assert [asdict(i) for i in a.items] == [asdict(i) for i in b.items]
    assert a.digest() == b.digest() != c.digest()
    assert [s.id for s in a.speakers] != [s.id for s in c.speakers]
    assert [i.text for i in a.items] != [i.text for i in c.items]
    # shards are fixed by the plan: the same cut for any number of workers
    assert [len(s) for s in a.shards(90)] == [len(s) for s in b.shards(90)]


def test_sizes_languages_and_speakers():
    for size, n_lang, n_spk in (("tiny", 4, 8), ("small", 12, 40), ("medium", 30, 100)):
        spec = SIZES[size]
        assert len(spec.languages) >= n_lang and spec.train_speakers >= n_spk
        assert spec.languages[0] == ("en", "high")
        classes = Counter(c for _, c in spec.languages)
        assert classes["high"] >= 2 and classes["low"] >= 1 and classes["fewshot"] >= 1
        assert spec.utts["fewshot"][0] == 5
    plan = make_plan("small", 0)
    per_spk = Counter(i.speaker for i in plan.items if i.subset == "speech")
    assert len(per_spk) == 40 and min(per_spk.values()) >= 25
    hours = sum(i.est_seconds() for i in plan.items if i.subset in ("speech", "asv", "kws")) / 3600
    assert 0.9 < hours < 1.8  # planned estimate; the build measures about 1.3 h


# -- the tiny corpus ----------------------------------------------------------------------------
def test_tiny_corpus_schema(tiny, tiny_dir):
    assert tiny.name == "synth" and tiny.kind == "synth"
    meta = tiny.meta
    assert meta["size"] == "tiny" and meta["seed"] == 0 and meta["generator"]
    assert set(meta["kws_labels"]) == set(KEYWORDS) | {UNKNOWN, SILENCE}
    assert len(meta["phone_inventory"]) > 40 and "sil" not in meta["phone_inventory"]
    subsets = {(u.subset, u.split) for u in tiny.utterances}
    assert subsets == {("speech", s) for s in ("train", "dev", "test")} | {
        ("asv", "dev"), ("asv", "test")} | {(sub, s) for s in ("train", "dev", "test")
                                            for sub in ("kws", "mix", "conv", "noise")}
    # sources are relative to the folder; the loader resolves them
    first = json.loads(gzip.decompress((tiny_dir / "recordings.jsonl.gz").read_bytes())
                       .decode().splitlines()[0])
    assert not Path(first["sources"][0]["source"]).is_absolute()
    for u in tiny.utterances[::7]:
        info = sf.info(u.path)
        assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"
        assert info.frames == round(u.duration * 16000)


def test_speech_fields_and_alignment(tiny):
    speech = tiny.select(subset="speech")
    assert len({u.language for u in speech}) >= 4
    for u in speech:
        c = u.custom
        assert c["dataset"] == "synth" and c["lang_class"] in ("high", "low", "fewshot")
        assert u.text and c["ipa"] and c["phones"]
        phones = c["phones"].split()
        assert "sil" not in phones and not any(p[0] in "_'," for p in phones)
        al = c["alignment"]
        assert al[0][1] == 0.0 and al[-1][2] == pytest.approx(u.duration, abs=1e-3)
        assert all(a[2] == pytest.approx(b[1]) for a, b in zip(al, al[1:]))
        assert [p for p, _, _ in al if p != "sil"] == phones
        assert 0.7 < u.duration < 12


def test_language_imbalance(tiny):
    train = Counter(u.language for u in tiny.select("train", "speech"))
    classes = {u.language: u.custom["lang_class"] for u in tiny.select(subset="speech")}
    assert train.most_common(1)[0][0] == "en"
    for lang, cls in classes.items():
        if cls == "fewshot":
            assert train[lang] == 5
            assert Counter(u.language for u in tiny.select("test", "speech"))[lang] > 0
        elif cls == "low":
            assert 5 < train[lang] < train["en"]
    assert set(classes.values()) == {"high", "low", "fewshot"}


def test_text_splits_disjoint_by_chunk(tiny):
    texts = defaultdict(lambda: defaultdict(set))
    for u in tiny.select(subset="speech"):
        texts[u.language][u.split].add(u.text)
    for lang, by in texts.items():
        assert not (by["train"] & by["dev"]), lang
        assert not (by["train"] & by["test"]), lang
        assert not (by["dev"] & by["test"]), lang


def test_speakers_cover_all_splits_and_heldout_are_absent(tiny):
    meta = tiny.meta["speakers"]
    train_spk = {s for s, m in meta.items() if m["role"] == "train"}
    held = {s for s, m in meta.items() if m["role"] == "heldout"}
    assert len(train_spk) == 8 and len(held) == 6
    for s, m in meta.items():
        assert {"variant", "gender", "pitch", "range", "rate"} <= set(m)
    by_split = defaultdict(set)
    for u in tiny.select(subset="speech"):
        by_split[u.split].add(u.speaker)
    for split in ("train", "dev", "test"):
        assert by_split[split] == train_spk
    assert not held & {u.speaker for u in tiny.select(subset="speech")}
    assert not held & {u.speaker for u in tiny.select(subset="kws")}
    asv = tiny.select(subset="asv")
    assert {u.speaker for u in asv} == held
    dev_spk = {u.speaker for u in asv if u.split == "dev"}
    test_spk = {u.speaker for u in asv if u.split == "test"}
    assert dev_spk and test_spk and not dev_spk & test_spk


def test_trials_balanced_and_correct(tiny):
    spk = {u.id: (u.speaker, u.split) for u in tiny.select(subset="asv")}
    for split in ("dev", "test"):
        trials = tiny.trials[split]
        labels = Counter(lab for lab, _, _ in trials)
        assert labels[1] == labels[0] > 0
        per = Counter(s for s, sp in spk.values() if sp == split)
        assert labels[1] == sum(n * (n - 1) // 2 for n in per.values())
        for lab, a, b in trials:
            assert spk[a][1] == split and spk[b][1] == split
            assert (spk[a][0] == spk[b][0]) == (lab == 1)
        assert len({(a, b) for _, a, b in trials}) == len(trials)


def test_kws_clips(tiny):
    kws = tiny.select(subset="kws")
    labels = set(KEYWORDS) | {UNKNOWN, SILENCE}
    speakers = defaultdict(set)
    for split in ("train", "dev", "test"):
        counts = Counter(u.custom["keyword"] for u in kws if u.split == split)
        assert set(counts) == labels
        assert len(set(counts.values())) == 1  # balanced
        speakers[split] = {u.speaker for u in kws if u.split == split and u.speaker}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    for u in kws[::5]:
        x, sr = sf.read(u.path, dtype="float32")
        assert len(x) == 16000 and sr == 16000
        if u.custom["keyword"] == SILENCE:
            assert u.speaker is None and noise.rms(x) < 0.1
        else:
            b, e = u.custom["word_start"], u.custom["word_end"]
            inside = noise.rms(x[int(b * sr):int(e * sr)])
            outside = noise.rms(np.concatenate([x[:int(b * sr)], x[int(e * sr):]]))
            assert inside > 5 * outside
    unknown = {u.text for u in kws if u.custom["keyword"] == UNKNOWN}
    assert unknown and not unknown & set(KEYWORDS)


# -- reproducibility, idempotence, resume, errors -----------------------------------------------
def test_same_seed_other_workers_identical(tiny_dir, tmp_path):
    other = synth.generate(tmp_path / "again", size="tiny", seed=0, workers=1, progress=False)
    assert audio_hashes(other) == audio_hashes(tiny_dir)
    assert manifest_text(other) == manifest_text(tiny_dir)


def test_different_seed_differs(tiny):
    plan = make_plan("tiny", 1)
    assert {i.speaker for i in plan.items if i.speaker} != {u.speaker for u in tiny.utterances
                                                            if u.speaker}


def test_generate_is_idempotent(tiny_dir):
    stamp = (tiny_dir / "corpus.json").stat().st_mtime_ns
    files = audio_hashes(tiny_dir)
    assert synth.generate(tiny_dir, size="tiny", seed=0, progress=False) == tiny_dir
    assert (tiny_dir / "corpus.json").stat().st_mtime_ns == stamp
    assert audio_hashes(tiny_dir) == files


def test_interrupted_run_resumes(tiny_dir, tmp_path, monkeypatch):
    from harness.data.synth_render import render_shard

    out = tmp_path / "resumed"
    plan = make_plan("tiny", 0)
    synth._prepare(out, plan, "tiny", 0)  # what a run does before rendering
    job = {"shard": 0, "digest": plan.digest(), "root": str(out),
           "result": str(out / synth.WORK / "shard-00000.json"),
           "items": [asdict(i) for i in plan.shards(SIZES["tiny"].shard_seconds)[0]]}
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        pool.map(render_shard, [job])
    assert not (out / "corpus.json").exists()  # killed here: never taken for complete
    ran = []
    real = synth._run_shards
    monkeypatch.setattr(synth, "_run_shards",
                        lambda jobs, *a: ran.extend(j["shard"] for j in jobs) or real(jobs, *a))
    synth.generate(out, size="tiny", seed=0, workers=2, progress=False)
    assert ran and 0 not in ran
    assert audio_hashes(out) == audio_hashes(tiny_dir)
    assert manifest_text(out) == manifest_text(tiny_dir)
    assert not (out / synth.WORK).exists() and not (out / synth.MARKER).exists()


def test_errors(tiny_dir, tmp_path):
    with pytest.raises(HarnessError, match="unknown synth size"):
        synth.generate(tmp_path / "x", size="huge")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(HarnessError, match="is a file"):
        synth.generate(f, size="tiny", progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(HarnessError, match="not empty"):
        synth.generate(busy, size="tiny", progress=False)
    with pytest.raises(HarnessError, match="already holds a corpus"):
        synth.generate(tiny_dir, size="tiny", seed=3, progress=False)
    with pytest.raises(HarnessError, match="workers"):
        synth.generate(tmp_path / "y", size="tiny", workers=0)
