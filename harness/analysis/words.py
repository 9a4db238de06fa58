"""Word segments of a synth utterance, recovered from its phone alignment and its text.

The synth corpus stores espeak's phone alignment ([[phone, start_s, end_s], ...], pauses "sil")
but no word boundaries. espeak's TextToPhonemes in mnemonic mode gives the same phoneme names
as its synthesis events, with words separated by spaces ("fO@ Di:z r'aIts ..."), so the
boundaries follow by walking the alignment's speech phones word by word: a word ends where the
phones' concatenated names equal the word's. Stress and pause marks (MARKS) are removed from
both sides first, so "r'aIts" matches r aI t s. An utterance whose phones do not spell its
words exactly (espeak translated the sentence differently between the two calls, e.g. a clause
split) gets no segments and is counted, never guessed.

A word's label is its pronunciation (the cleaned mnemonic string): homophones share a label,
which is what a model hearing the audio can tell apart at best.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

#: stress, length-less pause and boundary marks of espeak's mnemonics, removed before matching
MARKS = "',%=_:!|^"


def _clean(s: str) -> str:
    return "".join(c for c in s if c not in MARKS)


def word_segments(alignment: Sequence[Sequence], mnemonics: str) -> Optional[List[Tuple[str, float, float]]]:
    """[(word label, start_s, end_s), ...] of an utterance, or None when its alignment's speech
    phones do not spell `mnemonics`' words exactly.

    Args:
        alignment: [[phone, start_s, end_s], ...] in time order, pauses named "sil".
        mnemonics: espeak's mnemonic transcription of the utterance's text, words separated by
            spaces (harness.data.espeak.text_to_phonemes(text, lang, ipa=False)).
    """
    words = [w for w in (_clean(w) for w in mnemonics.split()) if w]
    speech = [(str(p), float(s), float(e)) for p, s, e in alignment if p != "sil"]
    out: List[Tuple[str, float, float]] = []
    j = 0
    for w in words:
        start, acc = j, ""
        while j < len(speech) and len(acc) < len(w):
            acc += _clean(speech[j][0])
            j += 1
        if acc != w or j == start:
            return None
        out.append((w, speech[start][1], speech[j - 1][2]))
    # trailing phones whose names clean to nothing belong to the last word; anything else: mismatch
    if any(_clean(p) for p, _, _ in speech[j:]) or not out:
        return None
    return out


def utterance_voice(utt) -> str:
    """The espeak voice of an utterance's language: its synth voice without the speaker variant
    ("en+anika" -> "en"), else its language code."""
    voice = str((utt.custom or {}).get("voice") or "")
    return voice.split("+")[0] if voice else str(utt.language or "en")


def word_sample(utts, get_features, frame_rate_hz: float, min_count: int = 5):
    """Mean-pooled word segments of `utts` and their labels, for word-level CCA.

    Args:
        utts: Utterances with text, custom["alignment"] and a language (synth).
        get_features: uid -> (T, L+1, D) array.
        frame_rate_hz: the upstream's frame rate.
        min_count: words seen fewer times are dropped (a one-hot column per rare word would let
            CCA fit the sample rather than measure it).

    Returns:
        (layers (L+1, n, D) float32 means over each word's frames (frame i at (i + 0.5) / rate;
        a word shorter than a frame takes the frame under its midpoint), labels (n,) str,
        stats {"utterances", "unmatched", "words", "kept", "vocabulary"}).
    """
    import collections

    import numpy as np

    from harness.data.espeak import text_to_phonemes
    from harness.errors import HarnessError

    pooled, labels, unmatched = [], [], 0
    for u in utts:
        segs = word_segments(u.custom.get("alignment") or [], text_to_phonemes(u.text, utterance_voice(u), ipa=False))
        if not segs:
            unmatched += 1
            continue
        arr = np.asarray(get_features(u.id), dtype=np.float32)  # (T, L+1, D)
        centres = (np.arange(arr.shape[0]) + 0.5) / float(frame_rate_hz)
        for w, s, e in segs:
            idx = np.flatnonzero((centres >= s) & (centres < e))
            if idx.size == 0:
                idx = np.array([min(int((s + e) / 2 * frame_rate_hz), arr.shape[0] - 1)])
            pooled.append(arr[idx].mean(axis=0))
            labels.append(w)
    counts = collections.Counter(labels)
    keep = [i for i, w in enumerate(labels) if counts[w] >= min_count]
    stats = {"utterances": len(utts), "unmatched": unmatched, "words": len(labels), "kept": len(keep),
             "vocabulary": len({labels[i] for i in keep})}
    if len({labels[i] for i in keep}) < 2:
        raise HarnessError(f"cca_word: fewer than two words seen {min_count} times in the sample ({stats})")
    layers = np.stack([pooled[i] for i in keep], axis=1)  # (L+1, n, D)
    return np.ascontiguousarray(layers), np.array([labels[i] for i in keep]), stats
