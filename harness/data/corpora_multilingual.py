"""Multilingual corpora -> corpus schema: FLEURS, Common Voice and the ML-SUPERB release.

Every utterance becomes one supervision with `text` as the corpus gives it (no normalisation:
the ML-SUPERB tasks remove bracketed content and punctuation and upper-case themselves),
`language` = the corpus's own code (FLEURS "en_us", Common Voice "en" / "zh-CN", ML-SUPERB
ISO 639-3 "eng"), and custom fields `split`, `subset`="speech", `dataset`, `lang_class`
("fewshot" for ML-SUPERB's 20 few-shot languages, "normal" everywhere else).

FLEURS (the layout lhotse's `download_fleurs` writes; nothing is downloaded):
    <root>/<lang>/{train,dev,test}/<file>.wav           16 kHz wav
    <root>/metadata/<lang>/{train,dev,test}.tsv         7 tab-separated columns: id, file name,
                                                        raw text, text, chars, samples, gender
  `<root>` may also be the folder holding `fleurs/`. Ids: "<lang>-<split>-<file stem>"; text =
  the normalised column, custom raw_text, speaker "<id>_<n-th reading of it>" (as lhotse's
  `prepare_fleurs` makes them).

Common Voice (an extracted release, e.g. cv-corpus-15.0-2023-09-08):
    <root>/<lang>/{train,dev,test}.tsv + <root>/<lang>/clips/<clip>.mp3
  `<root>` may also be one language's folder. The tsv columns path and sentence are required;
  client_id (speaker), gender, age, accents (accent before release 10) and variant are kept
  when present (lhotse's `prepare_commonvoice` needs all of them).
  Clips listed in a tsv but absent on disk are left out and counted in meta["notes"]. MP3 is
  decoded by libsndfile (soundfile >= 0.12 with libsndfile >= 1.1 reads it).

FLEURS and Common Voice are read directly, not through lhotse's recipes: those stop at the
first unreadable audio file, which --skip-bad must leave out instead.

ML-SUPERB (the release folder of the ESPnet egs2/ml_superb recipe, e.g. eighth_version/):
    <root>/<dataset>/<lang>/wav/<utt_id>.wav
    <root>/<dataset>/<lang>/transcript_10min_train.txt, transcript_1h_train.txt,
                            transcript_10min_dev.txt, transcript_10min_test.txt
  Transcript lines: "<utt_id> <field> <text>" (the middle field is not used, as in the recipe).
  Train utterances carry custom `budgets`: the train sets they belong to ("10min", "1h"); dev
  and test are the 10-minute sets (the recipe uses them for both budgets). As in the recipe,
  train files over 20 s are left out. The release does not mark few-shot languages; the
  20 reserved languages of ML-SUPERB (FEWSHOT_LANGUAGES) get lang_class "fewshot" and only 5
  train utterances per language: the ids of `fewshot_ids_file` (one id per line, e.g. the
  recipe's selection) when given, else a seeded draw from the language's 10-min train set
  (not the recipe's selection: CER few-shot is then comparable only between runs of this
  loader). Those 5 count for both budgets. meta["mono_pairs"] names the 13 monolingual
  (language, dataset) pairs of the benchmark present: in the recipe a pair's train and dev sets
  come from that dataset only, its test set from every dataset of the language.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from harness.data.corpora import (
    build_cached, cache_key, existing_folder, fingerprint, manifest_folder, recording_from_file,
    skip_meta, split_counts, write_prepared, text_lines,
)
from harness.data.corpus import SPLITS, Corpus
from harness.errors import HarnessError
from harness.registry import register_corpus

LOADER_VERSION = 1

# ML-SUPERB's few-shot (reserved) languages, ISO 639-3: 5 train utterances each.
FEWSHOT_LANGUAGES = ("dan", "lit", "tur", "srp", "vie", "kaz", "zul", "tsn", "epo", "frr",
                     "tok", "umb", "bos", "ful", "ceb", "luo", "kea", "sun", "tso", "tos")
FEWSHOT_TRAIN_UTTS = 5
# The monolingual track: name -> (language, dataset whose train/dev sets are used).
MONO_PAIRS = {
    "eng1": ("eng", "mls"), "eng2": ("eng", "nchlt"), "eng3": ("eng", "voxpopuli"),
    "fra1": ("fra", "voxforge"), "fra2": ("fra", "voxpopuli"), "deu1": ("deu", "swc"),
    "deu2": ("deu", "voxpopuli"), "rus": ("rus", "M-AILABS"), "swa": ("swa", "ALFFA"),
    "swe": ("swe", "NST"), "jpn": ("jpn", "commonvoice"), "cmn": ("cmn", "fleurs"),
    "xty": ("xty", "mexico-el"),
}
MLSUPERB_TRAIN = {"10min": "transcript_10min_train.txt", "1h": "transcript_1h_train.txt"}
MLSUPERB_EVAL = {"dev": "transcript_10min_dev.txt", "test": "transcript_10min_test.txt"}
MAX_TRAIN_SECONDS = 20.0

FLEURS_COLUMNS = 7
CV_REQUIRED_COLUMNS = ("path", "sentence")


def _custom(split: str, dataset: str, lang_class: str = "normal", **more) -> dict:
    return {"split": split, "subset": "speech", "dataset": dataset, "lang_class": lang_class, **more}


def _meta(name: str, src: Path, key: str, sups, notes: List[str], skipped: Optional[Dict[str, str]],
          **more) -> dict:
    langs = sorted({s.language for s in sups if s.language})
    return {"name": name, "kind": "real", "source": str(src), "cache_key": key, "loader_version": LOADER_VERSION,
            "version": LOADER_VERSION, "size": "full", "languages": langs,
            "num_speakers": len({s.speaker for s in sups if s.speaker}),
            "counts": split_counts(sups), "notes": notes, **skip_meta(skipped is not None, skipped or {}),
            **more}  # fmt: skip


# ---------------------------------------------------------------- FLEURS


def _pick_languages(what: str, corpus_dir: Path, present: List[str], languages: Optional[Sequence[str]]) -> List[str]:
    """The requested languages (all present ones if none), or a clear error naming the missing."""
    langs = list(languages) if languages else present
    unknown = sorted(set(langs) - set(present))
    if unknown:
        raise HarnessError(f"{what} {corpus_dir}: language(s) {', '.join(unknown)} not found "
                           f"(present: {', '.join(present)})")
    return langs


def find_fleurs_dir(root: Path) -> Tuple[Path, List[str]]:
    """(folder holding metadata/ and the language folders, languages present)."""
    root = existing_folder(root, "FLEURS folder")
    for cand in (root, root / "fleurs"):
        meta = cand / "metadata"
        if meta.is_dir():
            langs = sorted(p.name for p in meta.iterdir() if p.is_dir() and (cand / p.name).is_dir())
            if langs:
                return cand.resolve(), langs
            raise HarnessError(
                f"{meta}: no language folder <lang> with a matching {cand}/<lang>/ audio folder "
                f"(expected {cand}/<lang>/{{train,dev,test}}/*.wav and {meta}/<lang>/{{train,dev,test}}.tsv)"
            )
    raise HarnessError(
        f"{root} is not a FLEURS folder (lhotse layout): expected {root}/metadata/<lang>/{{train,dev,test}}.tsv "
        f"and {root}/<lang>/{{train,dev,test}}/<file>.wav (or the same under {root}/fleurs)"
    )


def _fleurs_rows(corpus_dir: Path, lang: str, split: str) -> List[Tuple[str, Path, str, str, str]]:
    """(prompt id, wav, raw text, text, gender) of each line of one split's tsv, checked."""
    tsv = corpus_dir / "metadata" / lang / f"{split}.tsv"
    if not tsv.is_file():
        raise HarnessError(f"FLEURS {lang}: {tsv} is missing (train, dev and test are read)")
    rows = []
    for i, line in enumerate(text_lines(tsv), 1):
        if not line.strip():
            continue
        cols = line.strip().split("\t")
        if len(cols) != FLEURS_COLUMNS:
            raise HarnessError(f"{tsv}:{i}: expected {FLEURS_COLUMNS} tab-separated columns (id, file name, raw "
                               f"text, text, chars, samples, gender), got {len(cols)}")  # fmt: skip
        if not cols[5].isdigit():
            raise HarnessError(f"{tsv}:{i}: column 6 (number of samples) is {cols[5]!r}, not an integer")
        wav = corpus_dir / lang / split / f"{Path(cols[1]).stem}.wav"
        if not wav.is_file():
            raise HarnessError(f"{tsv}:{i}: audio file {wav} is missing")
        rows.append((cols[0], wav, cols[2], cols[3], cols[6]))
    return rows


@register_corpus("fleurs",
                 layout="FLEURS metadata/<lang>/*.tsv + <lang>/<split>/*.wav")
def load_fleurs(root: Path, cache_dir: Optional[Path] = None, languages: Optional[Sequence[str]] = None,
                skip_bad: bool = False) -> Corpus:
    """FLEURS at `root` as a Corpus (kind "real", name "fleurs"); see module docstring."""
    corpus_dir, present = find_fleurs_dir(root)
    langs = _pick_languages("FLEURS", corpus_dir, present, languages)
    folder = manifest_folder("fleurs", corpus_dir, cache_dir, skip_bad)
    key = cache_key(loader="fleurs", version=LOADER_VERSION, source=str(corpus_dir), languages=langs,
                    skip_bad=skip_bad,
                    fp=fingerprint([corpus_dir, corpus_dir / "metadata"] + [corpus_dir / "metadata" / lg for lg in langs]
                                   + [corpus_dir / lg / sp for lg in langs for sp in SPLITS]))  # fmt: skip
    return build_cached(folder, key, lambda tmp: _build_fleurs(tmp, corpus_dir, langs, key,
                                                               {} if skip_bad else None))


def _build_fleurs(tmp: Path, corpus_dir: Path, langs: List[str], key: str,
                  skipped: Optional[Dict[str, str]]) -> None:
    """Write the manifests of `load_fleurs` into `tmp` (`skipped`: see recording_from_file)."""
    from lhotse import RecordingSet, SupervisionSegment, SupervisionSet

    rows = {(lang, split): _fleurs_rows(corpus_dir, lang, split) for lang in langs for split in SPLITS}
    for lang in langs:
        if not any(rows[lang, split] for split in SPLITS):
            raise HarnessError(f"FLEURS {lang}: {corpus_dir / 'metadata' / lang}/*.tsv list no utterance")
    recs, sups, notes = [], [], []
    for (lang, split), split_rows in rows.items():
        n_prompt: Dict[str, int] = {}
        n = len(sups)
        for prompt, wav, raw_text, text, gender in split_rows:
            # speaker: "<prompt id>_<n-th reading of it>", as lhotse's prepare_fleurs names it
            n_prompt[prompt] = n_prompt.get(prompt, 0) + 1
            rid = f"{lang}-{split}-{wav.stem}"
            rec = recording_from_file(wav, rid, skipped)
            if rec is None:
                continue
            recs.append(rec)
            sups.append(SupervisionSegment(id=rid, recording_id=rid, start=0.0, duration=rec.duration, channel=0,
                                           text=text, language=lang, speaker=f"{prompt}_{n_prompt[prompt]}",
                                           gender=gender, custom=_custom(split, "fleurs", raw_text=raw_text)))
        if len(sups) == n:
            notes.append(f"{lang} {split}: no utterance")
    meta = _meta("fleurs", corpus_dir, key, sups, notes, skipped)
    write_prepared(tmp, RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups), meta)


# ---------------------------------------------------------------- Common Voice


def find_commonvoice_dir(root: Path) -> Tuple[Path, List[str]]:
    """(release folder, languages with clips/ and at least one split tsv)."""
    root = existing_folder(root, "Common Voice folder")

    def is_lang(d: Path) -> bool:
        return (d / "clips").is_dir() and any((d / f"{sp}.tsv").is_file() for sp in SPLITS)

    if is_lang(root):
        return root.resolve().parent, [root.resolve().name]
    langs = sorted(p.name for p in root.iterdir() if p.is_dir() and is_lang(p))
    if not langs:
        raise HarnessError(
            f"{root} is not a Common Voice release folder: expected {root}/<lang>/{{train,dev,test}}.tsv "
            f"and {root}/<lang>/clips/<clip>.mp3 (or {root} being one <lang> folder)"
        )
    return root.resolve(), langs


def _tsv_header(path: Path) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\r\n").split("\t")


def _read_cv_tsv(path: Path) -> List[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _cv_split(lang_dir: Path, lang: str, split: str, skipped: Optional[Dict[str, str]]):
    """Recordings and supervisions of one split's tsv (clips absent on disk are left out)."""
    from lhotse import SupervisionSegment

    recs, sups = [], []
    for row in _read_cv_tsv(lang_dir / f"{split}.tsv"):
        clip = lang_dir / "clips" / row["path"]
        if not clip.is_file():
            continue
        rid = Path(row["path"]).stem
        rec = recording_from_file(clip, rid, skipped)
        if rec is None:
            continue
        recs.append(rec)
        custom = {k: row[k] for k in ("age", "accent", "accents", "variant") if row.get(k)}
        sups.append(SupervisionSegment(id=rid, recording_id=rid, start=0.0, duration=rec.duration, channel=0,
                                       language=lang, speaker=row.get("client_id") or None,
                                       text=(row.get("sentence") or "").strip(), gender=row.get("gender") or None,
                                       custom=_custom(split, "commonvoice", **custom)))  # fmt: skip
    return recs, sups


@register_corpus("commonvoice", aliases=("common_voice", "cv"),
                 layout="Common Voice <lang>/{train,dev,test}.tsv + <lang>/clips/")
def load_commonvoice(root: Path, cache_dir: Optional[Path] = None, languages: Optional[Sequence[str]] = None,
                     skip_bad: bool = False) -> Corpus:
    """Common Voice at `root` as a Corpus (kind "real", name "commonvoice"); see module docstring."""
    corpus_dir, present = find_commonvoice_dir(root)
    langs = _pick_languages("Common Voice", corpus_dir, present, languages)
    folder = manifest_folder("commonvoice", corpus_dir / "+".join(langs), cache_dir, skip_bad)
    key = cache_key(loader="commonvoice", version=LOADER_VERSION, source=str(corpus_dir), languages=langs,
                    skip_bad=skip_bad,
                    fp=fingerprint([corpus_dir / lg for lg in langs] + [corpus_dir / lg / "clips" for lg in langs]))
    return build_cached(folder, key, lambda tmp: _build_commonvoice(tmp, corpus_dir, langs, key,
                                                                    {} if skip_bad else None))


def _build_commonvoice(tmp: Path, corpus_dir: Path, langs: List[str], key: str,
                       skipped: Optional[Dict[str, str]]) -> None:
    """Write the manifests of `load_commonvoice` into `tmp` (`skipped`: see recording_from_file)."""
    from lhotse import RecordingSet, SupervisionSet

    recs, sups, notes = [], [], []
    for lang in langs:
        lang_dir = corpus_dir / lang
        splits = [sp for sp in SPLITS if (lang_dir / f"{sp}.tsv").is_file()]
        notes += [f"{lang}: no {sp}.tsv" for sp in SPLITS if sp not in splits]
        for sp in splits:
            head = _tsv_header(lang_dir / f"{sp}.tsv")
            miss = [c for c in CV_REQUIRED_COLUMNS if c not in head]
            if miss:
                raise HarnessError(f"{lang_dir / f'{sp}.tsv'}: column(s) {', '.join(miss)} missing from the header "
                                   f"(found: {', '.join(head)})")  # fmt: skip
        listed = {sp: [r["path"] for r in _read_cv_tsv(lang_dir / f"{sp}.tsv")] for sp in splits}
        n_missing = sum(not (lang_dir / "clips" / p).is_file() for ps in listed.values() for p in ps)
        if n_missing:
            notes.append(f"{lang}: {n_missing} clips listed in the tsv files are missing under {lang_dir / 'clips'}; left out")
        for sp in splits:
            r, s = _cv_split(lang_dir, lang, sp, skipped)
            recs += r
            sups += s
    if not sups:
        raise HarnessError(f"Common Voice {corpus_dir}: no clip listed in the tsv files of {', '.join(langs)} exists")
    ids = [s.id for s in sups]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise HarnessError(f"Common Voice {corpus_dir}: clip {dup} is listed in more than one split tsv")
    meta = _meta("commonvoice", corpus_dir, key, sups, notes, skipped)
    write_prepared(tmp, RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups), meta)


# ---------------------------------------------------------------- ML-SUPERB


def _is_mlsuperb_lang(d: Path) -> bool:
    return d.is_dir() and (d / MLSUPERB_EVAL["test"]).is_file()


def find_mlsuperb_dir(root: Path) -> Tuple[Path, Dict[str, List[str]]]:
    """(release folder, {dataset: [languages]}); `root` may also be the folder holding the release."""
    root = existing_folder(root, "ML-SUPERB folder")
    cands = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    for cand in cands:
        found = {}
        for ds in sorted(p for p in cand.iterdir() if p.is_dir()):
            langs = sorted(p.name for p in ds.iterdir() if _is_mlsuperb_lang(p))
            if langs:
                found[ds.name] = langs
        if found:
            return cand.resolve(), found
    raise HarnessError(
        f"{root} is not an ML-SUPERB release folder: expected {root}/<dataset>/<lang>/wav/<utt_id>.wav with "
        f"{', '.join(list(MLSUPERB_TRAIN.values()) + list(MLSUPERB_EVAL.values()))} in each <lang> folder"
    )


def read_mlsuperb_transcript(path: Path) -> List[Tuple[str, str]]:
    """[(utt_id, text)] of a transcript file with lines "<utt_id> <field> <text>"."""
    out = []
    for i, line in enumerate(text_lines(path), 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=2)
        if len(parts) < 3:
            raise HarnessError(f"{path}:{i}: expected '<utt_id> <field> <text>', got {line.strip()!r}")
        out.append((parts[0], parts[2]))
    return out


def _fewshot_selection(path: Optional[Path]) -> Optional[set]:
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        raise HarnessError(f"few-shot id list {path} does not exist")
    return {line.split()[0] for line in text_lines(path) if line.strip()}


@register_corpus("mlsuperb", aliases=("ml_superb",),
                 layout="the ML-SUPERB release <dataset>/<lang>/wav + transcript_*.txt")
def load_mlsuperb(root: Path, cache_dir: Optional[Path] = None, seed: int = 0,
                  fewshot_ids_file: Optional[Path] = None, max_train_seconds: float = MAX_TRAIN_SECONDS,
                  fewshot_train_utts: int = FEWSHOT_TRAIN_UTTS, skip_bad: bool = False) -> Corpus:
    """The ML-SUPERB release at `root` as a Corpus (kind "real", name "mlsuperb"); see module docstring."""
    release, found = find_mlsuperb_dir(root)
    chosen_ids = _fewshot_selection(fewshot_ids_file)
    lang_dirs = [release / ds / lg for ds, lgs in found.items() for lg in lgs]
    folder = manifest_folder("mlsuperb", release, cache_dir, skip_bad)
    key = cache_key(loader="mlsuperb", version=LOADER_VERSION, source=str(release), seed=seed,
                    fewshot=sorted(chosen_ids) if chosen_ids is not None else None, max_s=max_train_seconds,
                    n_fewshot=fewshot_train_utts, skip_bad=skip_bad,
                    fp=fingerprint([release] + [release / d for d in found] + lang_dirs))

    def build(tmp: Path) -> None:
        skipped: Optional[Dict[str, str]] = {} if skip_bad else None
        # 1. read every transcript: (dataset, lang, utt) -> split, text, budgets
        items: Dict[str, dict] = {}
        where: Dict[str, Path] = {}
        notes: List[str] = []
        for lang_dir in lang_dirs:
            ds, lang = lang_dir.parent.name, lang_dir.name
            trains = {b: lang_dir / f for b, f in MLSUPERB_TRAIN.items() if (lang_dir / f).is_file()}
            if not trains:
                raise HarnessError(f"ML-SUPERB {ds}/{lang}: no train transcript ({' or '.join(MLSUPERB_TRAIN.values())}) "
                                   f"in {lang_dir}")  # fmt: skip
            notes += [f"{ds}/{lang}: no {f}" for b, f in MLSUPERB_TRAIN.items() if b not in trains]
            if not (lang_dir / MLSUPERB_EVAL["dev"]).is_file():
                raise HarnessError(f"ML-SUPERB {ds}/{lang}: {lang_dir / MLSUPERB_EVAL['dev']} is missing")
            lists = [("train", b, p) for b, p in trains.items()] + [(sp, None, lang_dir / f) for sp, f in MLSUPERB_EVAL.items()]
            for split, budget, path in lists:
                for uid, text in read_mlsuperb_transcript(path):
                    it = items.get(uid)
                    if it is None:
                        wav = lang_dir / "wav" / f"{uid}.wav"
                        if not wav.is_file():
                            raise HarnessError(f"{path}: utterance {uid}: audio file {wav} is missing")
                        it = items[uid] = {"split": split, "text": text, "lang": lang, "dataset": ds, "wav": wav,
                                           "budgets": []}  # fmt: skip
                        where[uid] = path
                    elif it["split"] != split or it["lang"] != lang or it["dataset"] != ds:
                        raise HarnessError(f"ML-SUPERB: utterance id {uid} appears in {where[uid]} and in {path}")
                    if budget:
                        it["budgets"].append(budget)

        # 2. few-shot languages: keep `fewshot_train_utts` train utterances per language
        by_lang: Dict[str, List[str]] = {}
        for uid, it in items.items():
            if it["split"] == "train" and it["lang"] in FEWSHOT_LANGUAGES:
                by_lang.setdefault(it["lang"], []).append(uid)
        for lang, uids in sorted(by_lang.items()):
            if chosen_ids is not None:
                keep = [u for u in uids if u in chosen_ids]
                if not keep:
                    notes.append(f"few-shot {lang}: none of {fewshot_ids_file}'s ids is a train utterance")
            else:
                pool = sorted(u for u in uids if "10min" in items[u]["budgets"]) or sorted(uids)
                keep = sorted(random.Random(f"{seed}-{lang}").sample(pool, min(fewshot_train_utts, len(pool))))
            for u in set(uids) - set(keep):
                del items[u]
            for u in keep:
                items[u]["budgets"] = sorted(MLSUPERB_TRAIN)  # the same few utterances in both budgets
        fewshot_present = sorted({it["lang"] for it in items.values() if it["lang"] in FEWSHOT_LANGUAGES})
        if chosen_ids is None and by_lang:
            notes.append(f"few-shot train utterances drawn with seed {seed} ({fewshot_train_utts} per language), "
                         "not the recipe's selection; pass fewshot_ids_file to use it")  # fmt: skip

        # 3. manifests
        from lhotse import RecordingSet, SupervisionSegment, SupervisionSet

        recs, sups, n_long = [], [], 0
        for uid, it in items.items():
            rec = recording_from_file(it["wav"], uid, skipped)
            if rec is None:
                continue
            if it["split"] == "train" and rec.duration > max_train_seconds:
                n_long += 1
                continue
            recs.append(rec)
            custom = _custom(it["split"], it["dataset"], "fewshot" if it["lang"] in FEWSHOT_LANGUAGES else "normal")
            if it["split"] == "train":
                custom["budgets"] = sorted(set(it["budgets"]))
            sups.append(SupervisionSegment(id=uid, recording_id=uid, start=0.0, duration=rec.duration, channel=0,
                                           language=it["lang"], text=it["text"], custom=custom))
        if n_long:
            notes.append(f"{n_long} train utterances over {max_train_seconds:g} s left out (as in the recipe)")
        if not sups:
            raise HarnessError(f"ML-SUPERB {release}: no utterance left")
        mono = {name: [lg, ds] for name, (lg, ds) in MONO_PAIRS.items() if lg in found.get(ds, [])}
        meta = _meta("mlsuperb", release, key, sups, notes, skipped, datasets={d: list(v) for d, v in found.items()},
                     fewshot_languages=fewshot_present, mono_pairs=mono, seed=seed,
                     budgets={b: sum(b in (s.custom or {}).get("budgets", []) for s in sups) for b in MLSUPERB_TRAIN})
        write_prepared(tmp, RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups), meta)

    return build_cached(folder, key, build)
