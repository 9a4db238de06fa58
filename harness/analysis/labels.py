"""Frame-level labels from a corpus's alignments, and the frames the analysis reads.

Phones: a synth utterance carries custom["alignment"] = [[phone, start_s, end_s], ...] (espeak's
phoneme events, harness/data/espeak.py; pauses named "sil"). Frame i of an upstream with frame
rate r Hz is labelled by the segment holding its centre time (i + 0.5) / r.

Words: the alignment stores phones only; harness/analysis/words.py recovers word segments from
it and the utterance's text (cca_word).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from harness.errors import HarnessError

SILENCE = "sil"


def frame_phones(alignment: Sequence[Sequence], n_frames: int, frame_rate_hz: float) -> List[Optional[str]]:
    """The phone at the centre of each frame (None past the alignment's end).

    Args:
        alignment: [[phone, start_s, end_s], ...] in time order.
        n_frames: frames of the utterance's features.
        frame_rate_hz: the upstream's frames per second.
    """
    centres = (np.arange(n_frames) + 0.5) / float(frame_rate_hz)
    starts = np.array([float(s) for _, s, _ in alignment])
    ends = np.array([float(e) for _, _, e in alignment])
    idx = np.searchsorted(starts, centres, side="right") - 1
    out: List[Optional[str]] = []
    for t, i in zip(centres, idx):
        out.append(str(alignment[i][0]) if i >= 0 and t < ends[i] else None)
    return out


@dataclass
class FrameSample:
    """The frames the measures read: speech frames (no silence) of a seeded subset of utterances.

    Attributes:
        layers: (L+1, n, D) float32 features.
        phones: (n,) phone names.
        speakers: (n,) speaker ids.
        utterances: ids of the utterances the frames come from, in order.
    """

    layers: np.ndarray
    phones: np.ndarray
    speakers: np.ndarray
    utterances: List[str]


def sample_frames(utts, get_features, frame_rate_hz: float, max_frames: int, seed: int = 0) -> FrameSample:
    """Speech frames of whole utterances, taken in a seeded random order until `max_frames`.

    Args:
        utts: harness.data.corpus.Utterance list, each with custom["alignment"] and a speaker.
        get_features: uid -> (T, L+1, D) array (a feature-cache pool's `get`).
        frame_rate_hz: the upstream's frame rate.
        max_frames: stop adding utterances once this many frames are held (the last one is cut).
        seed: the utterance order.
    """
    usable = [u for u in utts if u.custom.get("alignment")]
    if not usable:
        raise HarnessError("no utterance has custom['alignment'] (phone alignments): layer analysis needs a "
                           "corpus with alignments, such as synth")
    order = np.random.default_rng(seed).permutation(len(usable))
    feats: List[np.ndarray] = []
    phones: List[str] = []
    speakers: List[str] = []
    ids: List[str] = []
    total = 0
    for i in order:
        u = usable[int(i)]
        arr = np.asarray(get_features(u.id))
        lab = frame_phones(u.custom["alignment"], arr.shape[0], frame_rate_hz)
        keep = np.array([p is not None and p != SILENCE for p in lab], dtype=bool)
        if not keep.any():
            continue
        take = np.flatnonzero(keep)[: max_frames - total]
        feats.append(arr[take].astype(np.float32))
        phones += [lab[j] for j in take]
        speakers += [str(u.speaker)] * len(take)
        ids.append(u.id)
        total += len(take)
        if total >= max_frames:
            break
    if total == 0:
        raise HarnessError("the sampled utterances hold no speech frames (every frame is silence)")
    layers = np.concatenate(feats, axis=0).transpose(1, 0, 2)  # (L+1, n, D)
    return FrameSample(np.ascontiguousarray(layers), np.array(phones), np.array(speakers), ids)


def label_codes(names: np.ndarray) -> Dict[str, np.ndarray]:
    """{"codes": (n,) int64 0..C-1, "classes": (C,) names} of a label array."""
    classes, codes = np.unique(names, return_inverse=True)
    return {"codes": codes.reshape(-1).astype(np.int64), "classes": classes}
