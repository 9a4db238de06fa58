"""Speech Commands v0.01 -> corpus schema (KS, SUPERB's 12 classes), built directly.

lhotse's `prepare_speechcommands` is not used: it needs the separate
`speech_commands_test_set_v0.01` folder next to the main one (and fails without it), keeps the
30 words as labels (no "_unknown_"), and turns whole 1-minute `_background_noise_` files into
train/dev utterances instead of 1-second "_silence_" clips.

Layout: `<root>/<word>/<hash>_nohash_<n>.wav`, `<root>/_background_noise_/*.wav`,
`<root>/validation_list.txt`, `<root>/testing_list.txt` (or the same under
`<root>/speech_commands_v0.01/`).
Splits: dev = validation_list, test = testing_list, train = the rest. When the official test set
folder `speech_commands_test_set_v0.01` (`<word>/`, `_unknown_/`, `_silence_/`) is found next to
the main folder or inside `<root>`, it is the test split (as in SUPERB/s3prl) and the
testing_list files are left out of every split.
Labels (custom `keyword`): the 10 words yes no up down left right on off stop go keep theirs;
any other word is "_unknown_" (text keeps the spoken word); "_silence_" clips are 1-second
segments (offset + duration 1 s, no audio written) cut at seeded random offsets from each
background-noise file: train from its first 80 %, dev from the next 10 %, test from the last 10 %.
Subset "kws", language "en", speaker = the hash before "_nohash_".
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from harness.data.corpora import (
    build_cached, cache_key, existing_folder, fingerprint, manifest_folder, recording_from_file,
    skip_meta, split_counts, write_prepared, text_lines,
)
from harness.data.corpus import Corpus
from harness.errors import HarnessError
from harness.registry import register_corpus

LOADER_VERSION = 1
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE, NOISE_DIR = "_unknown_", "_silence_", "_background_noise_"
MAIN_NAME, TESTSET_NAME = "speech_commands_v0.01", "speech_commands_test_set_v0.01"
SILENCE_REGIONS = {"train": (0.0, 0.8), "dev": (0.8, 0.9), "test": (0.9, 1.0)}
DEFAULT_SILENCE_PER_FILE = {"train": 100, "dev": 10, "test": 10}


def find_main_dir(root: Path) -> Path:
    root = existing_folder(root, "Speech Commands folder")
    for cand in (root, root / MAIN_NAME):
        if (cand / "validation_list.txt").is_file() and (cand / "testing_list.txt").is_file() \
                and any((cand / w).is_dir() for w in KEYWORDS):
            return cand.resolve()
    raise HarnessError(
        f"{root} is not a Speech Commands v0.01 folder: expected {root}/<word>/<hash>_nohash_<n>.wav "
        f"for the words {' '.join(KEYWORDS)}, plus validation_list.txt, testing_list.txt and "
        f"_background_noise_/*.wav (or all of it under {root}/{MAIN_NAME})"
    )


def find_testset_dir(root: Path, main: Path) -> Optional[Path]:
    for cand in (Path(root).expanduser() / TESTSET_NAME, main.parent / TESTSET_NAME):
        if cand.is_dir() and any((cand / w).is_dir() for w in KEYWORDS):
            return cand.resolve()
    return None


def label_of(word: str) -> str:
    return word if word in KEYWORDS else UNKNOWN


def read_list(path: Path) -> set:
    return {ln.strip().replace("\\", "/") for ln in text_lines(path) if ln.strip()}


def silence_offsets(duration: float, sr: int, split: str, n: int, rng: random.Random) -> List[float]:
    """`n` start times (s, sample-aligned) of 1-s clips inside the split's region of a file."""
    if duration < 1.0 or n <= 0:
        return []
    a, b = SILENCE_REGIONS[split]
    lo = a * duration
    hi = max(lo, b * duration - 1.0)
    hi = min(hi, duration - 1.0)
    lo = min(lo, hi)
    return [round(rng.uniform(lo, hi) * sr) / sr for _ in range(n)]


@register_corpus("speechcommands", aliases=("speech_commands",),
                 layout="speech_commands_v0.01 with validation_list.txt / testing_list.txt (KS)")
def load_speechcommands(root: Path, cache_dir: Optional[Path] = None, seed: int = 0,
                        silence_per_file: Optional[Dict[str, int]] = None, skip_bad: bool = False) -> Corpus:
    """Speech Commands v0.01 at `root` as a Corpus (kind "real", name "speechcommands")."""
    main = find_main_dir(root)
    testset = find_testset_dir(root, main)
    sil_n = dict(DEFAULT_SILENCE_PER_FILE, **(silence_per_file or {}))
    folder = manifest_folder("speechcommands", main, cache_dir, skip_bad)
    key = cache_key(
        loader="speechcommands", version=LOADER_VERSION, source=str(main), testset=str(testset),
        seed=seed, silence=sil_n, skip_bad=skip_bad,
        fp=fingerprint([main, main / "validation_list.txt", main / "testing_list.txt", main / NOISE_DIR]
                       + ([testset] if testset else [])),
    )
    return build_cached(folder, key, lambda tmp: _build(tmp, main, testset, key, seed, sil_n,
                                                        {} if skip_bad else None))


def _build(tmp: Path, main: Path, testset: Optional[Path], key: str, seed: int, sil_n: Dict[str, int],
           skipped: Optional[Dict[str, str]]) -> None:
    """Write the manifests of `load_speechcommands` into `tmp` (`skipped`: see recording_from_file)."""
    valid = read_list(main / "validation_list.txt")
    testing = read_list(main / "testing_list.txt")
    notes: List[str] = []
    items: List[Tuple[str, Path, str, str, Optional[str], Optional[str]]] = []  # id, path, split, keyword, speaker, text
    words = sorted(d.name for d in main.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))
    for w in words:
        for f in sorted((main / w).glob("*.wav")):
            rel = f"{w}/{f.name}"
            if rel in testing:
                if testset is not None:
                    continue
                split = "test"
            else:
                split = "dev" if rel in valid else "train"
            items.append((f"{w}_{f.stem}", f, split, label_of(w), f.name.split("_nohash_")[0], w))
    if testset is not None:
        notes.append(f"test split = {testset} (official test set, as in SUPERB); testing_list.txt files left out")
        for d in sorted(p for p in testset.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for f in sorted(d.glob("*.wav")):
                if d.name == SILENCE:
                    items.append((f"testset_{SILENCE}_{f.stem}", f, "test", SILENCE, None, None))
                elif d.name == UNKNOWN:
                    word, rest = (f.stem.split("_", 1) + [""])[:2]
                    items.append((f"testset_{UNKNOWN}_{f.stem}", f, "test", UNKNOWN, rest.split("_nohash_")[0] or None, word))
                else:
                    items.append((f"testset_{d.name}_{f.stem}", f, "test", label_of(d.name),
                                  f.name.split("_nohash_")[0], d.name))
    if not any(it[3] in KEYWORDS for it in items):
        raise HarnessError(f"{main}: no <word>/*.wav file for any of the words {' '.join(KEYWORDS)}")

    from lhotse import RecordingSet, SupervisionSegment, SupervisionSet

    recs, sups = [], []
    for uid, path, split, kw, spk, text in items:
        r = recording_from_file(path, uid, skipped)
        if r is None:
            continue
        recs.append(r)
        sups.append(SupervisionSegment(id=uid, recording_id=uid, start=0.0, duration=r.duration, channel=0,
                                       text=text, language="en", speaker=spk,
                                       custom={"split": split, "subset": "kws", "keyword": kw}))

    rng = random.Random(seed)
    noise = sorted((main / NOISE_DIR).glob("*.wav")) if (main / NOISE_DIR).is_dir() else []
    sil_splits = ["train", "dev"] + ([] if testset is not None else ["test"])
    if not noise:
        notes.append(f"no {NOISE_DIR}/*.wav: no {SILENCE} clips in train/dev" + ("" if testset else "/test"))
    for f in noise:
        base = recording_from_file(f, f.stem, skipped)
        if base is None:
            continue
        if base.duration < 1.0:
            notes.append(f"{f.name} is shorter than 1 s: no {SILENCE} clips from it")
            continue
        for split in sil_splits:
            for i, off in enumerate(silence_offsets(base.duration, base.sampling_rate, split, sil_n[split], rng)):
                uid = f"{SILENCE}_{f.stem}_{split}_{i:03d}"
                recs.append(dataclasses.replace(base, id=uid))
                sups.append(SupervisionSegment(id=uid, recording_id=uid, start=off, duration=1.0, channel=0,
                                               text=None, language="en", speaker=None,
                                               custom={"split": split, "subset": "kws", "keyword": SILENCE,
                                                       "source_file": f.name}))
    for split in ("train", "dev", "test"):
        if not any((s.custom or {}).get("split") == split for s in sups):
            notes.append(f"no {split} utterances")
    meta = {
        "name": "speechcommands", "kind": "real", "source": str(main), "cache_key": key,
        "loader_version": LOADER_VERSION, "version": LOADER_VERSION, "size": "full", "seed": seed, "languages": ["en"],
        "keywords": list(KEYWORDS), "labels": list(KEYWORDS) + [UNKNOWN, SILENCE],
        "testset": str(testset) if testset else None, "silence_per_file": sil_n,
        "num_speakers": len({s.speaker for s in sups if s.speaker}),
        "counts": split_counts(sups), "notes": notes, **skip_meta(skipped is not None, skipped or {}),
    }
    write_prepared(tmp, RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups), meta)
