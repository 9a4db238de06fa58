"""VoxCeleb1 -> corpus schema (SID and ASV), built directly from the local files.

lhotse's `prepare_voxceleb` is not used: it downloads the trial list from openslr.org into the
current directory (no network at run time here), needs vox1_meta.csv, and splits by the
metadata's dev/test speakers rather than by iden_split.txt.

Layout: `<root>/wav/<id1xxxx>/<youtube id>/<nnnnn>.wav` (also `<root>/dev/wav` + `<root>/test/wav`,
`<root>/vox1_dev_wav/wav` + `<root>/vox1_test_wav/wav`, or `<root>` being the wav folder), with
the lists in `<root>`, `<root>/meta` or next to `<root>`:
  trial list  veri_test2.txt | voxceleb1_test_v2.txt (cleaned, 37,611 trials, the list s3prl's
              SUPERB ASV uses) or else veri_test.txt | voxceleb1_test.txt (original, 37,720);
              lines "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav"
  iden_split.txt  lines "1 id10001/1zcIwhmdeo4/00001.wav", 1/2/3 = train/dev/test

Utterance ids: "id10270-x6uYqmx31kE-00001" (lhotse's convention: the path without ".wav", "/"
-> "-"). What the loader makes:
  subset "speech": SID. Every utterance of iden_split.txt, split from the file (all 1,251 speakers,
      the trial speakers included). Without iden_split.txt: every utterance of a non-trial
      speaker, split "train" (SID then has no dev/test).
  subset "asv", split "test": a copy (id "asv_" + id) of every utterance of the speakers in the
      trial list; trials["test"] is the trial list with its paths mapped to these ids.
  subset "asv", split "dev": SUPERB's ASV has no dev set, so a seeded set of held-out training
      speakers (40 on the full corpus) gets copies too, and trials["dev"] is a balanced
      (as many target as non-target) seeded trial list over them.
  The "speech" copies of held-out (dev or test) speakers carry custom asv_heldout="dev"|"test";
  meta["asv"]["exclude_from_training"] lists those speakers: ASV training must skip them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import re
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
TRIAL_FILES = ("veri_test2.txt", "voxceleb1_test_v2.txt", "veri_test.txt", "voxceleb1_test.txt")
IDEN_FILE = "iden_split.txt"
IDEN_SPLITS = {"1": "train", "2": "dev", "3": "test"}
SPEAKER_RE = re.compile(r"id\d{5}")


def utt_id(key: str) -> str:
    """"id10270/x6uYqmx31kE/00001.wav" -> "id10270-x6uYqmx31kE-00001"."""
    return key[:-4].replace("/", "-") if key.endswith(".wav") else key.replace("/", "-")


def _has_speakers(d: Path) -> bool:
    return d.is_dir() and any(SPEAKER_RE.fullmatch(c.name) and c.is_dir() for c in d.iterdir())


def find_wav_roots(root: Path) -> List[Path]:
    """Folders holding <id1xxxx>/<youtube id>/<n>.wav speaker folders."""
    root = existing_folder(root, "VoxCeleb1 folder")
    cands = [root / "wav", root / "dev" / "wav", root / "test" / "wav", root / "vox1_dev_wav" / "wav",
             root / "vox1_test_wav" / "wav", root / "vox1_dev_wav", root / "vox1_test_wav", root]
    out, seen = [], set()
    for c in cands:
        if _has_speakers(c) and c.resolve() not in seen:
            seen.add(c.resolve())
            out.append(c.resolve())
    if not out:
        raise HarnessError(
            f"{root} is not a VoxCeleb1 folder: expected {root}/wav/<id1xxxx>/<youtube id>/<nnnnn>.wav "
            f"(or dev/wav + test/wav), with veri_test2.txt and iden_split.txt next to wav/"
        )
    return out


def find_list(root: Path, names) -> Optional[Path]:
    root = Path(root).expanduser().resolve()
    for d in (root, root / "meta", root.parent):
        for n in names:
            if (d / n).is_file():
                return d / n
    return None


def scan_files(wav_roots: List[Path]) -> Dict[str, Path]:
    """relative key "idX/yt/n.wav" -> file path, in sorted order."""
    files: Dict[str, Path] = {}
    for wr in wav_roots:
        for spk in sorted(wr.iterdir()):
            if not (SPEAKER_RE.fullmatch(spk.name) and spk.is_dir()):
                continue
            for f in sorted(spk.glob("*/*.wav")):
                files.setdefault(f"{spk.name}/{f.parent.name}/{f.name}", f)
    return files


def _norm_key(k: str) -> str:
    k = k.strip().replace("\\", "/")
    while k.startswith("./"):
        k = k[2:]
    return k


def read_trial_list(path: Path) -> List[Tuple[int, str, str]]:
    """The official trial list ("label enroll test"), paths normalised to utterance keys."""
    from harness.data.corpus import read_trials

    return [(lab, _norm_key(a), _norm_key(b)) for lab, a, b in read_trials(path)]


def read_iden_split(path: Path) -> Dict[str, str]:
    out = {}
    for i, line in enumerate(text_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in IDEN_SPLITS:
            raise HarnessError(f"{path}:{i}: expected '1|2|3 id10001/1zcIwhmdeo4/00001.wav', got {line!r}")
        out[_norm_key(parts[1])] = IDEN_SPLITS[parts[0]]
    return out


def make_dev_trials(by_spk: Dict[str, List[str]], rng: random.Random, max_per_label: int) -> List[tuple]:
    """Balanced trials over held-out speakers: up to `max_per_label` target pairs spread evenly over
    speakers, and as many non-target pairs (two different speakers), no pair repeated."""
    spks = sorted(s for s in by_spk if len(by_spk[s]) >= 2)
    if len(spks) < 2:
        return []
    per_spk = math.ceil(max_per_label / len(spks))
    pos = []
    for s in spks:
        pairs = list(itertools.combinations(sorted(by_spk[s]), 2))
        pos += rng.sample(pairs, min(per_spk, len(pairs)))
    rng.shuffle(pos)
    pos = pos[:max_per_label]
    neg, seen, tries = [], set(), 0
    while len(neg) < len(pos) and tries < 50 * max(1, len(pos)):
        tries += 1
        a, b = rng.sample(spks, 2)
        ua, ub = rng.choice(by_spk[a]), rng.choice(by_spk[b])
        if (ua, ub) in seen or (ub, ua) in seen:
            continue
        seen.add((ua, ub))
        neg.append((ua, ub))
    n = min(len(pos), len(neg))
    trials = [(1, a, b) for a, b in pos[:n]] + [(0, a, b) for a, b in neg[:n]]
    rng.shuffle(trials)
    return trials


@register_corpus("voxceleb1", aliases=("voxceleb",),
                 layout="wav/<spk>/<video>/*.wav + veri_test2.txt + iden_split.txt (SID, ASV)")
def load_voxceleb1(root: Path, cache_dir: Optional[Path] = None, seed: int = 0,
                   dev_speakers: int = 40, dev_trials_per_label: int = 2000, skip_bad: bool = False) -> Corpus:
    """VoxCeleb1 at `root` as a Corpus (kind "real", name "voxceleb1"); see module docstring."""
    root = Path(root).expanduser()
    wav_roots = find_wav_roots(root)
    trial_path = find_list(root, TRIAL_FILES)
    iden_path = find_list(root, (IDEN_FILE,))
    src = root.resolve()
    folder = manifest_folder("voxceleb1", src, cache_dir, skip_bad)
    key = cache_key(
        loader="voxceleb1", version=LOADER_VERSION, source=str(src), seed=seed, dev_speakers=dev_speakers,
        dev_trials=dev_trials_per_label, trials=str(trial_path), iden=str(iden_path), skip_bad=skip_bad,
        fp=fingerprint([src, *wav_roots] + [p for p in (trial_path, iden_path) if p]),
    )
    return build_cached(folder, key, lambda tmp: _build(
        tmp, root, src, wav_roots, trial_path, iden_path, key, seed, dev_speakers, dev_trials_per_label,
        {} if skip_bad else None))


def _build(tmp: Path, root: Path, src: Path, wav_roots: List[Path], trial_path: Optional[Path],
           iden_path: Optional[Path], key: str, seed: int, dev_speakers: int, dev_trials_per_label: int,
           skipped: Optional[Dict[str, str]]) -> None:
    """Write the manifests of `load_voxceleb1` into `tmp` (`skipped`: see recording_from_file)."""
    files = scan_files(wav_roots)
    if not files:
        raise HarnessError(f"{root}: no <id1xxxx>/<youtube id>/<nnnnn>.wav files under {', '.join(map(str, wav_roots))}")
    notes: List[str] = []
    base: Dict[str, object] = {}  # key -> Recording, read once
    bad = set()
    if skipped is not None:  # read every header first: the lists below must leave skipped files out
        for k in list(files):
            base[k] = recording_from_file(files[k], utt_id(k), skipped)
            if base[k] is None:
                bad.add(k)
                del files[k], base[k]
    spk_of = {k: k.split("/")[0] for k in files}
    by_spk: Dict[str, List[str]] = {}
    for k, s in spk_of.items():
        by_spk.setdefault(s, []).append(k)

    # ASV test: the trial list
    trial_list = read_trial_list(trial_path) if trial_path else []
    if bad:
        n = len(trial_list)
        trial_list = [t for t in trial_list if t[1] not in bad and t[2] not in bad]
        if n > len(trial_list):
            notes.append(f"{n - len(trial_list)} test trials name a skipped (unreadable) file; left out")
    missing = sorted({k for _, a, b in trial_list for k in (a, b) if k not in files})
    if missing:
        raise HarnessError(
            f"{trial_path}: {len(missing)} files of the trial list are not under {', '.join(map(str, wav_roots))} "
            f"(first: {missing[0]}); the test trials need every one"
        )
    test_spks = sorted({spk_of[k] for _, a, b in trial_list for k in (a, b)})
    if not trial_path:
        notes.append(f"no trial list ({' / '.join(TRIAL_FILES)}) found: no ASV test trials")

    # SID: iden_split
    iden = read_iden_split(iden_path) if iden_path else None
    if iden is not None:
        absent = [k for k in iden if k not in files and k not in bad]
        if len(absent) == len(iden):
            raise HarnessError(f"{iden_path}: none of its files exist under {', '.join(map(str, wav_roots))}")
        if absent:
            notes.append(f"{len(absent)} files of {iden_path.name} are missing on disk; left out of SID")
        sid_keys = [(k, sp) for k, sp in iden.items() if k in files]
    else:
        notes.append(f"no {IDEN_FILE}: SID has only a train split (utterances of non-trial speakers)")
        sid_keys = [(k, "train") for k in files if spk_of[k] not in set(test_spks)]

    # ASV dev: held-out training speakers
    rng = random.Random(seed)
    cands = sorted(s for s in by_spk if s not in set(test_spks) and len(by_spk[s]) >= 2)
    n_dev = min(dev_speakers, max(2, len(cands) // 10))
    dev_spks: List[str] = []
    if len(cands) - n_dev >= 1:
        dev_spks = sorted(rng.sample(cands, n_dev))
    else:
        notes.append(f"too few speakers ({len(cands)} non-trial speakers with 2+ utterances) for a dev trial list")
    dev_trials_keys = make_dev_trials({s: by_spk[s] for s in dev_spks}, rng, dev_trials_per_label)

    from lhotse import RecordingSet, SupervisionSet, SupervisionSegment

    def rec_of(k: str):
        if k not in base:
            base[k] = recording_from_file(files[k], utt_id(k))
        return base[k]

    heldout = {**{s: "dev" for s in dev_spks}, **{s: "test" for s in test_spks}}
    recs, sups = [], []

    def add(k: str, uid: str, custom: dict) -> None:
        r = rec_of(k)
        r = r if r.id == uid else dataclasses.replace(r, id=uid)
        recs.append(r)
        sups.append(SupervisionSegment(id=uid, recording_id=uid, start=0.0, duration=r.duration, channel=0,
                                       speaker=spk_of[k], custom=custom))

    for k, sp in sid_keys:
        c = {"split": sp, "subset": "speech", "file": k}
        if spk_of[k] in heldout:
            c["asv_heldout"] = heldout[spk_of[k]]
        add(k, utt_id(k), c)
    for split, spks in (("test", test_spks), ("dev", dev_spks)):
        for s in spks:
            for k in by_spk[s]:
                add(k, "asv_" + utt_id(k), {"split": split, "subset": "asv", "file": k})
    trials = {}
    if trial_list:
        trials["test"] = [(lab, "asv_" + utt_id(a), "asv_" + utt_id(b)) for lab, a, b in trial_list]
    if dev_trials_keys:
        trials["dev"] = [(lab, "asv_" + utt_id(a), "asv_" + utt_id(b)) for lab, a, b in dev_trials_keys]

    meta = {
        "name": "voxceleb1", "kind": "real", "source": str(src), "cache_key": key,
        "loader_version": LOADER_VERSION, "version": LOADER_VERSION, "size": "full", "seed": seed, "languages": [],
        "wav_roots": [str(w) for w in wav_roots],
        "num_speakers": len(by_spk),
        "sid": {"iden_split": str(iden_path) if iden_path else None,
                "num_speakers": len({spk_of[k] for k, _ in sid_keys})},
        "asv": {
            "test_trials_file": str(trial_path) if trial_path else None,
            "num_test_trials": len(trials.get("test", [])),
            "test_speakers": test_spks,
            "dev_trials": (f"not in SUPERB (no ASV dev set): {len(dev_spks)} training speakers held out "
                           f"(seed {seed}), balanced target/non-target pairs"),
            "num_dev_trials": len(trials.get("dev", [])),
            "dev_speakers": dev_spks,
            "exclude_from_training": sorted(heldout),
        },
        "counts": split_counts(sups), "notes": notes, **skip_meta(skipped is not None, skipped or {}),
    }
    write_prepared(tmp, RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups), meta, trials)
