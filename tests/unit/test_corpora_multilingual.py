"""FLEURS, Common Voice and ML-SUPERB loaders on tiny trees written in each corpus's real layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.audio import load_audio
from harness.data.corpora import load_corpus
from harness.data.corpora_multilingual import FEWSHOT_LANGUAGES
from harness.errors import HarnessError


def _audio(path: Path, seconds: float, sr: int = 16000, seed: int = 0, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))
    sf.write(str(path), x.astype("float32"), sr, format=fmt)


# ---------------------------------------------------------------- FLEURS (lhotse download_fleurs layout)

FLEURS = {  # lang -> split -> [(prompt id, file stem, text, seconds)]
    "af_za": {"train": [("1001", "111", "hallo wêreld", 0.5), ("1001", "112", "hallo wêreld", 0.6)],
              "dev": [("1002", "121", "goeie môre", 0.4)], "test": [("1003", "131", "totsiens", 0.3)]},
    "sw_ke": {"train": [("1001", "211", "habari dunia", 0.5)], "dev": [("1002", "221", "habari ya asubuhi", 0.4)],
              "test": [("1003", "231", "kwaheri", 0.3)]},
}


def make_fleurs(root: Path) -> Path:
    for lang, splits in FLEURS.items():
        for split, rows in splits.items():
            lines = []
            for i, (pid, stem, text, sec) in enumerate(rows):
                _audio(root / lang / split / f"{stem}.wav", sec, seed=i)
                chars = " ".join("|".join(text.split())) + " |"
                lines.append("\t".join([pid, f"{stem}.wav", text.capitalize() + ".", text, chars,
                                        str(int(sec * 16000)), "FEMALE"]))
            (root / "metadata" / lang).mkdir(parents=True, exist_ok=True)
            (root / "metadata" / lang / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_fleurs_schema(tmp_path):
    make_fleurs(tmp_path / "data" / "fleurs")
    c = load_corpus(f"fleurs:{tmp_path / 'data'}", cache_dir=tmp_path / "cache")  # parent of fleurs/
    assert (c.name, c.kind) == ("fleurs", "real")
    assert len(c.utterances) == 7 and c.meta["languages"] == ["af_za", "sw_ke"]
    by = {u.id: u for u in c.utterances}
    u = by["af_za-train-112"]
    assert (u.text, u.language, u.split, u.subset) == ("hallo wêreld", "af_za", "train", "speech")
    assert u.custom["dataset"] == "fleurs" and u.custom["lang_class"] == "normal"
    assert u.custom["raw_text"] == "Hallo wêreld." and u.duration == pytest.approx(0.6)
    assert by["sw_ke-test-231"].split == "test" and by["sw_ke-dev-221"].text == "habari ya asubuhi"
    assert load_audio(u.path, u.offset, u.duration).numel() == 9600
    assert c.meta["counts"] == {"speech/dev": 2, "speech/test": 2, "speech/train": 3}


def test_fleurs_bad_layout(tmp_path):
    root = make_fleurs(tmp_path / "fleurs")
    (root / "af_za" / "dev" / "121.wav").unlink()
    with pytest.raises(HarnessError, match=r"dev.tsv:1: audio file .*121.wav is missing"):
        load_corpus(f"fleurs:{root}", cache_dir=tmp_path / "cache")
    _audio(root / "af_za" / "dev" / "121.wav", 0.4)
    (root / "metadata" / "sw_ke" / "test.tsv").unlink()
    with pytest.raises(HarnessError, match=r"sw_ke/test.tsv is missing"):
        load_corpus(f"fleurs:{root}", cache_dir=tmp_path / "cache2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match=r"metadata/<lang>"):
        load_corpus(f"fleurs:{tmp_path / 'empty'}", cache_dir=tmp_path / "cache")
    root2 = make_fleurs(tmp_path / "f2")
    (root2 / "metadata" / "af_za" / "test.tsv").write_text("1003\t131.wav\tonly three\n")
    with pytest.raises(HarnessError, match=r"test.tsv:1: expected 7 tab-separated columns"):
        load_corpus(f"fleurs:{root2}", cache_dir=tmp_path / "cache3")


# ---------------------------------------------------------------- Common Voice (mp3 clips, 48 kHz)

CV_V15 = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
          "gender", "accents", "variant", "locale", "segment"]
CV_V7 = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent", "locale", "segment"]


def make_cv(root: Path, lang: str, header=CV_V15, missing_clip: bool = False) -> Path:
    d = root / lang
    rows = {"train": [("spk1", "a", "Hello there."), ("spk2", "b", "Good [noise] morning!")],
            "dev": [("spk3", "c", "How are you?")], "test": [("spk4", "d", "Fine, thanks.")]}
    for split, items in rows.items():
        lines = ["\t".join(header)]
        for i, (spk, n, text) in enumerate(items):
            clip = f"common_voice_{lang}_{n}.mp3"
            if not (missing_clip and n == "b"):
                _audio(d / "clips" / clip, 0.5 + 0.1 * i, sr=48000, seed=i, fmt="MP3")
            vals = {"client_id": spk, "path": clip, "sentence": text, "age": "twenties", "gender": "female",
                    "accents": "", "accent": "", "variant": "", "locale": lang}
            lines.append("\t".join(vals.get(h, "0") for h in header))
        (d / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_soundfile_reads_mp3(tmp_path):
    _audio(tmp_path / "x.mp3", 1.0, sr=48000, fmt="MP3")
    assert sf.info(str(tmp_path / "x.mp3")).format == "MP3"
    assert load_audio(tmp_path / "x.mp3").numel() == 16000


@pytest.mark.parametrize("header", [CV_V15, CV_V7], ids=["v15", "pre-v15"])
def test_commonvoice_schema(tmp_path, header):
    root = make_cv(tmp_path / "cv-corpus", "cy", header=header, missing_clip=True)
    c = load_corpus(f"commonvoice:{root}", cache_dir=tmp_path / "cache")
    assert (c.name, c.kind) == ("commonvoice", "real")
    by = {u.id: u for u in c.utterances}
    assert set(by) == {"common_voice_cy_a", "common_voice_cy_c", "common_voice_cy_d"}  # clip b is missing
    u = by["common_voice_cy_a"]
    assert (u.text, u.language, u.speaker, u.split) == ("Hello there.", "cy", "spk1", "train")
    assert u.custom["dataset"] == "commonvoice" and u.custom["lang_class"] == "normal"
    assert u.sampling_rate == 48000 and u.duration == pytest.approx(0.5, abs=0.01) and u.path.endswith(".mp3")
    assert by["common_voice_cy_c"].split == "dev" and by["common_voice_cy_d"].split == "test"
    assert load_audio(u.path).numel() == pytest.approx(8000, abs=40)
    assert any("1 clips listed" in n for n in c.meta["notes"])
    assert u.custom["age"] == "twenties"


def test_commonvoice_language_folder_and_bad_header(tmp_path):
    root = make_cv(tmp_path / "cv", "eu", header=CV_V7)
    c = load_corpus(f"cv:{root / 'eu'}", cache_dir=tmp_path / "cache")  # one language's folder
    assert {u.language for u in c.utterances} == {"eu"} and len(c.utterances) == 4
    (root / "eu" / "dev.tsv").write_text("client_id\tfile\tsentence\nx\ty.mp3\thi\n")
    with pytest.raises(HarnessError, match=r"dev.tsv: column\(s\) path missing"):
        load_corpus(f"commonvoice:{root}", cache_dir=tmp_path / "cache2")
    with pytest.raises(HarnessError, match=r"clips/<clip>.mp3"):
        load_corpus(f"commonvoice:{tmp_path}", cache_dir=tmp_path / "cache3")


# ---------------------------------------------------------------- ML-SUPERB release

def make_mlsuperb(root: Path) -> Path:
    """Two datasets; eng normal, lit few-shot (8 train utts), one over-long train file."""
    spec = {("mls", "eng"): 4, ("voxpopuli", "eng"): 2, ("commonvoice", "lit"): 8}
    for (ds, lang), n_train in spec.items():
        d = root / ds / lang
        prefix = {"mls": "mls", "voxpopuli": "voxpopuli", "commonvoice": "cv"}[ds]
        ids = [f"{prefix}_{lang}_{i:06d}" for i in range(n_train + 2)]
        for i, uid in enumerate(ids):
            _audio(d / "wav" / f"{uid}.wav", 0.3 + 0.05 * i, seed=i)
        train = ids[:n_train]
        ten = train[: max(1, n_train // 2)] if lang == "eng" else train[:6]
        line = lambda u: f"{u} 1.2 [laugh] text of {u}, ok.\n"  # noqa: E731
        (d / "transcript_10min_train.txt").write_text("".join(map(line, ten)))
        (d / "transcript_1h_train.txt").write_text("".join(map(line, train)))
        (d / "transcript_10min_dev.txt").write_text(line(ids[n_train]))
        (d / "transcript_10min_test.txt").write_text(line(ids[n_train + 1]))
    _audio(root / "mls" / "eng" / "wav" / "mls_eng_000003.wav", 21.0)  # > 20 s: dropped from train
    return root


def test_mlsuperb_schema(tmp_path):
    root = make_mlsuperb(tmp_path / "eighth_version")
    assert "lit" in FEWSHOT_LANGUAGES and "eng" not in FEWSHOT_LANGUAGES
    c = load_corpus(f"mlsuperb:{tmp_path}", cache_dir=tmp_path / "cache")  # the folder holding the release
    assert (c.name, c.kind) == ("mlsuperb", "real") and c.meta["source"] == str(root.resolve())
    by = {u.id: u for u in c.utterances}
    u = by["mls_eng_000001"]
    assert u.text == "[laugh] text of mls_eng_000001, ok." and u.language == "eng" and u.speaker is None
    assert u.custom == {"split": "train", "subset": "speech", "dataset": "mls", "lang_class": "normal",
                        "budgets": ["10min", "1h"]}
    assert by["mls_eng_000002"].custom["budgets"] == ["1h"]
    assert "mls_eng_000003" not in by  # 21 s train file
    assert any("over 20 s" in n for n in c.meta["notes"])
    assert by["mls_eng_000004"].split == "dev" and by["mls_eng_000005"].split == "test"
    assert by["voxpopuli_eng_000000"].custom["dataset"] == "voxpopuli"
    lit_train = [x for x in c.select(split="train") if x.language == "lit"]
    assert len(lit_train) == 5 and all(x.custom["lang_class"] == "fewshot" for x in lit_train)
    assert all(x.custom["budgets"] == ["10min", "1h"] for x in lit_train)
    assert {x.id for x in lit_train} <= {f"cv_lit_{i:06d}" for i in range(6)}  # drawn from the 10-min set
    assert [x.custom["lang_class"] for x in c.select(split="test") if x.language == "lit"] == ["fewshot"]
    assert c.meta["fewshot_languages"] == ["lit"] and c.meta["mono_pairs"] == {"eng1": ["eng", "mls"],
                                                                                 "eng3": ["eng", "voxpopuli"]}
    assert c.meta["budgets"] == {"10min": 2 + 1 + 5, "1h": 3 + 2 + 5}
    # a seeded draw: the same 5 on a rebuild; an id list overrides it
    c2 = load_corpus(f"mlsuperb:{root}", cache_dir=tmp_path / "cache2")
    assert {x.id for x in c2.select(split="train") if x.language == "lit"} == {x.id for x in lit_train}
    from harness.data.corpora_multilingual import load_mlsuperb

    (tmp_path / "few.txt").write_text("cv_lit_000007\ncv_lit_000001\nfleurs_dan_000001\n")
    c3 = load_mlsuperb(root, cache_dir=tmp_path / "cache3", fewshot_ids_file=tmp_path / "few.txt")
    assert sorted(x.id for x in c3.select(split="train") if x.language == "lit") == ["cv_lit_000001", "cv_lit_000007"]


def test_mlsuperb_bad_layout(tmp_path):
    root = make_mlsuperb(tmp_path / "rel")
    (root / "mls" / "eng" / "wav" / "mls_eng_000004.wav").unlink()
    with pytest.raises(HarnessError, match=r"transcript_10min_dev.txt: utterance mls_eng_000004: audio file"):
        load_corpus(f"mlsuperb:{root}", cache_dir=tmp_path / "c1")
    root = make_mlsuperb(tmp_path / "rel2")
    (root / "voxpopuli" / "eng" / "transcript_10min_dev.txt").unlink()
    with pytest.raises(HarnessError, match=r"voxpopuli/eng: .*transcript_10min_dev.txt is missing"):
        load_corpus(f"mlsuperb:{root}", cache_dir=tmp_path / "c2")
    root = make_mlsuperb(tmp_path / "rel3")
    (root / "mls" / "eng" / "transcript_1h_train.txt").write_text("mls_eng_000000 only-two\n")
    with pytest.raises(HarnessError, match=r"transcript_1h_train.txt:1: expected"):
        load_corpus(f"mlsuperb:{root}", cache_dir=tmp_path / "c3")
    (tmp_path / "nothing" / "x").mkdir(parents=True)
    with pytest.raises(HarnessError, match=r"not an ML-SUPERB release folder"):
        load_corpus(f"mlsuperb:{tmp_path / 'nothing'}", cache_dir=tmp_path / "c4")


def test_bare_paths_get_hints(tmp_path):
    make_mlsuperb(tmp_path / "rel")
    make_fleurs(tmp_path / "fl")
    make_cv(tmp_path / "cv", "cy")
    for name, spec in (("mlsuperb", "rel"), ("fleurs", "fl"), ("commonvoice", "cv")):
        with pytest.raises(HarnessError, match=f"use {name}:"):
            load_corpus(str(tmp_path / spec))
