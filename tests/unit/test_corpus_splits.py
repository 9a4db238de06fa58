"""Which utterances train, pick the lr and make the test number (issue 36): the split helpers
on hand-made inputs, without audio. Mixing dev into train, or test into dev, would raise every
number on a board and fail nothing that only checks learning."""

from __future__ import annotations

from pathlib import Path

from harness.data.corpora_librispeech import select_parts
from harness.data.corpora_voxceleb import read_iden_split
from harness.data.corpus import Corpus, Utterance
from tasks.base import pools_by_subset_split


def _utt(uid: str, split: str, subset: str = "speech") -> Utterance:
    return Utterance(id=uid, path=f"/x/{uid}.wav", duration=1.0, custom={"split": split, "subset": subset})


def _corpus() -> Corpus:
    utts = [_utt("t1", "train"), _utt("d1", "dev"), _utt("e1", "test"), _utt("t2", "train"),
            _utt("k1", "train", "kws"), _utt("k2", "dev", "kws"), _utt("e2", "test", "kws")]
    return Corpus(name="c", kind="synth", root=Path("/x"), utterances=utts)


def test_select_keeps_one_split_and_subset_in_manifest_order():
    c = _corpus()
    assert [u.id for u in c.select(split="train")] == ["t1", "t2", "k1"]
    assert [u.id for u in c.select(split="dev")] == ["d1", "k2"]
    assert [u.id for u in c.select(split="test")] == ["e1", "e2"]
    assert [u.id for u in c.select(split="train", subset="speech")] == ["t1", "t2"]
    assert [u.id for u in c.select(subset="kws")] == ["k1", "k2", "e2"]
    assert len(c.select()) == 7
    assert _utt("n", "train").split == "train" and Utterance("n", "/x", 1.0).split == "train"  # default


def test_pools_are_whole_subset_split_pools():
    c = _corpus()
    pools = pools_by_subset_split(c, {"train": c.select(split="train", subset="speech")[:1],
                                      "test": c.select(split="test")})
    assert [[u.id for u in p] for p in pools["train"]] == [["t1", "t2"]]
    assert [[u.id for u in p] for p in pools["test"]] == [["e2"], ["e1"]]  # (kws, test), (speech, test)


def test_librispeech_parts_map_to_their_splits(tmp_path):
    for part in ("train-clean-100", "train-clean-360", "dev-clean", "dev-other", "test-clean", "test-other"):
        (tmp_path / part).mkdir()
    assert select_parts(tmp_path) == {"train-clean-100": "train", "dev-clean": "dev", "test-clean": "test"}


def test_voxceleb_iden_split_codes(tmp_path):
    p = tmp_path / "iden_split.txt"
    p.write_text("1 id10001/aa/00001.wav\n2 id10001/aa/00002.wav\n3 id10001/bb/00001.wav\n")
    got = read_iden_split(p)
    assert sorted(got.values()) == ["dev", "test", "train"]
    assert [got[k] for k in sorted(got)] == ["train", "dev", "test"]
