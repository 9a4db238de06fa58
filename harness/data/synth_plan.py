"""The plan of a `synth` corpus: sizes, languages, speakers and the list of items to render.

`make_plan(size, seed)` is pure and deterministic: it decides every item (id, text, voice,
speaker parameters, split, noise spec, ...) from the seed alone, before any audio exists. The
renderer (synth_render) turns items into audio shard by shard. New item kinds (noisy speech,
denoising pairs, ...) are added as a plan function plus a renderer.

Two-speaker items (subsets "mix" and "conv") and babble draw their speakers by split from
`split_speakers`: train from the "train" speakers, dev / test from the held-out speakers of the
ASV set with that asv_split, so no dev / test speaker of separation or diarization is ever heard
in training. Their texts are short English prefixes of the split's UDHR chunks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from harness.data import noise
from harness.data import synth_conditions as conditions
from harness.data.synth_text import load_udhr, rng_for, split_chunks
from harness.errors import HarnessError

#: v1 wrote "synth-2"; v2 ("synth-v2", docs/synth.md) draws held-out speakers from their own
#: stream over reserved voices and gives every recording its own voice jitter, channel, room
#: and noise (synth_conditions)
GENERATOR_VERSION = "synth-v2"
HELDOUT_VARIANT_SHARE = 1 / 3
SAMPLE_RATE = 16000
SPLITS = ("train", "dev", "test")

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "zero",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "learn", "follow",
    "forward", "backward", "visual", "water", "paper", "green", "table", "window", "morning",
    "little", "music", "river", "number", "yellow", "open", "start",
)
KWS_VOICE = "en-us"

# two-speaker items and the noise set
MIX_WORDS = (8, 13)  # words per source sentence: 2-4 s mixtures after min-mode truncation
MIX_REL_DB = (-5.0, 5.0)  # level of source 2 relative to source 1 (Libri2Mix-like spread)
CONV_WORDS = (4, 8)  # words per conversation turn
CONV_TURNS = (4, 6)
CONV_PAUSE_S = (0.1, 0.8)
CONV_MAX_OVERLAP = 0.4  # planned overlap ratio ~ U(0, CONV_MAX_OVERLAP)
NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")
NOISE_SECONDS = 4.0
NOISE_LEVEL_DB = (-35.0, -20.0)
BABBLE_TALKERS = (3, 6)

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


def _speaker_fields(spk: Speaker, lang_voice: str) -> dict:
    return dict(speaker=spk.id, gender=spk.gender, voice=f"{lang_voice}+{spk.variant}",
                lang_voice=lang_voice, rate=spk.rate, pitch=spk.pitch, range=spk.range,
                level_db=spk.level_db)


def plan_speech(spec: SizeSpec, seed: int, speakers: List[Speaker]) -> Tuple[List[Item], dict]:
    """Speech items: per language and split, chunks cycled in a seeded order; speakers dealt
    round-robin per split (shared over languages) so each has utterances in every split, never
    the same text twice for one speaker."""
    udhr = load_udhr()
    train_spk = [s for s in speakers if s.role == "train"]
    deal = {sp: [train_spk[int(j)] for j in rng_for(seed, "deal", sp).permutation(len(train_spk))]
            for sp in SPLITS}
    ptr = {sp: 0 for sp in SPLITS}
    used = set()
    items, langs = [], {}
    for code, cls in spec.languages:
        if code not in udhr:
            raise HarnessError(f"synth size {spec.name!r} names language {code!r} "
                               "that the vendored UDHR text lacks")
        counts = spec.utts["en" if code == "en" else cls]
        texts = split_chunks(code, seed)
        lang_voice = udhr[code]["voice"]
        n = 0
        for sp, count in zip(SPLITS, counts):
            pool = texts[sp]
            order = rng_for(seed, "chunks", code, sp).permutation(len(pool))
            for k in range(count):
                text = pool[int(order[k % len(pool)])]
                for _ in range(len(train_spk)):
                    spk = deal[sp][ptr[sp] % len(train_spk)]
                    ptr[sp] += 1
                    if (spk.id, code, text) not in used:
                        break
                used.add((spk.id, code, text))
                uid = f"speech-{code}-{n:05d}"
                n += 1
                items.append(Item(
                    id=uid, kind="speech", subset="speech", split=sp,
                    path=f"audio/speech/{code}/{uid}.flac", text=text, language=code,
                    custom={"split": sp, "subset": "speech", "lang_class": cls,
                            "dataset": "synth"},
                    **_speaker_fields(spk, lang_voice),
                ))
        langs[code] = {"class": cls, "voice": lang_voice, "name": udhr[code]["name"],
                       "udhr": udhr[code]["udhr"], "chunks": {sp: len(texts[sp]) for sp in SPLITS},
                       "counts": dict(zip(SPLITS, counts))}
    return items, langs


def plan_asv(spec: SizeSpec, seed: int, speakers: List[Speaker]) -> Tuple[List[Item], dict]:
    """Held-out speakers, `asv_utts` each, in the size's languages (cycled), texts from any
    split; their split is the speaker's asv_split. Trials: all target pairs within a split plus
    as many seeded non-target pairs."""
    udhr = load_udhr()
    codes = [c for c, _ in spec.languages]
    items, by_split = [], {"dev": [], "test": []}
    for spk in (s for s in speakers if s.role == "heldout"):
        rng = rng_for(seed, "asv", spk.id)
        for k in range(spec.asv_utts):
            code = codes[(k + int(rng.integers(0, len(codes)))) % len(codes)] if k % 2 else "en"
            pool = [c for sp in SPLITS for c in split_chunks(code, seed)[sp]]
            text = pool[int(rng.integers(0, len(pool)))]
            uid = f"asv-{spk.id}-{k:02d}"
            items.append(Item(
                id=uid, kind="speech", subset="asv", split=spk.asv_split,
                path=f"audio/asv/{uid}.flac", text=text, language=code,
                custom={"split": spk.asv_split, "subset": "asv", "dataset": "synth"},
                **_speaker_fields(spk, udhr[code]["voice"]),
            ))
            by_split[spk.asv_split].append((uid, spk.id))
    trials = {}
    for sp, utts in by_split.items():
        target = [(1, a, b) for i, (a, sa) in enumerate(utts) for b, sb in utts[i + 1:] if sa == sb]
        nontarget = [(0, a, b) for i, (a, sa) in enumerate(utts) for b, sb in utts[i + 1:]
                     if sa != sb]
        rng = rng_for(seed, "trials", sp)
        pick = rng.choice(len(nontarget), size=min(len(target), len(nontarget)), replace=False)
        allt = target + [nontarget[int(j)] for j in sorted(pick)]
        trials[sp] = [allt[int(j)] for j in rng.permutation(len(allt))]
    return items, trials


def plan_kws(spec: SizeSpec, seed: int, speakers: List[Speaker]) -> List[Item]:
    """1-second keyword clips: 10 keywords, _unknown_ (other words), _silence_ (noise);
    speakers split ~70/15/15 so the splits are speaker-disjoint."""
    train_spk = [s for s in speakers if s.role == "train"]
    order = [train_spk[int(j)] for j in rng_for(seed, "kws-speakers").permutation(len(train_spk))]
    n_dev = max(1, round(0.15 * len(order)))
    n_test = max(1, round(0.15 * len(order)))
    groups = {"train": order[:len(order) - n_dev - n_test],
              "dev": order[len(order) - n_dev - n_test:len(order) - n_test],
              "test": order[len(order) - n_test:]}
    items = []
    labels = list(KEYWORDS) + [UNKNOWN, SILENCE]
    for sp, count in zip(SPLITS, spec.kws):
        for label in labels:
            rng = rng_for(seed, "kws", sp, label)
            unk = rng.permutation(len(UNKNOWN_WORDS))
            for k in range(count):
                name = label.strip("_")
                uid = f"kws-{name}-{sp}-{k:04d}"
                path = f"audio/kws/{name}/{uid}.flac"
                custom = {"split": sp, "subset": "kws", "keyword": label, "dataset": "synth"}
                if label == SILENCE:
                    ns = noise.random_silence_spec(rng)
                    items.append(Item(id=uid, kind="noise", subset="kws", split=sp, path=path,
                                      custom=custom, render={"noise": ns.to_dict()}))
                    continue
                word = label if label != UNKNOWN else UNKNOWN_WORDS[int(unk[k % len(unk)])]
                spk = groups[sp][(k + int(rng.integers(0, len(groups[sp])))) % len(groups[sp])]
                f = _speaker_fields(spk, KWS_VOICE)
                f["rate"] = int(min(400, max(90, spk.rate + int(rng.integers(-20, 21)))))
                f["pitch"] = int(min(100, max(0, spk.pitch + int(rng.integers(-8, 9)))))
                bg = noise.NoiseSpec(("white", "pink", "brown")[int(rng.integers(0, 3))],
                                     round(float(rng.uniform(-65, -45)), 2),
                                     int(rng.integers(0, 2**31 - 1)))
                items.append(Item(
                    id=uid, kind="word", subset="kws", split=sp, path=path, text=word,
                    language="en", custom=custom, **f,
                    render={"shift": round(float(rng.uniform(-0.15, 0.15)), 3),
                            "noise": bg.to_dict()},
                ))
    return items


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


def short_text(chunk: str, words: int) -> str:
    """The first `words` words of a chunk, trailing punctuation removed."""
    return " ".join(chunk.split()[:words]).rstrip(",;:.!?-\u2013\u2014 ")


def _two_speakers(pool: List[Speaker], rng: np.random.Generator, what: str) -> List[Speaker]:
    if len(pool) < 2:
        raise HarnessError(f"synth {what} needs at least 2 speakers in a split, the pool has "
                           f"{len(pool)} (raise heldout_speakers / train_speakers of the size)")
    i, j = rng.choice(len(pool), size=2, replace=False)
    return [pool[int(i)], pool[int(j)]]


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def plan_mix(spec: SizeSpec, seed: int, speakers: List[Speaker]) -> List[Item]:
    """Two-speaker mixtures (Libri2Mix style, `min` mode): two English sentences by two
    different speakers of the split's pool, truncated to the shorter; source 2 at a level
    `rel_level_db` ~ U(-5, 5) dB relative to source 1. Files: the mixture at `path`, the two
    scaled sources at custom["sources"] (audio/mix/{mix_clean,s1,s2}/<id>.flac)."""
    lang_voice = load_udhr()["en"]["voice"]
    texts = {sp: [c for c in v if len(c.split()) >= MIX_WORDS[0]] or v
             for sp, v in split_chunks("en", seed).items()}
    items = []
    for sp, count in zip(SPLITS, spec.mix):
        if not count:
            continue
        pool = split_speakers(speakers, sp)
        rng = rng_for(seed, "mix", sp)
        for k in range(count):
            spk = _two_speakers(pool, rng, "mix")
            sents = [short_text(texts[sp][int(rng.integers(0, len(texts[sp])))],
                                int(rng.integers(MIX_WORDS[0], MIX_WORDS[1] + 1)))
                     for _ in spk]
            rel = round(float(rng.uniform(*MIX_REL_DB)), 2)
            uid = f"mix-{sp}-{k:05d}"
            sources = [f"audio/mix/s1/{uid}.flac", f"audio/mix/s2/{uid}.flac"]
            items.append(Item(
                id=uid, kind="mix", subset="mix", split=sp, path=f"audio/mix/mix_clean/{uid}.flac",
                language="en",
                custom={"split": sp, "subset": "mix", "dataset": "synth", "sources": sources,
                        "source_speakers": [s.id for s in spk], "rel_level_db": rel,
                        "mode": "min"},
                render={"texts": sents, "voices": [_speaker_fields(s, lang_voice) for s in spk],
                        "seeds": [_seed(rng) for _ in spk], "rel_level_db": rel},
            ))
    return items


def plan_conv(spec: SizeSpec, seed: int, speakers: List[Speaker]) -> List[Item]:
    """Two-speaker conversations: 4-6 alternating turns (speaker a first) of short English
    sentences. Each conversation plans an overlap ratio ~ U(0, 0.4) and, for the gap before each
    turn after the first, either a pause (0.1-0.8 s) or an overlap with a weight (the share of
    the conversation's overlap time it takes). The renderer places the turns from their rendered
    speech extents so the measured ratio approximates the planned one (see synth_render)."""
    lang_voice = load_udhr()["en"]["voice"]
    texts = split_chunks("en", seed)
    items = []
    for sp, count in zip(SPLITS, spec.conv):
        if not count:
            continue
        pool = split_speakers(speakers, sp)
        rng = rng_for(seed, "conv", sp)
        for k in range(count):
            spk = _two_speakers(pool, rng, "conv")
            n_turns = int(rng.integers(CONV_TURNS[0], CONV_TURNS[1] + 1))
            sents = [short_text(texts[sp][int(rng.integers(0, len(texts[sp])))],
                                int(rng.integers(CONV_WORDS[0], CONV_WORDS[1] + 1)))
                     for _ in range(n_turns)]
            ratio = round(float(rng.uniform(0.0, CONV_MAX_OVERLAP)), 4)
            n_gaps = n_turns - 1
            n_ov = 0
            if ratio >= 0.02:  # more overlapping gaps for a higher ratio, at least one
                n_ov = int(np.clip(round(ratio / CONV_MAX_OVERLAP * n_gaps
                                         + rng.uniform(-0.5, 0.5)), 1, n_gaps))
            ov = set(int(g) for g in rng.choice(n_gaps, size=n_ov, replace=False))
            gaps = [["overlap", round(float(rng.uniform(0.5, 1.5)), 3)] if g in ov
                    else ["pause", round(float(rng.uniform(*CONV_PAUSE_S)), 3)]
                    for g in range(n_gaps)]
            who = [spk[t % 2] for t in range(n_turns)]
            uid = f"conv-{sp}-{k:05d}"
            items.append(Item(
                id=uid, kind="conv", subset="conv", split=sp, path=f"audio/conv/{uid}.flac",
                language="en",
                custom={"split": sp, "subset": "conv", "dataset": "synth",
                        "speakers": [s.id for s in spk]},
                render={"texts": sents, "voices": [_speaker_fields(s, lang_voice) for s in who],
                        "seeds": [_seed(rng) for _ in who], "overlap_ratio": ratio,
                        "gaps": gaps, "lead": round(float(rng.uniform(0.2, 0.5)), 3),
                        "tail": round(float(rng.uniform(0.2, 0.5)), 3)},
            ))
    return items


def plan_noise(spec: SizeSpec, seed: int, speakers: List[Speaker],
               languages: List[str]) -> List[Item]:
    """4-second noise clips: white / pink / brown noise, mains hum, and babble of 3-6
    utterances in the size's non-English languages by speakers of the split's pool. Kinds are
    dealt in a seeded order per split, so each split cycles through all five."""
    udhr = load_udhr()
    others = [c for c in languages if c != "en"]
    items = []
    for sp, count in zip(SPLITS, spec.noise):
        if not count:
            continue
        pool = split_speakers(speakers, sp)
        rng = rng_for(seed, "noise", sp)
        order = rng.permutation(len(NOISE_KINDS))
        for k in range(count):
            kind = NOISE_KINDS[int(order[k % len(NOISE_KINDS)])]
            level = round(float(rng.uniform(*NOISE_LEVEL_DB)), 2)
            uid = f"noise-{sp}-{k:05d}"
            render: Dict = {"seconds": NOISE_SECONDS, "kind": kind}
            if kind == "babble":
                if not others or not pool:
                    raise HarnessError(f"synth size {spec.name!r}: babble needs a non-English "
                                       "language and speakers in every split")
                n = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
                codes = [others[int(rng.integers(0, len(others)))] for _ in range(n)]
                talkers = [pool[int(rng.integers(0, len(pool)))] for _ in range(n)]
                render.update(
                    texts=[short_text(split_chunks(c, seed)[sp][int(rng.integers(
                        0, len(split_chunks(c, seed)[sp])))], int(rng.integers(6, 11)))
                        for c in codes],
                    voices=[_speaker_fields(t, udhr[c]["voice"]) for t, c in zip(talkers, codes)],
                    seeds=[_seed(rng) for _ in codes], languages=codes, level_db=level,
                    mix_seed=_seed(rng))
            else:
                ns = noise.NoiseSpec(kind, level, _seed(rng))
                if kind == "hum":
                    ns = noise.NoiseSpec("hum", level, ns.seed,
                                         freq=float(rng.choice([50.0, 60.0])),
                                         harmonics=int(rng.integers(2, 7)))
                render["noise"] = ns.to_dict()
            items.append(Item(
                id=uid, kind="noise_clip", subset="noise", split=sp,
                path=f"audio/noise/{uid}.flac",
                custom={"split": sp, "subset": "noise", "dataset": "synth", "noise_kind": kind},
                render=render,
            ))
    return items


def make_plan(size: str, seed: int) -> Plan:
    spec = size_spec(size)
    if not isinstance(seed, int) or seed < 0:
        raise HarnessError(f"synth seed must be a non-negative integer, got {seed!r}")
    speakers = make_speakers(spec, seed)
    speech, langs = plan_speech(spec, seed, speakers)
    asv, trials = plan_asv(spec, seed, speakers)
    kws = plan_kws(spec, seed, speakers)
    # appended after the older subsets: the shards of those (and so their audio) are unchanged
    mix = plan_mix(spec, seed, speakers)
    conv = plan_conv(spec, seed, speakers)
    noise_clips = plan_noise(spec, seed, speakers, [c for c, _ in spec.languages])
    items = speech + asv + kws + mix + conv + noise_clips
    for it in items:
        it.seed = int(rng_for(seed, "item", it.id).integers(0, 2**31 - 1))
        add_conditions(it, seed)
    return Plan(size, seed, langs, speakers, items, trials)


def _jitter(voice: dict, rng: np.random.Generator) -> dict:
    return {**voice, **conditions.jitter_voice(rng, voice["pitch"], voice["range"], voice["rate"],
                                               voice["level_db"])}


def add_conditions(it: Item, seed: int) -> None:
    """Give one planned recording its own voice jitter, channel, room and noise (synth v2;
    synth_conditions). Speech and keyword clips jitter their voice and get all three; each
    source of a mixture jitters its voice and gets a channel only (the sources are the
    separation targets and the mixture must stay their exact sum); a conversation jitters every
    turn and gets one channel, room and noise for the whole recording. Noise clips are unchanged."""
    rng = rng_for(seed, "conditions", it.id)
    if it.kind in ("speech", "word"):
        v = _jitter({"pitch": it.pitch, "range": it.range, "rate": it.rate, "level_db": it.level_db}, rng)
        it.pitch, it.range, it.rate, it.level_db = v["pitch"], v["range"], v["rate"], v["level_db"]
        it.render["cond"] = conditions.draw(rng)
    elif it.kind == "mix":
        it.render["voices"] = [_jitter(v, rng) for v in it.render["voices"]]
        it.render["conds"] = [conditions.draw(rng, reverb=False, add_noise=False)
                              for _ in it.render["voices"]]
    elif it.kind == "conv":
        it.render["voices"] = [_jitter(v, rng) for v in it.render["voices"]]
        it.render["cond"] = conditions.draw(rng)
