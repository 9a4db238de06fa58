"""The single-speaker items of a synth plan (harness/data/synth_plan.py): read speech per
language, the held-out speakers' ASV recordings with their trial lists, and keyword clips."""

from __future__ import annotations

from typing import List, Tuple

from harness.data import noise
from harness.data.synth_spec import SPLITS, Item, SizeSpec, Speaker, speaker_fields
from harness.data.synth_text import load_udhr, rng_for, split_chunks
from harness.errors import HarnessError

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
                    **speaker_fields(spk, lang_voice),
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
                **speaker_fields(spk, udhr[code]["voice"]),
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
                f = speaker_fields(spk, KWS_VOICE)
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
