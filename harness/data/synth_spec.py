"""The pieces of a synth plan (harness/data/synth_plan.py): the corpus sizes, the speakers
(seeded streams over espeak-ng voice variants), the planned items and the plan itself, and the
constants every planner shares.

Held-out speakers are drawn from their own stream over reserved voice variants (`variant_pools`),
so no held-out voice timbre is ever a training or pre-training voice. `split_speakers` gives the
two-speaker items and babble their speakers by split, and `with_speech_datasets` names each
loaded speech utterance's dataset by its speaker's rate.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from harness.data.synth_text import rng_for
from harness.errors import HarnessError

#: v1 wrote "synth-2"; v2 ("synth-v2", docs/synth.md) draws held-out speakers from their own
#: stream over reserved voices and gives every recording its own voice jitter, channel, room
#: and noise (synth_conditions)
GENERATOR_VERSION = "synth-v2"
HELDOUT_VARIANT_SHARE = 1 / 3
SAMPLE_RATE = 16000
SPLITS = ("train", "dev", "test")

# The second level of multilingual sampling (language -> dataset, mHuBERT-147's up-sampling):
# every synth speech utterance is "synth" on disk; loading names its dataset by the speaker's
# speaking style, so every language holds a big "synth-read" and a small "synth-fast" set
# (about 1 in 4 speakers: rates are drawn uniformly from 140..210 wpm). Derived from the
# speakers the plan already drew: no audio, text, split or subset changes, and a corpus
# generated before this still loads with both levels.
FAST_WPM = 200

# espeak-ng voice variants used as speaker timbres, with the gender their files declare
# ("n": none declared). Variants that saturate or sound like effects (robots, whisper,
# "Demonic", ...) are left out.
VARIANTS: Tuple[Tuple[str, str], ...] = (
    ("f1", "f"), ("f2", "f"), ("f3", "f"), ("f4", "f"), ("f5", "f"), ("Alicia", "f"),
    ("Andrea", "f"), ("Annie", "f"), ("anika", "f"), ("aunty", "f"), ("belinda", "f"),
    ("linda", "f"), ("steph", "f"), ("steph2", "f"), ("steph3", "f"), ("grandma", "f"),
    ("m1", "m"), ("m2", "m"), ("m3", "m"), ("m4", "m"), ("m5", "m"), ("m6", "m"), ("m7", "m"),
    ("m8", "m"), ("Andy", "m"), ("Denis", "m"), ("Diogo", "m"), ("Henrique", "m"),
    ("Hugo", "m"), ("michel", "m"), ("miguel", "m"), ("sandro", "m"), ("travis", "m"),
    ("victor", "m"), ("Lee", "m"), ("croak", "m"),
    ("klatt", "n"), ("klatt2", "n"), ("klatt3", "n"), ("klatt4", "n"), ("adam", "n"),
    ("boris", "n"), ("david", "n"), ("max", "n"), ("quincy", "n"), ("rob", "n"),
)


@dataclass(frozen=True)
class SizeSpec:
    """One corpus size. `utts[class] = (train, dev, test)` speech utterances per language of
    that class ("en" has its own entry); `kws` = clips per class per split; `mix`, `conv`,
    `noise` = (train, dev, test) two-speaker mixtures, conversations and noise clips."""

    name: str
    languages: Tuple[Tuple[str, str], ...]  # (code, class) in order
    utts: Dict[str, Tuple[int, int, int]]
    train_speakers: int
    heldout_speakers: int
    asv_utts: int
    kws: Tuple[int, int, int]
    shard_seconds: float
    mix: Tuple[int, int, int] = (0, 0, 0)
    conv: Tuple[int, int, int] = (0, 0, 0)
    noise: Tuple[int, int, int] = (0, 0, 0)


SIZES: Dict[str, SizeSpec] = {
    "tiny": SizeSpec(
        "tiny",
        (("en", "high"), ("de", "high"), ("fr", "low"), ("es", "fewshot")),
        {"en": (30, 8, 8), "high": (16, 6, 6), "low": (10, 4, 4), "fewshot": (5, 4, 4)},
        train_speakers=8, heldout_speakers=6, asv_utts=6, kws=(8, 3, 3), shard_seconds=90,
        mix=(48, 4, 4), conv=(10, 4, 4), noise=(6, 2, 2),
    ),
    "small": SizeSpec(
        "small",
        (("en", "high"), ("de", "high"), ("fr", "high"), ("es", "high"),
         ("it", "low"), ("pt", "low"), ("nl", "low"), ("ru", "low"), ("pl", "low"),
         ("sv", "fewshot"), ("tr", "fewshot"), ("fi", "fewshot")),
        {"en": (240, 50, 50), "high": (100, 25, 25), "low": (30, 10, 10),
         "fewshot": (5, 10, 10)},
        train_speakers=40, heldout_speakers=44, asv_utts=8, kws=(40, 10, 10),
        shard_seconds=300, mix=(160, 40, 40), conv=(100, 25, 25), noise=(30, 10, 10),
    ),
    "medium": SizeSpec(
        "medium",
        tuple([("en", "high"), ("de", "high"), ("fr", "high"), ("es", "high")]
              + [(c, "low") for c in ("it", "pt", "nl", "ru", "pl", "cs", "hu", "el", "ro",
                                      "id", "sw", "hi", "vi", "ko", "uk", "bg", "hr", "da",
                                      "ca", "eu", "et")]
              + [(c, "fewshot") for c in ("sv", "tr", "fi", "lt", "lv", "sk", "sl", "cy",
                                          "ta")]),
        {"en": (1200, 200, 200), "high": (500, 80, 80), "low": (100, 25, 25),
         "fewshot": (5, 25, 25)},
        train_speakers=100, heldout_speakers=48, asv_utts=12, kws=(150, 30, 30),
        shard_seconds=400, mix=(1000, 200, 200), conv=(600, 100, 100), noise=(200, 50, 50),
    ),
}


def size_spec(size: str) -> SizeSpec:
    if size not in SIZES:
        raise HarnessError(f"unknown synth size {size!r}; choose one of {', '.join(SIZES)}")
    return SIZES[size]


@dataclass(frozen=True)
class Speaker:
    id: str
    variant: str
    gender: str  # "f" | "m" | "n" (the variant declares none)
    pitch: int  # espeak pitch 0..100
    range: int  # espeak pitch range 0..100
    rate: int  # words per minute
    level_db: float  # RMS level of this speaker's recordings, dBFS
    role: str  # "train" (speech, kws) | "heldout" (asv only)
    asv_split: Optional[str] = None


@dataclass
class Item:
    """One planned recording (and its supervision). `kind` picks the renderer."""

    id: str
    kind: str  # "speech" | "word" | "noise" | "mix" | "conv" | "noise_clip"
    subset: str  # "speech" | "asv" | "kws" | "mix" | "conv" | "noise"
    split: str
    path: str  # relative to the corpus folder
    text: str = ""
    language: Optional[str] = None
    speaker: Optional[str] = None
    gender: Optional[str] = None
    voice: str = ""  # espeak voice with variant, e.g. "de+f3"
    lang_voice: str = ""  # espeak voice of the language (for text_to_phonemes)
    rate: int = 175
    pitch: int = 50
    range: int = 50
    level_db: float = -23.0
    seed: int = 0  # seeds espeak's noise generators for this item
    custom: Dict = field(default_factory=dict)
    render: Dict = field(default_factory=dict)  # renderer-specific parameters

    def est_seconds(self) -> float:
        """Rough render cost in seconds of synthesised speech (sizes the shards)."""
        if self.kind == "speech":
            return 0.5 + 0.36 * len(self.text.split())
        texts = self.render.get("texts")
        if texts:  # items that synthesise several sentences (mix, conv, babble)
            return sum(0.5 + 0.36 * len(t.split()) for t in texts)
        return 1.0


@dataclass
class Plan:
    size: str
    seed: int
    languages: Dict[str, dict]
    speakers: List[Speaker]
    items: List[Item]
    trials: Dict[str, List[tuple]]

    def digest(self) -> str:
        """A hash of everything the plan decides (to recognise a partial run of the same plan)."""
        blob = json.dumps([asdict(i) for i in self.items], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def shards(self, shard_seconds: float) -> List[List[Item]]:
        """Consecutive items grouped into shards of about `shard_seconds` of audio (fixed by the
        plan, never by the number of workers)."""
        out, cur, acc = [], [], 0.0
        for it in self.items:
            cur.append(it)
            acc += it.est_seconds()
            if acc >= shard_seconds:
                out.append(cur)
                cur, acc = [], 0.0
        if cur:
            out.append(cur)
        return out


def variant_pools(seed: int) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(train variants, held-out variants): a seeded third of each gender's espeak variants is
    reserved for held-out speakers, whatever the size, so no held-out voice timbre is ever a
    training or pre-training voice."""
    rng = rng_for(seed, "variant-split")
    train, held = [], []
    for g in ("f", "m", "n"):
        names = [v for v, gender in VARIANTS if gender == g]
        order = [names[int(j)] for j in rng.permutation(len(names))]
        k = int(round(len(names) * HELDOUT_VARIANT_SHARE))
        held += order[:k]
        train += order[k:]
    return tuple(sorted(train)), tuple(sorted(held))


def _speaker_stream(seed: int, tag: str, variants: Tuple[str, ...], n: int) -> List[tuple]:
    """The first `n` speakers of one seeded stream: (variant, gender, pitch, range, rate, level),
    unique by (variant, pitch, range, rate). Every size takes a prefix of the same stream."""
    gender = dict(VARIANTS)
    rng = rng_for(seed, tag)
    order = rng.permutation(len(variants))
    seen, out, i = set(), [], 0
    while len(out) < n:
        variant = variants[int(order[i % len(variants)])]
        i += 1
        pitch = int(rng.integers(5, 16)) * 5  # 25..75
        rng_ = int(rng.integers(2, 9)) * 10  # 20..80
        rate = int(rng.integers(14, 22)) * 10  # 140..210 wpm
        level = round(float(rng.uniform(-26.0, -20.0)), 1)
        key = (variant, pitch, rng_, rate)
        if key in seen:
            continue
        seen.add(key)
        out.append((variant, gender[variant], pitch, rng_, rate, level))
    return out


def make_speakers(spec: SizeSpec, seed: int) -> List[Speaker]:
    """Train speakers then held-out speakers, from two streams over disjoint voice variants
    (`variant_pools`): the held-out speakers of every size are never training (or pre-training)
    speakers of any size. Held-out speakers alternate dev / test (even index dev), so a prefix of
    the stream splits the same way in every size."""
    train_v, held_v = variant_pools(seed)
    out = []
    for role, tag, variants, n in (("train", "speakers-train", train_v, spec.train_speakers),
                                   ("heldout", "speakers-heldout", held_v, spec.heldout_speakers)):
        for k, (variant, gender, pitch, rng_, rate, level) in enumerate(
                _speaker_stream(seed, tag, variants, n)):
            asv_split = None if role == "train" else ("dev" if k % 2 == 0 else "test")
            out.append(Speaker(f"{variant}-p{pitch}-r{rng_}-w{rate}", variant, gender, pitch, rng_,
                               rate, level, role, asv_split))
    return out


def speaker_fields(spk: Speaker, lang_voice: str) -> dict:
    return dict(speaker=spk.id, gender=spk.gender, voice=f"{lang_voice}+{spk.variant}",
                lang_voice=lang_voice, rate=spk.rate, pitch=spk.pitch, range=spk.range,
                level_db=spk.level_db)


def speech_dataset(rate_wpm: int) -> str:
    """The synth dataset of a speech utterance by its speaker's rate: synth-read | synth-fast."""
    return "synth-fast" if int(rate_wpm) >= FAST_WPM else "synth-read"


def with_speech_datasets(corpus):
    """A loaded synth corpus whose speech utterances name their dataset (`speech_dataset` of the
    speaker's rate, from corpus.json's speakers) instead of the "synth" written on disk. Other
    subsets and other corpora are returned unchanged."""
    from dataclasses import replace

    speakers = corpus.meta.get("speakers") or {}
    if corpus.meta.get("name") != "synth" or not speakers:
        return corpus
    corpus.utterances = [
        replace(u, custom={**u.custom, "dataset": speech_dataset(speakers[u.speaker]["rate"])})
        if u.subset == "speech" and u.custom.get("dataset") == "synth" and u.speaker in speakers else u
        for u in corpus.utterances]
    return corpus


def split_speakers(speakers: List[Speaker], split: str) -> List[Speaker]:
    """The speaker pool of two-speaker items and babble in `split`: the "train" speakers for
    train, the held-out (ASV) speakers of that asv_split for dev / test."""
    if split == "train":
        return [s for s in speakers if s.role == "train"]
    return [s for s in speakers if s.role == "heldout" and s.asv_split == split]
