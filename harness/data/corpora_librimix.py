"""LibriMix -> corpus schema: Libri2Mix for separation (subset "mix") and SUPERB's LibriMix
diarization data (subset "conv"). Both are read directly from local files.

lhotse's `prepare_librimix` is not used: it builds *virtual* mixtures from LibriSpeech and WHAM
manifests plus the LibriMix repository's metadata (downloading it when absent), supports the
`max` mode only, and never reads the generated Libri2Mix wav files, which are what SUPERB's SS
task scores against.

Libri2Mix (`libri2mix:PATH`), the official generated layout, 16 kHz, `min` mode:
    <root>/Libri2Mix/wav16k/min/{train-100,dev,test}/{mix_clean,s1,s2}/<mixture_ID>.wav
    <root>/Libri2Mix/wav16k/min/metadata/mixture_<part>_mix_clean.csv
        (mixture_ID,mixture_path,source_1_path,source_2_path,length)
    <root>/Libri2Mix/wav16k/min/metadata/metrics_<part>_mix_clean.csv   (optional)
PATH may also be the Libri2Mix, wav16k or min folder itself. Splits: train = train-100 (else
train-360), dev, test. The CSVs list the mixtures (their absolute paths, written on the machine
that generated them, are ignored: files are looked up by mixture_ID under the local folder).
Supervisions: id = mixture_ID, text/speaker None, language "en", custom split, subset "mix",
dataset "librimix", part, sources [s1, s2] (absolute), source_speakers (the LibriSpeech speaker
of each half of mixture_ID "<spk>-<chapter>-<utt>_<spk>-<chapter>-<utt>"), mode "min" and
rel_level_db = 10 log10(P_s2 / P_s1): metrics CSV column source_2_SNR when present (for
mix_clean it is exactly that ratio), else measured once from the two source files.

SUPERB diarization (`librimix_sd:PATH`), Kaldi-style data dirs as s3prl's LibriMix preparation
writes them (Libri2Mix, `max` mode):
    <root>/{train,dev,test}/{wav.scp,segments,utt2spk,reco2dur,rttm}
(train2 / dev2 / test2 are accepted too). wav.scp maps a recording id to its mixture wav
(absolute, or relative to the data dir, PATH or PATH's parent; piped commands are refused);
the RTTM ("SPEAKER <reco> 1 <start> <dur> <NA> <NA> <spk> <NA>") gives the labels. Supervisions:
id = recording id, custom split, subset "conv", dataset "librimix", speakers (in order of first
speech), segments [[spk, start, end], ...] sorted by start, overlap_ratio (corpus.overlap_ratio).
wav.scp and rttm are required; segments / utt2spk / reco2dur are not read (the RTTM holds the
same segments, the audio header the duration).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from harness.data.corpora import (
    build_cached, cache_key, existing_folder, fingerprint, manifest_folder, recording_from_file,
    skip_meta, split_counts, write_prepared, text_lines,
)
from harness.data.corpus import Corpus, overlap_ratio
from harness.errors import BadAudioError, HarnessError
from harness.registry import register_corpus

LOADER_VERSION = 1
MIX_PARTS = {"train": ("train-100", "train-360"), "dev": ("dev",), "test": ("test",)}
SD_DIRS = {"train": ("train", "train2"), "dev": ("dev", "dev2"), "test": ("test", "test2")}
MIX_COLUMNS = ("mixture_ID", "source_1_path", "source_2_path")


# ---------------------------------------------------------------- Libri2Mix (separation)


def find_libri2mix_dir(root: Path) -> Path:
    """The `wav16k/min` folder of Libri2Mix under `root` (or `root` itself)."""
    root = existing_folder(root, "Libri2Mix folder")
    for cand in (root / "Libri2Mix" / "wav16k" / "min", root / "wav16k" / "min", root / "min", root):
        if any((cand / p / "mix_clean").is_dir() for ps in MIX_PARTS.values() for p in ps):
            return cand.resolve()
    raise HarnessError(
        f"{root} is not a Libri2Mix folder: expected {root}/Libri2Mix/wav16k/min/"
        "{train-100,dev,test}/{mix_clean,s1,s2}/*.wav and "
        f"{root}/Libri2Mix/wav16k/min/metadata/mixture_<part>_mix_clean.csv "
        "(or PATH = the Libri2Mix, wav16k or min folder)")


def select_mix_parts(min_dir: Path) -> Dict[str, str]:
    """split -> part folder, for the splits present."""
    out = {}
    for split, parts in MIX_PARTS.items():
        for p in parts:
            if (min_dir / p / "mix_clean").is_dir():
                out[split] = p
                break
    return out


def read_mix_csv(path: Path) -> List[dict]:
    """Rows of a LibriMix mixture CSV (header with mixture_ID, source_1_path, source_2_path)."""
    if not path.is_file():
        raise HarnessError(f"Libri2Mix metadata file {path} is missing (it lists the mixtures "
                           "of the part; the LibriMix generator writes it next to the wav folders)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise HarnessError(f"{path} lists no mixture")
    missing = [c for c in MIX_COLUMNS if c not in rows[0]]
    if missing:
        raise HarnessError(f"{path}: missing column(s) {', '.join(missing)} "
                           f"(header: {','.join(rows[0])})")
    return rows


def read_metrics(path: Path) -> Dict[str, float]:
    """mixture_ID -> source_2_SNR from a metrics CSV ({} when absent or without the column)."""
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "source_2_SNR" not in rows[0] or "mixture_ID" not in rows[0]:
        return {}
    try:
        return {r["mixture_ID"]: float(r["source_2_SNR"]) for r in rows}
    except ValueError as e:
        raise HarnessError(f"{path}: source_2_SNR is not a number ({e})") from None


def measured_rel_level_db(s1: Path, s2: Path) -> float:
    """10 log10(P_s2 / P_s1) of two source files."""
    import soundfile as sf

    p = []
    for f in (s1, s2):
        try:
            x, _ = sf.read(str(f), dtype="float64", always_2d=True)
        except Exception as e:
            raise BadAudioError(f, f"cannot read it ({type(e).__name__}: {str(e)[:200]})") from None
        p.append(float(np.mean(x[:, 0] ** 2)) if len(x) else 0.0)
    if p[0] <= 0 or p[1] <= 0:
        raise BadAudioError(s1 if p[0] <= 0 else s2, "the source is silent: no relative level")
    return 10.0 * float(np.log10(p[1] / p[0]))


def source_speakers(mixture_id: str) -> List[str]:
    """LibriSpeech speakers of a mixture id "<spk>-<ch>-<utt>_<spk>-<ch>-<utt>"."""
    halves = mixture_id.split("_")
    return [h.split("-")[0] for h in halves]


@register_corpus("libri2mix", aliases=("librimix",),
                 layout="Libri2Mix wav16k/min/<part>/mix_clean + s1 + s2 (SS)")
def load_libri2mix(root: Path, cache_dir: Optional[Path] = None, skip_bad: bool = False) -> Corpus:
    """Libri2Mix (wav16k, min, mix_clean) at `root` as a Corpus (kind "real", name
    "libri2mix"); see the module docstring. With `skip_bad` a mixture whose mixture or source
    file cannot be read is left out and listed in meta["skipped_bad"]."""
    min_dir = find_libri2mix_dir(root)
    parts = select_mix_parts(min_dir)
    md = min_dir / "metadata"
    folder = manifest_folder("libri2mix", min_dir, cache_dir, skip_bad)
    key = cache_key(loader="libri2mix", version=LOADER_VERSION, source=str(min_dir), parts=parts,
                    skip_bad=skip_bad, fp=fingerprint([min_dir, md] + [min_dir / p for p in parts.values()]))
    return build_cached(folder, key, lambda tmp: _build_libri2mix(tmp, min_dir, parts, key,
                                                                  {} if skip_bad else None))


def _build_libri2mix(tmp: Path, min_dir: Path, parts: Dict[str, str], key: str,
                     skipped: Optional[Dict[str, str]]) -> None:
    """Write the manifests of `load_libri2mix` into `tmp` (`skipped`: see recording_from_file)."""
    from lhotse import RecordingSet, SupervisionSegment, SupervisionSet

    md = min_dir / "metadata"
    recs, sups, notes = [], [], []
    for split, part in parts.items():
        rows = read_mix_csv(md / f"mixture_{part}_mix_clean.csv")
        metrics = read_metrics(md / f"metrics_{part}_mix_clean.csv")
        notes.append(f"{part}: rel_level_db from " + (
            f"metrics_{part}_mix_clean.csv (source_2_SNR)" if metrics else "the source files"))
        for row in rows:
            mid = row["mixture_ID"].strip()
            mix = min_dir / part / "mix_clean" / f"{mid}.wav"
            srcs = [min_dir / part / s / f"{mid}.wav" for s in ("s1", "s2")]
            for f in [mix] + srcs:
                if not f.is_file():
                    raise HarnessError(f"{md / f'mixture_{part}_mix_clean.csv'} lists {mid}, but "
                                       f"{f} is missing")
            rec = recording_from_file(mix, mid, skipped)
            if rec is None:
                continue
            try:
                rel = metrics[mid] if mid in metrics else measured_rel_level_db(*srcs)
            except BadAudioError as e:
                if skipped is None:
                    raise
                skipped[mid] = f"{e.path}: {e.reason}"
                continue
            spk = source_speakers(mid)
            recs.append(rec)
            sups.append(SupervisionSegment(
                id=mid, recording_id=mid, start=0.0, duration=rec.duration, channel=0,
                text=None, language="en", speaker=None,
                custom={"split": split, "subset": "mix", "dataset": "librimix", "part": part,
                        "sources": [str(s) for s in srcs],
                        "source_speakers": spk if len(spk) == 2 else [None, None],
                        "rel_level_db": round(rel, 4), "mode": "min"}))
    for sp in MIX_PARTS:
        if sp not in parts:
            notes.append(f"no {sp} split (expected {min_dir}/{MIX_PARTS[sp][0]}/mix_clean)")
    meta = {
        "name": "libri2mix", "kind": "real", "source": str(min_dir), "cache_key": key,
        "loader_version": LOADER_VERSION, "version": LOADER_VERSION, "size": "full",
        "languages": ["en"], "parts": parts, "mix": {"mode": "min", "sample_rate": 16000},
        "counts": split_counts(sups), "notes": notes, **skip_meta(skipped is not None, skipped or {}),
    }
    write_prepared(tmp, RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups), meta)


# ---------------------------------------------------------------- SUPERB LibriMix diarization


def find_sd_dirs(root: Path) -> Dict[str, Path]:
    """split -> Kaldi data dir under `root`."""
    root = existing_folder(root, "LibriMix diarization folder")
    out = {}
    for split, names in SD_DIRS.items():
        for n in names:
            if (root / n).is_dir():
                out[split] = (root / n).resolve()
                break
    if not out:
        raise HarnessError(
            f"{root} is not a LibriMix diarization data folder: expected Kaldi-style data dirs "
            f"{root}/train, {root}/dev, {root}/test, each with wav.scp, segments, utt2spk, "
            "reco2dur and rttm (as s3prl's LibriMix diarization preparation writes them)")
    return out


def _kv_lines(path: Path) -> List[Tuple[int, str, str]]:
    out = []
    for i, line in enumerate(text_lines(path), 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            raise HarnessError(f"{path}:{i}: expected '<id> <value>', got {line!r}")
        out.append((i, parts[0], parts[1].strip()))
    return out


def read_wav_scp(path: Path, roots: List[Path]) -> Dict[str, Path]:
    """recording id -> existing audio file; relative paths are tried under each of `roots`."""
    out = {}
    for i, rid, val in _kv_lines(path):
        if val.endswith("|"):
            raise HarnessError(f"{path}:{i}: piped wav.scp entries are not supported ({val!r}); "
                               "point wav.scp at the wav files")
        p = Path(val).expanduser()
        cands = [p] if p.is_absolute() else [r / p for r in roots]
        found = next((c for c in cands if c.is_file()), None)
        if found is None:
            raise HarnessError(f"{path}:{i}: audio of {rid} not found: {val} "
                               f"(tried {', '.join(str(c) for c in cands)})")
        out[rid] = found.resolve()
    return out


def read_rttm(path: Path) -> Dict[str, List[list]]:
    """recording id -> [[speaker, start_s, end_s], ...] from the SPEAKER lines of an RTTM."""
    out: Dict[str, List[list]] = {}
    for i, line in enumerate(text_lines(path), 1):
        f = line.split()
        if not f or f[0] != "SPEAKER":
            continue
        if len(f) < 8:
            raise HarnessError(f"{path}:{i}: expected 'SPEAKER <reco> <chan> <start> <dur> <NA> "
                               f"<NA> <speaker> ...', got {line!r}")
        try:
            start, dur = float(f[3]), float(f[4])
        except ValueError:
            raise HarnessError(f"{path}:{i}: start/duration are not numbers: {line!r}") from None
        if dur < 0 or start < 0:
            raise HarnessError(f"{path}:{i}: negative start or duration: {line!r}")
        out.setdefault(f[1], []).append([f[7], round(start, 4), round(start + dur, 4)])
    return out


@register_corpus("librimix_sd", aliases=("libri2mix_sd",),
                 layout="SUPERB LibriMix diarization Kaldi dirs <split>/wav.scp + rttm (SD)")
def load_librimix_sd(root: Path, cache_dir: Optional[Path] = None, skip_bad: bool = False) -> Corpus:
    """SUPERB's LibriMix diarization data dirs at `root` as a Corpus (kind "real", name
    "librimix_sd", subset "conv"); see the module docstring."""
    root = Path(root).expanduser()
    dirs = find_sd_dirs(root)
    for split, d in dirs.items():
        for n in ("wav.scp", "rttm"):
            if not (d / n).is_file():
                raise HarnessError(f"LibriMix diarization data dir {d} has no {n} "
                                   "(expected wav.scp, segments, utt2spk, reco2dur, rttm)")
    folder = manifest_folder("librimix_sd", root, cache_dir, skip_bad)
    key = cache_key(loader="librimix_sd", version=LOADER_VERSION, source=str(root.resolve()),
                    dirs={k: str(v) for k, v in dirs.items()}, skip_bad=skip_bad,
                    fp=fingerprint([root] + list(dirs.values())
                                   + [d / n for d in dirs.values() for n in ("wav.scp", "rttm")]))
    return build_cached(folder, key, lambda tmp: _build_librimix_sd(tmp, root, dirs, key,
                                                                    {} if skip_bad else None))


def _build_librimix_sd(tmp: Path, root: Path, dirs: Dict[str, Path], key: str,
                       skipped: Optional[Dict[str, str]]) -> None:
    """Write the manifests of `load_librimix_sd` into `tmp` (`skipped`: see recording_from_file)."""
    from lhotse import RecordingSet, SupervisionSegment, SupervisionSet

    recs, sups, notes = [], [], []
    for split, d in dirs.items():
        wavs = read_wav_scp(d / "wav.scp", [d, root.resolve(), root.resolve().parent])
        rttm = read_rttm(d / "rttm")
        extra = sorted(set(rttm) - set(wavs))
        if extra:
            notes.append(f"{d.name}/rttm: {len(extra)} recordings not in wav.scp ignored "
                         f"(first {extra[0]})")
        empty = 0
        for rid, path in wavs.items():
            segs = sorted(rttm.get(rid, []), key=lambda s: (s[1], s[2]))
            if not segs:  # nothing to diarize: SD tasks need at least one segment
                empty += 1
                continue
            rec = recording_from_file(path, rid, skipped)
            if rec is None:
                continue
            speakers: List[str] = []
            for spk, _, _ in segs:
                if spk not in speakers:
                    speakers.append(spk)
            recs.append(rec)
            sups.append(SupervisionSegment(
                id=rid, recording_id=rid, start=0.0, duration=rec.duration, channel=0,
                text=None, language="en", speaker=None,
                custom={"split": split, "subset": "conv", "dataset": "librimix",
                        "speakers": speakers, "segments": segs,
                        "overlap_ratio": round(overlap_ratio(segs), 4)}))
        if empty:
            notes.append(f"{d.name}: {empty} recordings of wav.scp have no RTTM segment; left out")
    for sp in SD_DIRS:
        if sp not in dirs:
            notes.append(f"no {sp} split (expected {root}/{sp})")
    meta = {
        "name": "librimix_sd", "kind": "real", "source": str(root.resolve()), "cache_key": key,
        "loader_version": LOADER_VERSION, "version": LOADER_VERSION, "size": "full",
        "languages": ["en"], "data_dirs": {k: str(v) for k, v in dirs.items()},
        "counts": split_counts(sups), "notes": notes, **skip_meta(skipped is not None, skipped or {}),
    }
    write_prepared(tmp, RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups), meta)
