"""Load a corpus by spec: a schema folder (synth or any prepared corpus) or a real corpus folder.

    load_corpus("runs/data/synth-tiny")                 a folder in the schema of harness.data.corpus
    load_corpus("synth:runs/data/synth-tiny")           the same, explicitly
    load_corpus("librispeech:/data/LibriSpeech")        LibriSpeech (the folder or its parent)
    load_corpus("voxceleb1:/data/VoxCeleb1")            VoxCeleb1 (wav/ + veri_test2.txt + iden_split.txt)
    load_corpus("speechcommands:/data/speech_commands_v0.01")   Speech Commands v0.01
    load_corpus("libri2mix:/data/Libri2Mix")            Libri2Mix wav16k/min (separation, "mix")
    load_corpus("librimix_sd:/data/sd")                 SUPERB LibriMix diarization dirs ("conv")
    load_corpus("fleurs:/data/fleurs")                  FLEURS (lhotse layout: metadata/<lang>/*.tsv + <lang>/<split>/*.wav)
    load_corpus("commonvoice:/data/cv-corpus-15.0")     Common Voice (<lang>/{train,dev,test}.tsv + <lang>/clips/)
    load_corpus("mlsuperb:/data/eighth_version")        ML-SUPERB release (<dataset>/<lang>/wav + transcript_*.txt)

A real corpus is turned into lhotse manifests in the schema once, written to
`<cache_dir>/<name>-<hash of the source path>/` (`...-skip-bad/` when prepared with skip_bad),
and read back from there on the next load. The
cache is rebuilt, with one line saying so, when any file under the source folders changes (name,
size or mtime: `fingerprint`), the loader version or its options change, or the cache's own files
no longer match the digests recorded in its corpus.json (`read_cached`).
It is built under an exclusive lock in a temporary sibling folder and published by a rename
(`build_cached`, harness/diskio.py): concurrent loads of one corpus build it once, and no load
ever reads a half-written cache.
Default cache_dir: `.harness_cache` next to the data folder when writable, else
`<tmp>/harness_cache`. Nothing here downloads anything.

An unreadable audio file stops the preparation with one line naming it; with skip_bad it is
left out instead and listed in meta["skipped_bad"] ({utterance id: "path: reason"}), which
`harness eval --skip-bad` adds to the run's skipped files.

The loaders live in corpora_librispeech.py, corpora_voxceleb.py, corpora_speechcommands.py,
corpora_librimix.py (Libri2Mix, SUPERB LibriMix diarization) and corpora_multilingual.py (FLEURS,
Common Voice, ML-SUPERB); each registers its corpus kind (`register_corpus`: aliases and the
folder layout, shown by `--corpus` help and in errors) and LOADER_MODULES lists them. This
module holds the spec parser, the schema-folder ("synth") loader and the cache helpers they share.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

from harness.data.corpus import Corpus, load_manifest_dir, save_manifests, write_trials
from harness.diskio import build_and_publish, file_digest, index_digest, locked
from harness.errors import BadAudioError, HarnessError
from harness.registry import CORPORA, register_corpus

#: the modules that register corpus kinds (a test checks it names every corpora_*.py)
LOADER_MODULES = ("harness.data.corpora_librispeech", "harness.data.corpora_voxceleb",
                  "harness.data.corpora_speechcommands", "harness.data.corpora_librimix",
                  "harness.data.corpora_multilingual")


def corpus_kinds() -> Dict[str, Dict[str, Any]]:
    """{corpus kind: {"aliases": (...), "layout": "..."}} of every registered loader, synth first."""
    import importlib

    for m in LOADER_MODULES:
        importlib.import_module(m)
    names = sorted(CORPORA.names(), key=lambda n: (n != "synth", n))
    return {n: {"aliases": tuple(CORPORA.meta(n).get("aliases", ())), "layout": CORPORA.meta(n)["layout"]}
            for n in names}


def prefixes() -> Dict[str, str]:
    """Every accepted spec prefix (kinds and their aliases) -> its corpus kind."""
    return {p: n for n, m in corpus_kinds().items() for p in (n, *m["aliases"])}


def kinds_help() -> str:
    """One line for `--corpus` help: `synth | DIR | librispeech:DIR | ...`."""
    return " | ".join(["synth", "DIR"] + [f"{n}:DIR" for n in corpus_kinds() if n != "synth"])


CACHE_FOLDER_NAME = ".harness_cache"


def load_corpus(spec: str, cache_dir: Optional[Path] = None, skip_bad: bool = False) -> Corpus:
    """Load the corpus named by `spec` (see the module docstring).

    Args:
        spec: a schema folder path, or "<kind>:<path>" with a registered corpus kind or one of
            its aliases (`corpus_kinds()`: synth, librispeech, voxceleb1, ...).
        cache_dir: where real corpora's manifests are written (see module docstring).
        skip_bad: a real corpus's unreadable audio files are left out of its manifests and
            listed in its meta["skipped_bad"] ({utterance id: "path: reason"}) instead of
            stopping with an error naming the file (schema folders already have manifests).

    Raises:
        HarnessError: unknown prefix, missing folder, or a folder not in the expected layout.
    """
    name, path = parse_spec(spec)
    return CORPORA.get(name)(path, cache_dir, skip_bad=skip_bad)


@register_corpus("synth", layout="a folder in the project's schema (corpus.json + manifests): harness data synth, "
                                  "or one written by harness data prepare")
def load_schema_folder(path: Path, cache_dir: Optional[Path] = None, skip_bad: bool = False) -> Corpus:
    """A schema folder: its manifests exist already, so `skip_bad` acts at decode time only."""
    existing_folder(path, "corpus folder")
    from harness.data.synth_spec import with_speech_datasets

    return with_speech_datasets(load_manifest_dir(path))


def describe(c: Corpus) -> List[str]:
    """Lines saying what a loaded corpus holds (for `harness data prepare`)."""
    counts: Dict[str, int] = {}
    for u in c.utterances:
        counts[f"{u.subset}/{u.split}"] = counts.get(f"{u.subset}/{u.split}", 0) + 1
    skipped = c.meta.get("skipped_bad") or {}
    out = [f"{c.name} ({c.kind}) in {c.root}: {len(c.utterances)} utterances, "
           f"{sum(u.duration for u in c.utterances) / 3600:.2f} h"]
    out += [f"  {k}: {n}" for k, n in sorted(counts.items())]
    out += [f"  trials {s}: {len(t)}" for s, t in sorted(c.trials.items())]
    out += [f"  skipped unreadable files: {len(skipped)}"] + [f"    {v}" for v in list(skipped.values())[:10]]
    return out


def parse_spec(spec: str) -> tuple:
    """Split a spec into (canonical corpus name, path). A bare path means "synth" (schema folder)."""
    spec = str(spec).strip()
    if not spec:
        raise HarnessError("empty corpus spec; expected a corpus folder or " + _known_text())
    m = re.match(r"^([A-Za-z][A-Za-z0-9_]+):(.*)$", spec)  # 2+ chars: never a drive letter
    if m:
        prefix, rest = m.group(1).lower(), m.group(2)
        known = prefixes()
        if prefix in known:
            if not rest.strip():
                raise HarnessError(f"corpus spec {spec!r} names no folder; expected {prefix}:PATH")
            return known[prefix], Path(rest.strip()).expanduser()
        if not Path(spec).expanduser().exists():
            raise HarnessError(f"unknown corpus prefix {m.group(1)!r} in {spec!r}; known: " + _known_text())
    path = Path(spec).expanduser()
    if not path.exists():
        raise HarnessError(f"corpus folder {path} does not exist (spec {spec!r}; a folder or " + _known_text() + ")")
    existing_folder(path, "corpus folder")
    if not (path / "corpus.json").exists():
        hint = _guess_layout(path)
        if hint:
            raise HarnessError(f"{path} is not a corpus folder (no corpus.json); it looks like {hint}: use {hint}:{path}")
    return "synth", path


def _known_text() -> str:
    return ", ".join(f"{p}:PATH" for p in prefixes())


def _guess_layout(path: Path) -> Optional[str]:
    names = {p.name for p in path.iterdir()} if path.is_dir() else set()
    if "LibriSpeech" in names or any(n.startswith(("train-clean", "dev-clean", "test-clean")) for n in names):
        return "librispeech"
    if "validation_list.txt" in names or "speech_commands_v0.01" in names:
        return "speechcommands"
    if names & {"veri_test.txt", "veri_test2.txt", "iden_split.txt"} or any(re.fullmatch(r"id1\d{4}", n) for n in names):
        return "voxceleb1"
    if names & {"Libri2Mix", "wav16k"} or any(
            (path / n / "mix_clean").is_dir() for n in ("train-100", "dev", "test")):
        return "libri2mix"  # before fleurs: a Libri2Mix min folder has a metadata/ folder too
    if any((path / n / "wav.scp").is_file() and (path / n / "rttm").is_file()
           for n in ("train", "dev", "test")):
        return "librimix_sd"
    if (path / "metadata").is_dir() or (path / "fleurs" / "metadata").is_dir():
        return "fleurs"
    subdirs = [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []
    if any((p / "clips").is_dir() and (p / "train.tsv").is_file() for p in subdirs) or (path / "clips").is_dir():
        return "commonvoice"
    if any((lg / "transcript_10min_test.txt").is_file() for p in subdirs for lg in p.iterdir() if lg.is_dir()):
        return "mlsuperb"
    return None


# ---------------------------------------------------------------- cache helpers (shared by loaders)


def manifest_folder(name: str, source: Path, cache_dir: Optional[Path], skip_bad: bool = False) -> Path:
    """The folder that holds (or will hold) the prepared manifests of `source`; a corpus prepared
    with --skip-bad has its own (`-skip-bad`), so neither is ever used in place of the other."""
    source = Path(source).resolve()
    digest = hashlib.sha1(str(source).encode()).hexdigest()[:10]
    if cache_dir is None:
        cache_dir = default_cache_dir(source)
    return Path(cache_dir) / (f"{name}-{digest}" + ("-skip-bad" if skip_bad else ""))


def existing_folder(path: Path, what: str) -> Path:
    """`path` when it is a folder; else a HarnessError: "<what> <path> does not exist" or
    "... is a file, not a folder"."""
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise HarnessError(f"{what} {path} is a file, not a folder")
    raise HarnessError(f"{what} {path} does not exist")


def default_cache_dir(source: Path) -> Path:
    """`.harness_cache` next to the data folder if writable, else a folder in the temp dir."""
    parent = Path(source).resolve().parent
    cand = parent / CACHE_FOLDER_NAME
    try:
        cand.mkdir(exist_ok=True)
        if os.access(cand, os.W_OK):
            return cand
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "harness_cache"


def fingerprint(paths: Iterable[Path]) -> str:
    """A fingerprint of folders/files: the name, size and mtime of each, and of every file and
    folder below each folder (hidden entries left out), so an edited transcript or a replaced
    audio file deep inside a chapter folder changes it. Stat calls only, no content read: 0.5 s per 30,000 files
    (measured on this project's 2-core development machine)."""
    h = hashlib.sha1()
    paths = sorted({Path(x) for x in paths}, key=str)
    dirs = [p for p in paths if p.is_dir()]
    for p in paths:
        h.update(str(p).encode())
        try:
            st = p.stat()
        except OSError:
            h.update(b"-")
            continue
        h.update(f"{st.st_mtime_ns}:{st.st_size}".encode())
        if p.is_dir() and not any(d != p and d in p.parents for d in dirs):  # walked once, from the top
            for top, subdirs, files in os.walk(p):
                subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
                for name in sorted(subdirs) + sorted(f for f in files if not f.startswith(".")):
                    full = os.path.join(top, name)
                    try:
                        st = os.stat(full)
                        stamp = f"{st.st_mtime_ns}:{st.st_size}" if name not in subdirs else "d"
                    except OSError:
                        stamp = "-"  # a broken link: named, so its repair changes the fingerprint
                    h.update(f"{os.path.relpath(full, p)}|{stamp}\n".encode())
    return h.hexdigest()


def cache_key(**parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def cache_problem(folder: Path, key: str) -> Optional[str]:
    """Why the prepared corpus in `folder` cannot be used for `key` (None: it can). Every file of
    the cache is checked: corpus.json against its own digest and `key`, the manifests and trial
    lists against the digests corpus.json records."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "corpus.json").read_text())
        if not isinstance(meta, dict) or meta.get("digest") != index_digest(meta):
            return "its corpus.json is damaged or edited (digest mismatch)"
        if meta.get("cache_key") != key:
            return "its source files or the loader's options changed since it was made"
        files = meta.get("files") or {}
        present = sorted(p.name for p in folder.iterdir() if p.name != "corpus.json" and not p.name.startswith("."))
        if sorted(files) != present:
            return f"its files are {', '.join(present)}, corpus.json lists {', '.join(sorted(files))}"
        for name, digest in files.items():
            if file_digest(folder / name) != digest:
                return f"{name} does not match its digest in corpus.json"
    except (OSError, ValueError) as e:
        return f"unreadable ({type(e).__name__}: {str(e)[:100]})"
    return None


def read_cached(folder: Path, key: str, log: Optional[Callable[[str], None]] = None) -> Optional[Corpus]:
    """The prepared corpus in `folder` if it is sound and carries `key`, else None (`log` is
    told why, in one line, when a cache was there)."""
    folder = Path(folder)
    if not (folder / "corpus.json").exists():
        return None
    why = cache_problem(folder, key)
    if why is None:
        try:
            return load_manifest_dir(folder)
        except Exception as e:  # a damaged cache is rebuilt, never fatal
            why = f"unreadable ({type(e).__name__}: {' '.join(str(e).split())[:100]})"
    if log is not None:
        log(f"manifest cache {folder} is out of date or damaged ({why}); rebuilding it")
    return None


def build_cached(folder: Path, key: str, build: Callable[[Path], None],
                 log: Callable[[str], None] = print) -> Corpus:
    """The prepared corpus in `folder` when its corpus.json carries `key` and its files match
    their digests, else `build(tmp)` (which writes the manifests into the empty folder `tmp` with
    `write_prepared`) published as `folder`, with one line to `log` saying why it was rebuilt.

    One process builds at a time, in a temporary sibling folder published by a rename (see
    harness/diskio.py): a reader never sees a partial cache, and a second process preparing the
    same corpus waits for the first and then reads what it published.
    """
    folder = Path(folder)
    cached = read_cached(folder, key)
    if cached is not None:
        return cached
    with locked(folder, "--cache"):
        cached = read_cached(folder, key, log)
        if cached is not None:
            return cached
        build_and_publish(folder, build, "--cache")
        return load_manifest_dir(folder)


def write_prepared(folder: Path, recordings, supervisions, meta: Dict[str, Any],
                   trials: Optional[Dict[str, List[tuple]]] = None) -> None:
    """Write trials, manifests and corpus.json into `folder` (a `build_cached` staging folder);
    corpus.json records every other file's blake2b and its own digest (`cache_problem`)."""
    folder = Path(folder)
    for split, tr in (trials or {}).items():
        write_trials(folder / f"trials_{split}.txt", tr)
    save_manifests(folder, recordings, supervisions, meta)
    files = {p.name: file_digest(p) for p in sorted(folder.iterdir()) if p.name != "corpus.json"}
    meta = {**meta, "files": files}
    (folder / "corpus.json").write_text(json.dumps({**meta, "digest": index_digest(meta)}, indent=1, sort_keys=True))


def recording_from_file(path: Path, rec_id: str, skipped: Optional[Dict[str, str]] = None):
    """lhotse Recording of an audio file. An unreadable file raises BadAudioError naming it;
    with `skipped` (a dict: --skip-bad) it is recorded there instead, as {rec_id: "path: reason"}
    (the form of the decode-time skips, features.SkipCounter), and None is returned."""
    from lhotse import Recording

    try:
        return Recording.from_file(str(path), recording_id=rec_id)
    except Exception as e:
        detail = " ".join(str(e).split())[:200]  # lhotse's messages span lines; ours are one line
        err = BadAudioError(path, f"cannot read the header ({type(e).__name__}: {detail})")
        if skipped is None:
            raise err from None
        skipped[rec_id] = f"{err.path}: {err.reason}"
        return None


def text_lines(path: Path) -> List[str]:
    """The lines of a UTF-8 text file (a transcript, a list, a tsv). A line that is not UTF-8 is a
    HarnessError naming the file, the line and the byte, instead of a decoder traceback."""
    path = Path(path)
    out = []
    for i, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise HarnessError(f"{path}:{i}: not UTF-8 text (byte {e.start + 1} of the line is "
                               f"{raw[e.start]:#04x})") from None
    return out


def missing_audio(path: Path, listed_in: Path, rec_id: str, skipped: Optional[Dict[str, str]]) -> bool:
    """True when the audio file a list names is not there (missing, a broken link, a link loop):
    a BadAudioError naming it, or with `skipped` (--skip-bad) recorded there as a decode-time
    skip is; never dropped without a word."""
    try:
        os.stat(path)
        return False
    except OSError as e:
        err = BadAudioError(path, f"listed in {listed_in} but not readable ({e.strerror or type(e).__name__})")
        if skipped is None:
            raise err from None
        skipped[rec_id] = f"{err.path}: {err.reason}"
        return True


def skip_meta(skip_bad: bool, skipped: Dict[str, str]) -> Dict[str, Any]:
    """The meta entries of a prepared corpus about --skip-bad: the flag and the skipped files."""
    return {"skip_bad": skip_bad, "skipped_bad": dict(sorted(skipped.items()))}


def split_counts(supervisions) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for s in supervisions:
        key = f"{(s.custom or {}).get('subset', 'speech')}/{(s.custom or {}).get('split', 'train')}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))
