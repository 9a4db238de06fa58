"""Word segments recovered from a phone alignment and espeak's mnemonic transcription, and the
word-level PWCCA (cca_word) on features with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from harness.analysis import cca, labels as lab, words as W
from harness.data.espeak import synthesize, text_to_phonemes


def test_segments_follow_the_words_marks_removed():
    align = [["sil", 0.0, 0.1], ["f", 0.1, 0.2], ["O@", 0.2, 0.3], ["D", 0.3, 0.35], ["i:", 0.35, 0.4],
             ["z", 0.4, 0.5], ["sil", 0.5, 0.6], ["n_", 0.6, 0.7], ["aI", 0.7, 0.8], ["sil", 0.8, 0.9]]
    assert W.word_segments(align, "fO@ D'i:z_:_: n_,aI") == [("fO@", 0.1, 0.3), ("Diz", 0.3, 0.5), ("naI", 0.6, 0.8)]
    assert W.word_segments(align, "fO@ Di:s naI") is None  # a phone that does not spell the word
    assert W.word_segments(align, "fO@ Di:z") is None  # phones left over
    assert W.word_segments(align, "fO@ Di:z naI aI") is None  # a word without phones


def _utterance(uid, text, seed):
    syn = synthesize(text, voice="en", seed=seed)
    return SimpleNamespace(id=uid, text=text, language="en", custom={"voice": "en+m1", "alignment": syn.alignment})


@pytest.fixture(scope="module")
def utts():
    texts = ["the cat and the dog", "and the man saw the cat", "the dog and the cat ran", "a man and a dog",
             "the cat saw the man and the dog"]
    return [_utterance(f"u{i}", t, i) for i, t in enumerate(texts * 2)]


def test_espeak_transcriptions_match_their_alignments(utts):
    for u in utts:
        segs = W.word_segments(u.custom["alignment"], text_to_phonemes(u.text, "en", ipa=False))
        assert segs is not None and len(segs) == len(u.text.split()), u.text
        assert all(s < e for _, s, e in segs) and all(a[2] <= b[1] for a, b in zip(segs, segs[1:]))


def _features(utts, rate, make):
    """uid -> (T, 2, D): layer 0 from make(word index at each frame), layer 1 noise."""
    rng = np.random.default_rng(0)
    out, index = {}, {}
    for u in utts:
        segs = W.word_segments(u.custom["alignment"], text_to_phonemes(u.text, "en", ipa=False))
        n = int(u.custom["alignment"][-1][2] * rate) + 1
        centres = (np.arange(n) + 0.5) / rate
        word = np.full(n, -1)
        for k, (w, s, e) in enumerate(segs):
            word[(centres >= s) & (centres < e)] = index.setdefault(w, len(index))
        out[u.id] = np.stack([make(word), rng.standard_normal((n, 16))], axis=1).astype(np.float32)
    return out


def test_word_pwcca_is_one_for_word_identity_and_low_for_noise(utts):
    rate = 50.0
    eye = np.eye(16)
    feats = _features(utts, rate, lambda word: eye[word + 1])  # one-hot word identity (silence: column 0)
    layers, names, stats = W.word_sample(utts, feats.__getitem__, rate, min_count=5)
    assert stats["unmatched"] == 0 and stats["kept"] == layers.shape[1] and stats["vocabulary"] >= 2
    assert "and" in set(names)  # labels are pronunciations ("and" is spelt as it sounds)
    onehot = cca.one_hot(lab.label_codes(names)["codes"])
    assert cca.pwcca(layers[0], onehot, None) == pytest.approx(1.0, abs=1e-6)
    noise = cca.pwcca(layers[1], onehot, None)
    assert noise < 0.6  # noise: what 16 dims can fit by chance on a few words


def test_too_few_frequent_words_is_one_line(utts):
    from harness.errors import HarnessError

    feats = _features(utts[:1], 50.0, lambda word: np.eye(16)[word + 1])
    with pytest.raises(HarnessError, match="fewer than two words"):
        W.word_sample(utts[:1], feats.__getitem__, 50.0, min_count=5)
