"""LibriSpeech -> corpus schema, read directly from the local files.

lhotse's `prepare_librispeech` is not used: it stops at the first unreadable audio file, so
`--skip-bad` could not leave such a file out; what it makes is what `read_part` makes (one
recording and one supervision per transcript line, speaker = the id's first
field).

Layout: `<root>/LibriSpeech/<part>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac` and
`<spk>-<chapter>.trans.txt`, or the same with `<root>` being the LibriSpeech folder itself.
Splits (SUPERB PR/ASR): train = train-clean-100 (when absent: every train-* part present, e.g.
train-clean-5 of Mini LibriSpeech), dev = dev-clean (else dev-clean-2), test = test-clean.
Other parts (dev-other, test-other, ...) are not loaded.

Supervisions: text upper-case, language "en", speaker = the LibriSpeech speaker id, custom
split/subset="speech" and `phones` (space-separated espeak-ng phoneme mnemonics of the
lower-cased text, stress marks and pauses removed: the same symbols as synth's alignments; absent
with a note in meta when harness.data.espeak is unavailable). Phones are computed once and kept in the manifest cache.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from harness.data.corpora import (
    build_cached, cache_key, existing_folder, fingerprint, manifest_folder, missing_audio, recording_from_file,
    skip_meta, split_counts, text_lines, write_prepared,
)
from harness.data.corpus import Corpus
from harness.errors import HarnessError
from harness.registry import register_corpus

LOADER_VERSION = 1
TRAIN_PREFERRED = "train-clean-100"
DEV_PARTS = ("dev-clean", "dev-clean-2")
TEST_PARTS = ("test-clean",)
KNOWN_PARTS = (
    "train-clean-100", "train-clean-360", "train-other-500", "train-clean-5",
    "dev-clean", "dev-other", "dev-clean-2", "test-clean", "test-other",
)

log = logging.getLogger(__name__)


def find_librispeech_dir(root: Path) -> Path:
    """The folder that holds the LibriSpeech parts (`root/LibriSpeech` or `root`)."""
    root = existing_folder(root, "LibriSpeech folder")
    for cand in (root / "LibriSpeech", root):
        if cand.is_dir() and any((cand / p).is_dir() for p in KNOWN_PARTS):
            return cand.resolve()
    raise HarnessError(
        f"{root} is not a LibriSpeech folder: expected {root}/LibriSpeech/<part>/<spk>/<chapter>/"
        f"*.flac + *.trans.txt (or {root}/<part>/...) with parts such as train-clean-100, dev-clean, test-clean"
    )


def select_parts(corpus_dir: Path) -> Dict[str, str]:
    """part name -> split, for the parts present."""
    present = {p.name for p in corpus_dir.iterdir() if p.is_dir()}
    out: Dict[str, str] = {}
    if TRAIN_PREFERRED in present:
        out[TRAIN_PREFERRED] = "train"
    else:
        for p in sorted(present):
            if p.startswith("train-") and p in KNOWN_PARTS:
                out[p] = "train"
    for split, cands in (("dev", DEV_PARTS), ("test", TEST_PARTS)):
        for p in cands:
            if p in present:
                out[p] = split
                break
    return out


def phonemizer() -> Tuple[Optional[Callable[[str], List[str]]], str]:
    """(text -> phone list, description), or (None, why not) when espeak is unavailable.

    Uses `harness.data.espeak.text_to_phones(text, lang)` when that exists (a list of espeak
    mnemonics). Otherwise calls espeak_TextToPhonemes in ASCII-mnemonic mode with a space between
    phonemes on the module's engine. Either way each token goes through the module's
    `clean_phone` (stress marks stripped, pauses dropped): the same symbols the synth corpus gets
    from espeak's phoneme events. The IPA string of `text_to_phonemes` is not used as is: it
    separates words, not phones.
    """
    try:
        mod = importlib.import_module("harness.data.espeak")
    except Exception as e:  # module missing or espeak-ng library not loadable
        return None, f"harness.data.espeak unavailable ({type(e).__name__}: {e})"
    pause = set(getattr(mod, "PAUSE_PHONEMES", ())) | {"sil"}
    stress = getattr(mod, "STRESS_MARKS", "',%=")
    norm = getattr(mod, "clean_phone", None)  # the synth corpus's own phone normalisation
    if not callable(norm):
        def norm(t: str) -> str:
            return "sil" if (t in pause or t.startswith("_")) else t.lstrip(stress)

    def clean(tokens) -> List[str]:
        out = (norm(t) for t in tokens if t)
        return [t for t in out if t and t != "sil"]

    fn = getattr(mod, "text_to_phones", None)
    if callable(fn):
        def run(text: str) -> List[str]:
            out = fn(text.lower(), "en")
            return clean(out.split() if isinstance(out, str) else list(out))

        return run, "harness.data.espeak.text_to_phones (espeak-ng mnemonics)"
    if callable(getattr(mod, "get_engine", None)) and callable(getattr(mod, "text_to_phonemes", None)):
        try:
            engine = mod.get_engine()
            lib = engine.lib
            lock = getattr(engine, "_lock", None)
            chars_utf8 = int(getattr(mod, "espeakCHARS_UTF8", 1))
        except Exception as e:
            return None, f"espeak-ng engine unavailable ({type(e).__name__}: {e})"
        import contextlib
        import ctypes

        mode = ord(" ") << 8  # bits 8-23: phoneme separator; bit 1 clear: ASCII mnemonics

        def run(text: str) -> List[str]:
            mod.text_to_phonemes("", "en")  # selects the English voice through the public API
            with (lock or contextlib.nullcontext()):
                data = text.lower().encode("utf-8") + b"\0"
                buf = ctypes.create_string_buffer(data, len(data))
                ptr = ctypes.c_void_p(ctypes.addressof(buf))
                toks: List[str] = []
                while ptr.value:
                    out = lib.espeak_TextToPhonemes(ctypes.byref(ptr), chars_utf8, mode)
                    if out:
                        toks += out.decode("utf-8", "replace").split()
            return clean(toks)

        return run, "espeak_TextToPhonemes, ASCII mnemonics (harness.data.espeak engine)"
    return None, "harness.data.espeak exposes neither text_to_phones nor get_engine/text_to_phonemes"


def read_part(part_dir: Path, skipped: Optional[Dict[str, str]], num_jobs: int) -> list:
    """[(Recording, SupervisionSegment)] of one part: every transcript line (text as written,
    speaker = the id's first field). Unreadable or missing audio (a .flac a transcript lists that
    is not there, a broken link) raises BadAudioError naming the file, or with `skipped` is
    recorded there and left out. A transcript line that is not UTF-8 is an error naming it."""
    from concurrent.futures import ThreadPoolExecutor

    from lhotse import SupervisionSegment

    listed = []
    for trans in sorted(part_dir.rglob("*.trans.txt")):
        for line in text_lines(trans):
            if line.strip():
                uid, _, text = line.strip().partition(" ")
                if not missing_audio(trans.parent / f"{uid}.flac", trans, uid, skipped):
                    listed.append((uid, trans.parent / f"{uid}.flac", text.strip()))
    with ThreadPoolExecutor(max(1, num_jobs)) as pool:  # header reads: I/O bound
        recs = list(pool.map(lambda x: recording_from_file(x[1], x[0], skipped), listed))
    return [(r, SupervisionSegment(id=uid, recording_id=uid, start=0.0, duration=r.duration, channel=0,
                                   speaker=uid.split("-")[0], text=text))
            for (uid, _, text), r in zip(listed, recs) if r is not None]


@register_corpus("librispeech",
                 layout="LibriSpeech/<part>/<spk>/<chapter>/*.flac + *.trans.txt (PR, ASR)")
def load_librispeech(root: Path, cache_dir: Optional[Path] = None, num_jobs: int = 0,
                     skip_bad: bool = False) -> Corpus:
    """LibriSpeech at `root` as a Corpus (kind "real", name "librispeech"); see module docstring."""
    corpus_dir = find_librispeech_dir(root)
    parts = select_parts(corpus_dir)
    if not parts:
        raise HarnessError(f"{corpus_dir} holds no usable LibriSpeech part (expected train-clean-100, dev-clean, test-clean)")
    phon, phon_note = phonemizer()
    folder = manifest_folder("librispeech", corpus_dir, cache_dir, skip_bad)
    key = cache_key(
        loader="librispeech", version=LOADER_VERSION, source=str(corpus_dir), parts=parts,
        phones=phon_note if phon else None, skip_bad=skip_bad,
        fp=fingerprint([corpus_dir] + [corpus_dir / p for p in parts]),
    )

    def build(tmp: Path) -> None:
        from lhotse import RecordingSet, SupervisionSet

        usable = [p for p in parts if next((corpus_dir / p).rglob("*.trans.txt"), None) is not None]
        if not usable:
            raise HarnessError(
                f"{corpus_dir}: no <spk>/<chapter>/<spk>-<chapter>.trans.txt under {', '.join(sorted(parts))}"
            )
        notes = [f"part {p} has no transcripts; skipped" for p in parts if p not in usable]
        skipped: Optional[Dict[str, str]] = {} if skip_bad else None
        recs, sups = [], []
        phone_cache: Dict[str, str] = {}
        n_phone_fail = 0
        for part in usable:
            pairs = read_part(corpus_dir / part, skipped, num_jobs or min(8, os.cpu_count() or 1))
            if not pairs:
                notes.append(f"part {part}: no utterance with an existing, readable .flac; skipped")
                continue
            for rec, s in pairs:
                recs.append(rec)
                text = " ".join((s.text or "").upper().split())
                custom = {"split": parts[part], "subset": "speech", "part": part}
                if phon is not None:
                    if text not in phone_cache:
                        try:
                            phone_cache[text] = " ".join(phon(text))
                        except Exception as e:  # one bad text must not sink the corpus
                            n_phone_fail += 1
                            log.warning("espeak failed on %s: %s", s.id, e)
                            phone_cache[text] = ""
                    if phone_cache[text]:
                        custom["phones"] = phone_cache[text]
                sups.append(dataclasses.replace(s, text=text, language="en", custom=custom))
        if not sups:
            raise HarnessError(f"{corpus_dir}: the transcripts list no utterance whose .flac exists")
        if phon is None:
            notes.append(f"no phones: {phon_note}; the PR task cannot run on this corpus")
        elif n_phone_fail:
            notes.append(f"espeak failed on {n_phone_fail} texts; those utterances have no phones")
        splits_present = sorted({(s.custom or {})["split"] for s in sups})
        for sp in ("train", "dev", "test"):
            if sp not in splits_present:
                notes.append(f"no {sp} split (expected part: {dict(train=TRAIN_PREFERRED, dev='dev-clean', test='test-clean')[sp]})")
        meta = {
            "name": "librispeech", "kind": "real", "source": str(corpus_dir), "cache_key": key,
            "loader_version": LOADER_VERSION, "version": LOADER_VERSION, "size": "full", "parts": parts, "languages": ["en"],
            "num_speakers": len({s.speaker for s in sups}),
            "phones": phon_note if phon else None,
            "phone_set": "espeak-ng mnemonics (not the 70-phone SUPERB lexicon)" if phon else None,
            "counts": split_counts(sups), "notes": notes, **skip_meta(skip_bad, skipped or {}),
        }
        write_prepared(tmp, RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups), meta)

    return build_cached(folder, key, build)
