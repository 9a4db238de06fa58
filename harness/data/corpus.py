"""The corpus schema every task reads, whatever the source (synth or a real corpus).

On disk a corpus folder holds lhotse manifests:
  recordings.jsonl.gz   lhotse RecordingSet, one recording per utterance, 16 kHz mono files
  supervisions.jsonl.gz lhotse SupervisionSet, one supervision per recording (same id)
  corpus.json           metadata (name, kind, size, seed, languages, speakers, keywords, ...)
  trials_dev.txt, trials_test.txt   optional ASV trial lists, lines "label enroll_id test_id"

Supervision fields used by tasks:
  text, language (ISO 639-1/3 code), speaker, and in `custom`:
  split       "train" | "dev" | "test"
  subset      "speech" (sentences) | "kws" (keyword clips) | "asv" (held-out speakers)
              | "mix" (two-speaker mixtures, SS) | "conv" (conversations, SD)
              | "noise" (noise clips); tasks select the subset they need
  phones      space-separated phone symbols (PR targets), pauses removed
  alignment   [[phone, start_s, end_s], ...] frame-level phone alignment (may be absent)
  keyword     KS label: one of the keywords, "_unknown_" or "_silence_"
  lang_class  "high" | "low" | "fewshot" (real multilingual corpora: "normal" | "fewshot")
  budgets     ML-SUPERB train utterances only: the train sets holding it, ["10min", "1h"] or ["1h"]
  dataset     source dataset name within a language (for multilingual sampling; synth speech
              is "synth" on disk, loaded as "synth-read" / "synth-fast" by the speaker's rate)

Subset "mix" (the recording is the mixture; text and speaker are None, language "en"):
  sources          [s1 path, s2 path]: the scaled sources, each as long as the mixture (the
                   mixture is their sum). Stored relative to the corpus folder (synth) or
                   absolute (real corpora); the loader makes them absolute, so Utterance.custom
                   ["sources"] can be opened directly.
  source_speakers  [speaker of s1, speaker of s2] (str)
  rel_level_db     float, level of s2 relative to s1 in dB (10 log10 P_s2 / P_s1)
  mode             "min" (mixture as long as the shorter source) | "max"
Subset "conv" (the recording is the conversation; text and speaker are None):
  speakers         [a, b]: the speakers (str), in order of first speech
  segments         [[speaker, start_s, end_s], ...] speech segments sorted by start (RTTM-like;
                   segments of the two speakers may overlap)
  overlap_ratio    float, time with >= 2 speakers / time with >= 1 speaker
Subset "noise":
  noise_kind       "white" | "pink" | "brown" | "hum" | "babble"
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Utterance:
    """One audio item as tasks see it.

    Attributes:
        id: unique id (the supervision id).
        path: audio file path.
        duration: seconds of audio in the segment.
        sampling_rate: of the file, Hz (the audio module resamples to 16 kHz).
        offset: start of the segment in the file, seconds.
        text, language, speaker: from the supervision (None when absent).
        custom: the supervision's custom fields (split, subset, phones, keyword, ...).
    """

    id: str
    path: str
    duration: float
    sampling_rate: int = 16000
    offset: float = 0.0
    text: Optional[str] = None
    language: Optional[str] = None
    speaker: Optional[str] = None
    custom: Dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def split(self) -> str:
        return self.custom.get("split", "train")

    @property
    def subset(self) -> str:
        return self.custom.get("subset", "speech")


@dataclass
class Corpus:
    """A loaded corpus: utterances, optional ASV trials and metadata.

    Attributes:
        name: "synth" or a real corpus name ("librispeech", "voxceleb1", "speechcommands").
        kind: "synth" or "real" (leaderboards never mix the two in one table).
        root: the folder it was read from.
        utterances: every utterance, all splits and subsets.
        trials: split -> list of (label 0/1, enroll id, test id).
        meta: corpus.json contents.
    """

    name: str
    kind: str
    root: Path
    utterances: List[Utterance]
    trials: Dict[str, List[tuple]] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)

    def select(self, split: Optional[str] = None, subset: Optional[str] = None) -> List[Utterance]:
        """Utterances of one split and/or subset, in manifest order."""
        return [
            u
            for u in self.utterances
            if (split is None or u.split == split) and (subset is None or u.subset == subset)
        ]


def overlap_ratio(segments) -> float:
    """The "conv" overlap ratio of [[speaker, start_s, end_s], ...]: the time where two or more
    segments are active over the time where at least one is (0.0 without speech)."""
    events = sorted([(float(s), 1) for _, s, _ in segments]
                    + [(float(e), -1) for _, _, e in segments])
    active, last, speech, both = 0, 0.0, 0.0, 0.0
    for t, d in events:
        if active >= 1:
            speech += t - last
        if active >= 2:
            both += t - last
        active += d
        last = t
    return both / speech if speech > 0 else 0.0


def read_trials(path: Path) -> List[tuple]:
    """Read a trial list of lines "label enroll_id test_id" (label 1 = same speaker)."""
    from harness.errors import HarnessError

    out = []
    for i, raw in enumerate(Path(path).read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise HarnessError(f"{path}:{i}: not UTF-8 text (byte {e.start + 1} of the line is "
                               f"{raw[e.start]:#04x})") from None
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            raise HarnessError(f"{path}:{i}: expected 'label enroll test', got {line!r}")
        out.append((int(parts[0]), parts[1], parts[2]))
    return out


def write_trials(path: Path, trials: List[tuple]) -> None:
    Path(path).write_text("".join(f"{lab} {a} {b}\n" for lab, a, b in trials))


def save_manifests(root: Path, recordings, supervisions, meta: Dict[str, Any]) -> None:
    """Write lhotse manifests and corpus.json into `root` (meta must say name and kind)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    recordings.to_file(root / "recordings.jsonl.gz")
    supervisions.to_file(root / "supervisions.jsonl.gz")
    (root / "corpus.json").write_text(json.dumps(meta, indent=1, sort_keys=True))


def _resolve(root: Path, src: str) -> str:
    """An audio path of a manifest: absolute as is, else relative to the corpus folder (made
    absolute, so a task never joins the corpus folder to it a second time)."""
    return src if Path(src).is_absolute() else str((Path(root) / src).absolute())


def load_manifest_dir(root: Path) -> Corpus:
    """Load a corpus folder in the schema above into a Corpus."""
    from lhotse import RecordingSet, SupervisionSet

    from harness.errors import HarnessError

    root = Path(root)
    for name in ("recordings.jsonl.gz", "supervisions.jsonl.gz", "corpus.json"):
        if not (root / name).exists():
            raise HarnessError(f"{root} is not a corpus folder: {name} is missing")
    meta = json.loads((root / "corpus.json").read_text())
    recs = {r.id: r for r in RecordingSet.from_file(root / "recordings.jsonl.gz")}
    sups = SupervisionSet.from_file(root / "supervisions.jsonl.gz")
    utts = []
    for s in sups:
        rec = recs.get(s.recording_id)
        if rec is None:
            raise HarnessError(f"{root / 'supervisions.jsonl.gz'}: supervision {s.id} names unknown recording {s.recording_id}")
        path = _resolve(root, rec.sources[0].source)
        custom = dict(s.custom or {})
        if isinstance(custom.get("sources"), list):
            custom["sources"] = [_resolve(root, p) for p in custom["sources"]]
        utts.append(
            Utterance(
                id=s.id,
                path=path,
                duration=float(s.duration),
                sampling_rate=int(rec.sampling_rate),
                offset=float(s.start),
                text=s.text,
                language=s.language,
                speaker=s.speaker,
                custom=custom,
            )
        )
    trials = {}
    for split in ("dev", "test"):
        p = root / f"trials_{split}.txt"
        if p.exists():
            trials[split] = read_trials(p)
    return Corpus(
        name=meta.get("name", root.name), kind=meta.get("kind", "real"), root=root,
        utterances=utts, trials=trials, meta=meta,
    )


def content_fingerprint(c: Corpus) -> str:
    """What makes a corpus's data this data, for a run's identity (the config hash).

    Covers every utterance's id, split, subset, text, speaker, language, offset, duration, sample
    rate and custom fields (phones, keywords, segments, ...), the audio file's name and size, and
    the trial lists; not the folder it lies in, so a moved copy keeps its results. Two folders
    of one corpus name and size (e.g. LibriSpeech with dev and test swapped) differ here.

    Returns:
        16 hex digits of a sha256.
    """
    import hashlib
    import os

    h = hashlib.sha256()
    for u in sorted(c.utterances, key=lambda u: u.id):
        try:
            size = os.path.getsize(u.path)
        except OSError:
            size = -1
        custom = {k: v for k, v in u.custom.items() if k != "sources"}  # absolute paths: the folder's
        custom["sources"] = [(Path(p).name, os.path.getsize(p) if os.path.exists(p) else -1)
                             for p in u.custom.get("sources") or []]
        h.update(json.dumps([u.id, u.text, u.speaker, u.language, round(u.offset, 4), round(u.duration, 4),
                             u.sampling_rate, Path(u.path).name, size, custom],
                            sort_keys=True, default=str).encode())
        h.update(b"\n")
    h.update(json.dumps(sorted((s, [list(t) for t in tr]) for s, tr in c.trials.items())).encode())
    return h.hexdigest()[:16]
