"""A toy corpus for tests and benchmarks: "phones" are tone chords with a phone alignment.

Each utterance is a sequence of segments drawn from `n_phones` chords (two sinusoids each) and
"sil" (faint noise), 40-160 ms long, written in the corpus schema (harness.data.corpus) with
custom["alignment"] = [[phone, start_s, end_s], ...], split train/dev, subset "speech". It is
seconds to make, deterministic in the seed, and learnable by a tiny HuBERT in a few hundred steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

from harness.data.corpus import Corpus, load_manifest_dir, save_manifests

SR = 16000


def _chords(n: int, seed: int) -> Dict[str, Tuple[float, float]]:
    rng = np.random.default_rng(seed + 101)
    base = np.linspace(250, 1800, n)
    return {f"p{i}": (float(base[i]), float(base[i] * rng.uniform(1.6, 2.6))) for i in range(n)}


def make_toy_corpus(root: Path, n_train: int = 24, n_dev: int = 6, n_phones: int = 8, min_s: float = 1.0,
                    max_s: float = 2.5, seed: int = 0, languages: Sequence[str] = ("toy",)) -> Corpus:
    """Write the toy corpus into `root` (created) and return it loaded. Utterance i is in
    language languages[i % len(languages)] (repeat a name to make the languages imbalanced)."""
    import soundfile as sf
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chords = _chords(n_phones, seed)
    names = list(chords)
    recs, sups = [], []
    for i in range(n_train + n_dev):
        uid = f"toy-{i:04d}"
        n = int(rng.uniform(min_s, max_s) * SR)
        x = np.zeros(n, np.float32)
        ali, t = [], 0
        while t < n:
            seg = min(n - t, int(rng.uniform(0.04, 0.16) * SR))
            ph = "sil" if rng.random() < 0.15 else names[int(rng.integers(n_phones))]
            tt = np.arange(seg) / SR
            if ph == "sil":
                y = 0.003 * rng.standard_normal(seg)
            else:
                f1, f2 = chords[ph]
                env = np.minimum(1.0, np.minimum(tt, tt[::-1]) / 0.005)
                y = env * (0.25 * np.sin(2 * np.pi * f1 * tt + rng.uniform(0, 6.3))
                           + 0.15 * np.sin(2 * np.pi * f2 * tt + rng.uniform(0, 6.3)))
                y = y + 0.003 * rng.standard_normal(seg)
            x[t: t + seg] = y
            ali.append([ph, round(t / SR, 5), round((t + seg) / SR, 5)])
            t += seg
        path = root / "audio" / f"{uid}.wav"
        sf.write(path, x, SR, subtype="FLOAT")
        rec = Recording.from_file(path, recording_id=uid)
        recs.append(rec)
        split = "train" if i < n_train else "dev"
        sups.append(SupervisionSegment(
            id=uid, recording_id=uid, start=0, duration=rec.duration, channel=0,
            language=languages[i % len(languages)],
            speaker=f"spk{i % 3}", text=" ".join(a[0] for a in ali),
            custom={"split": split, "subset": "speech", "alignment": ali,
                    "phones": " ".join(a[0] for a in ali if a[0] != "sil")}))
    save_manifests(root, RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups),
                   {"name": "toy", "kind": "synth", "size": "toy", "seed": seed})
    return load_manifest_dir(root)


def phone_labels(corpus: Corpus, ids=None, frames=None) -> Tuple[Dict[str, np.ndarray], Dict[str, int]]:
    """Frame labels = the aligned phone of each model frame (phone -> index), per utterance id;
    `frames` is the model's family config (default HubertConfig: 50 Hz)."""
    from harness.pretrain.labels import num_frames
    from harness.pretrain.quality import frame_phones
    from upstreams.hubert import HubertConfig

    frames = frames if frames is not None else HubertConfig()

    inv: Dict[str, int] = {}
    out: Dict[str, np.ndarray] = {}
    for u in corpus.utterances:
        if ids is not None and u.id not in ids:
            continue
        n = num_frames(frames, int(round(u.duration * SR)))
        ph = frame_phones(u.custom["alignment"], n, frames)
        out[u.id] = np.array([inv.setdefault(p, len(inv)) if p is not None else -1 for p in ph], dtype=np.int64)
    return out, inv
