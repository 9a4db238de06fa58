"""The two-speaker items and the noise set of a synth plan (harness/data/synth_plan.py):
mixtures (separation), conversations (diarization) and noise clips with babble. Their speakers
come by split from `split_speakers`, so no dev / test speaker is ever heard in training; their
texts are short English prefixes of the split's UDHR chunks."""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from harness.data import noise
from harness.data.synth_spec import SPLITS, Item, SizeSpec, Speaker, speaker_fields, split_speakers
from harness.data.synth_text import load_udhr, rng_for, split_chunks
from harness.errors import HarnessError

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
                render={"texts": sents, "voices": [speaker_fields(s, lang_voice) for s in spk],
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
                render={"texts": sents, "voices": [speaker_fields(s, lang_voice) for s in who],
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
                    voices=[speaker_fields(t, udhr[c]["voice"]) for t, c in zip(talkers, codes)],
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
