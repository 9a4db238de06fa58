"""Real-corpus loaders on tiny trees written in each corpus's real layout."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.data.corpora import load_corpus, parse_spec
from harness.data.corpus import save_manifests
from harness.errors import HarnessError

SR = 16000


def _audio(path: Path, seconds: float, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(str(path), x.astype("float32"), SR)


# ---------------------------------------------------------------- LibriSpeech

LS = {  # part -> {(spk, chapter): [texts]}
    "train-clean-100": {("19", "198"): ["NORTHANGER ABBEY", "THIS LITTLE WORK WAS FINISHED"],
                        ("26", "495"): ["HELLO WORLD"]},
    "dev-clean": {("84", "121123"): ["GO DO YOU HEAR"]},
    "test-clean": {("1089", "134686"): ["HE HOPED THERE WOULD BE STEW FOR DINNER", "STUFF IT INTO YOU"]},
    "dev-other": {("116", "288045"): ["AS I APPROACHED THE CITY"]},
}


def make_librispeech(root: Path) -> Path:
    base = root / "LibriSpeech"
    for part, chapters in LS.items():
        for i, ((spk, ch), texts) in enumerate(chapters.items()):
            d = base / part / spk / ch
            d.mkdir(parents=True)
            lines = []
            for j, text in enumerate(texts):
                uid = f"{spk}-{ch}-{j:04d}"
                _audio(d / f"{uid}.flac", 0.5 + 0.1 * j, seed=i + j)
                lines.append(f"{uid} {text}\n")
            (d / f"{spk}-{ch}.trans.txt").write_text("".join(lines))
    return root


@pytest.fixture
def no_espeak(monkeypatch):
    monkeypatch.setitem(sys.modules, "harness.data.espeak", None)  # import raises ImportError


def test_librispeech_splits_texts_speakers(tmp_path, no_espeak):
    root = make_librispeech(tmp_path / "data")
    c = load_corpus(f"librispeech:{root}", cache_dir=tmp_path / "cache")
    assert (c.name, c.kind) == ("librispeech", "real")
    assert len(c.utterances) == 6  # dev-other is not loaded
    assert {u.id for u in c.select(split="train")} == {"19-198-0000", "19-198-0001", "26-495-0000"}
    assert [u.id for u in c.select(split="dev")] == ["84-121123-0000"]
    assert len(c.select(split="test", subset="speech")) == 2
    u = next(u for u in c.utterances if u.id == "19-198-0001")
    assert u.text == "THIS LITTLE WORK WAS FINISHED"
    assert (u.speaker, u.language, u.subset, u.sampling_rate) == ("19", "en", "speech", SR)
    assert u.duration == pytest.approx(0.6) and Path(u.path).is_file() and u.path.endswith(".flac")
    assert all("phones" not in x.custom for x in c.utterances)
    assert any("phones" in n for n in c.meta["notes"])


def test_librispeech_accepts_inner_folder_and_caches(tmp_path, no_espeak):
    root = make_librispeech(tmp_path / "data")
    cache = tmp_path / "cache"
    c1 = load_corpus(f"librispeech:{root / 'LibriSpeech'}", cache_dir=cache)
    folder = c1.root
    assert (folder / "corpus.json").exists() and folder.parent == cache
    mtime = (folder / "corpus.json").stat().st_mtime_ns
    c2 = load_corpus(f"librispeech:{root / 'LibriSpeech'}", cache_dir=cache)
    assert (folder / "corpus.json").stat().st_mtime_ns == mtime  # read back, not rebuilt
    assert [u.id for u in c2.utterances] == [u.id for u in c1.utterances]


def test_librispeech_phones_from_espeak(tmp_path, monkeypatch):
    import types

    fake = types.ModuleType("harness.data.espeak")
    fake.PAUSE_PHONEMES = frozenset({"_:"})
    fake.text_to_phones = lambda text, lang="en": [p for w in text.split() for p in (w[0], "_:")]
    monkeypatch.setitem(sys.modules, "harness.data.espeak", fake)
    root = make_librispeech(tmp_path / "data")
    c = load_corpus(f"librispeech:{root}", cache_dir=tmp_path / "cache")
    u = next(u for u in c.utterances if u.id == "26-495-0000")
    assert u.custom["phones"] == "h w"  # lower-cased text, pauses dropped


def test_librispeech_real_espeak_phones(tmp_path):
    from harness.data.corpora_librispeech import phonemizer

    fn, note = phonemizer()
    assert fn is not None, note  # espeakng-loader is a dependency: it must load
    phones = fn("HELLO WORLD, THE QUICK BROWN FOX")
    assert len(phones) >= 15 and all(p and " " not in p and not p.startswith(("_", "'")) for p in phones)
    from harness.data import espeak

    # the same symbols as the synth corpus's alignments
    assert phones == espeak.synthesize("hello world, the quick brown fox", "en").phones()


def test_librispeech_bad_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match=str(tmp_path / "empty")):
        load_corpus(f"librispeech:{tmp_path / 'empty'}", cache_dir=tmp_path / "cache")
    with pytest.raises(HarnessError, match="does not exist"):
        load_corpus(f"librispeech:{tmp_path / 'nope'}", cache_dir=tmp_path / "cache")
    (tmp_path / "ls" / "LibriSpeech" / "dev-clean" / "1" / "2").mkdir(parents=True)  # no transcripts
    with pytest.raises(HarnessError, match="trans.txt"):
        load_corpus(f"librispeech:{tmp_path / 'ls'}", cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------- VoxCeleb1

VOX_SPEAKERS = [f"id1{n:04d}" for n in (1, 2, 3, 4, 5, 6, 270, 271)]  # last two = trial speakers
TRIAL_SPKS = {"id10270", "id10271"}


def make_voxceleb(root: Path, with_iden: bool = True) -> Path:
    keys = []
    for s, spk in enumerate(VOX_SPEAKERS):
        for v, yt in enumerate(("x6uYqmx31kE", "-8jEAjG6Seg")):
            for n in (1, 2):
                key = f"{spk}/{yt}/{n:05d}.wav"
                _audio(root / "wav" / key, 0.3, seed=s)
                keys.append(key)
    (root / "veri_test2.txt").write_text(
        "1 id10270/x6uYqmx31kE/00001.wav id10270/-8jEAjG6Seg/00002.wav\n"
        "0 id10270/x6uYqmx31kE/00001.wav id10271/x6uYqmx31kE/00001.wav\n"
        "1 id10271/x6uYqmx31kE/00002.wav id10271/-8jEAjG6Seg/00001.wav\n"
    )
    if with_iden:
        lines = [f"{(1, 1, 2, 3)[i % 4]} {k}\n" for i, k in enumerate(keys)]
        (root / "iden_split.txt").write_text("".join(lines))
    return root


def test_voxceleb_sid_asv(tmp_path):
    root = make_voxceleb(tmp_path / "vox1")
    c = load_corpus(f"voxceleb1:{root}", cache_dir=tmp_path / "cache")
    assert (c.name, c.kind) == ("voxceleb1", "real")
    sid = c.select(subset="speech")
    assert len(sid) == 32 and {u.speaker for u in sid} == set(VOX_SPEAKERS)
    assert {u.split for u in sid} == {"train", "dev", "test"}
    u = next(u for u in sid if u.id == "id10001-x6uYqmx31kE-00001")
    assert u.split == "train" and Path(u.path).is_file()
    # every file's line index i: i%4 in (0, 1) -> train, 2 -> dev (2), 3 -> test (3)
    assert next(u for u in sid if u.id == "id10001--8jEAjG6Seg-00002").split == "test"
    asv_test = c.select(subset="asv", split="test")
    assert len(asv_test) == 8 and {u.speaker for u in asv_test} == TRIAL_SPKS
    ids = {u.id: u for u in c.utterances}
    assert c.trials["test"] == [
        (1, "asv_id10270-x6uYqmx31kE-00001", "asv_id10270--8jEAjG6Seg-00002"),
        (0, "asv_id10270-x6uYqmx31kE-00001", "asv_id10271-x6uYqmx31kE-00001"),
        (1, "asv_id10271-x6uYqmx31kE-00002", "asv_id10271--8jEAjG6Seg-00001"),
    ]
    for split in ("test", "dev"):
        for lab, a, b in c.trials[split]:
            assert ids[a].subset == "asv" and ids[a].split == split and ids[b].split == split
            assert (ids[a].speaker == ids[b].speaker) == (lab == 1)
    dev = c.trials["dev"]
    assert dev and sum(lab for lab, _, _ in dev) * 2 == len(dev)  # balanced
    dev_spks = set(c.meta["asv"]["dev_speakers"])
    assert len(dev_spks) == 2 and not dev_spks & TRIAL_SPKS
    assert {u.speaker for u in c.select(subset="asv", split="dev")} == dev_spks
    assert set(c.meta["asv"]["exclude_from_training"]) == dev_spks | TRIAL_SPKS
    assert all(u.custom.get("asv_heldout") == "test" for u in sid if u.speaker in TRIAL_SPKS)
    assert "dev trial" in c.meta["asv"]["dev_trials"] or "held out" in c.meta["asv"]["dev_trials"]
    # seeded: a second build (fresh cache) gives the same dev trials
    c2 = load_corpus(f"voxceleb1:{root}", cache_dir=tmp_path / "cache2")
    assert c2.trials["dev"] == dev


def test_voxceleb_without_iden_split(tmp_path):
    root = make_voxceleb(tmp_path / "vox1", with_iden=False)
    c = load_corpus(f"voxceleb:{root / 'wav'}", cache_dir=tmp_path / "cache")  # path = the wav folder
    sid = c.select(subset="speech")
    assert {u.split for u in sid} == {"train"} and not {u.speaker for u in sid} & TRIAL_SPKS
    assert len(c.trials["test"]) == 3


def test_voxceleb_bad_inputs(tmp_path):
    bad = tmp_path / "notvox"
    (bad / "wav" / "speaker1").mkdir(parents=True)
    with pytest.raises(HarnessError, match=str(bad)):
        load_corpus(f"voxceleb1:{bad}", cache_dir=tmp_path / "cache")
    root = make_voxceleb(tmp_path / "vox1")
    with open(root / "veri_test2.txt", "a") as f:
        f.write("1 id10270/x6uYqmx31kE/00001.wav id10999/zzz/00001.wav\n")
    with pytest.raises(HarnessError, match="veri_test2.txt"):
        load_corpus(f"voxceleb1:{root}", cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------- Speech Commands

SC_WORDS = {"yes": 3, "no": 2, "stop": 2, "bed": 2, "marvin": 1}


def make_speechcommands(root: Path) -> Path:
    for w, n in SC_WORDS.items():
        for i in range(n):
            _audio(root / w / f"{i:02d}ab{w[:2]}cd_nohash_{i}.wav", 1.0, seed=i)
    _audio(root / "_background_noise_" / "white_noise.wav", 12.0)
    _audio(root / "_background_noise_" / "running_tap.wav", 10.0, seed=3)
    (root / "validation_list.txt").write_text("yes/01abyecd_nohash_1.wav\nbed/00abbecd_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/02abyecd_nohash_2.wav\nno/01abnocd_nohash_1.wav\n")
    (root / "README.md").write_text("not a word\n")
    return root


def test_speechcommands_labels_splits_silence(tmp_path):
    root = make_speechcommands(tmp_path / "speech_commands_v0.01")
    c = load_corpus(f"speechcommands:{root}", cache_dir=tmp_path / "cache")
    assert (c.name, c.kind) == ("speechcommands", "real")
    assert all(u.subset == "kws" for u in c.utterances)
    words = [u for u in c.utterances if u.custom["keyword"] != "_silence_"]
    assert len(words) == 10
    by_id = {u.id: u for u in words}
    assert by_id["yes_01abyecd_nohash_1"].split == "dev"
    assert by_id["yes_02abyecd_nohash_2"].split == "test"
    assert by_id["no_01abnocd_nohash_1"].split == "test"
    assert by_id["bed_00abbecd_nohash_0"].split == "dev"
    assert by_id["yes_00abyecd_nohash_0"].split == "train"
    assert by_id["bed_01abbecd_nohash_1"].custom["keyword"] == "_unknown_"
    assert by_id["bed_01abbecd_nohash_1"].text == "bed"
    assert by_id["marvin_00abmacd_nohash_0"].custom["keyword"] == "_unknown_"
    assert by_id["stop_00abstcd_nohash_0"].custom["keyword"] == "stop"
    assert by_id["stop_00abstcd_nohash_0"].speaker == "00abstcd"
    sil = c.select(subset="kws")
    sil = [u for u in sil if u.custom["keyword"] == "_silence_"]
    n_per = {"train": 100, "dev": 10, "test": 10}
    for split, n in n_per.items():
        assert len([u for u in sil if u.split == split]) == 2 * n  # two noise files
    for u in sil:
        assert u.duration == 1.0 and "_background_noise_" in u.path
        info = sf.info(u.path)
        assert 0 <= u.offset and u.offset + 1.0 <= info.frames / info.samplerate + 1e-9
        x, _ = sf.read(u.path, start=round(u.offset * SR), frames=SR)
        assert len(x) == SR
    # disjoint regions: train clips start in the first 80 % of a 12-s file, test ones in the last 10 %
    white = [u for u in sil if "white_noise" in u.id]
    assert max(u.offset for u in white if u.split == "train") <= 0.8 * 12 - 1.0 + 1e-9
    assert min(u.offset for u in white if u.split == "test") >= 0.9 * 12 - 1e-9
    assert set(c.meta["labels"]) == {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                                     "_unknown_", "_silence_"}


def test_speechcommands_parent_folder_and_official_test_set(tmp_path):
    make_speechcommands(tmp_path / "sc" / "speech_commands_v0.01")
    ts = tmp_path / "sc" / "speech_commands_test_set_v0.01"
    _audio(ts / "yes" / "ffab0000_nohash_0.wav", 1.0)
    _audio(ts / "_unknown_" / "bed_ffab0001_nohash_0.wav", 1.0)
    _audio(ts / "_silence_" / "silence_0.wav", 1.0)
    c = load_corpus(f"speech_commands:{tmp_path / 'sc'}", cache_dir=tmp_path / "cache")
    test = c.select(split="test")
    assert sorted(u.custom["keyword"] for u in test) == ["_silence_", "_unknown_", "yes"]
    assert "yes_02abyecd_nohash_2" not in {u.id for u in c.utterances}  # testing_list dropped
    unk = next(u for u in test if u.custom["keyword"] == "_unknown_")
    assert (unk.text, unk.speaker) == ("bed", "ffab0001")


def test_speechcommands_bad_layout(tmp_path):
    d = tmp_path / "sc"
    (d / "yes").mkdir(parents=True)  # no list files
    with pytest.raises(HarnessError, match=str(d)):
        load_corpus(f"speechcommands:{d}", cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------- specs


def test_spec_schema_folder_and_prefixes(tmp_path):
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    _audio(tmp_path / "corp" / "a.wav", 0.5)
    rec = Recording.from_file(str(tmp_path / "corp" / "a.wav"), recording_id="a")
    sup = SupervisionSegment(id="a", recording_id="a", start=0, duration=0.5, text="HI",
                             custom={"split": "dev"})
    save_manifests(tmp_path / "corp", RecordingSet.from_recordings([rec]), SupervisionSet.from_segments([sup]),
                   {"name": "synth", "kind": "synth"})
    for spec in (str(tmp_path / "corp"), f"synth:{tmp_path / 'corp'}"):
        c = load_corpus(spec)
        assert c.kind == "synth" and [u.id for u in c.utterances] == ["a"] and c.utterances[0].split == "dev"
    with pytest.raises(HarnessError, match="librispeech:PATH"):
        load_corpus(f"timit:{tmp_path}")
    with pytest.raises(HarnessError, match="does not exist"):
        load_corpus(str(tmp_path / "missing"))
    assert parse_spec(f"LibriSpeech:{tmp_path}") == ("librispeech", tmp_path)


def test_bare_real_corpus_path_gets_a_hint(tmp_path):
    root = make_librispeech(tmp_path / "data")
    with pytest.raises(HarnessError, match="librispeech:"):
        load_corpus(str(root))


def test_default_cache_next_to_the_data(tmp_path):
    root = make_speechcommands(tmp_path / "speech_commands_v0.01")
    c = load_corpus(f"speechcommands:{root}")
    assert c.root.parent == tmp_path / ".harness_cache" and (c.root / "corpus.json").exists()
    assert c.meta["source"] == str(root.resolve())
