"""`harness analyze`: per-layer measures of an upstream on a corpus with alignments, written as a
run folder RUNS/<corpus>/<upstream>/analyze/<config hash>/result.json ("kind": "layer_analysis").

Frames: the (speech, train) pool of the corpus, the one `harness eval --task pr|sid` caches, so
the features come from the same cache (extracted if missing). A seeded random order of its
utterances is read until `max_frames` speech frames (silence left out) are held; every measure
and every layer sees the same frames.

Measures (names for --measure):
  cca_phone   PWCCA between the layer's frames and one-hot phone labels (analysis/cca.py)
  mi_phone    I(k-means cluster of the layer; phone) in bits, with H(phone) and the MI against
              permuted phones (analysis/mi.py)
  mi_speaker  the same against speaker ids (the clusters are shared with mi_phone)
  probe_layer PR (PER) and SID (accuracy) of the task's probe on that layer alone
              (analysis/probe_layer.py), `probe_steps` updates at the quick profile's lr
  cca_word    not available: the corpus stores phone alignments only (analysis/labels.py)
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from harness import results
from harness.errors import ConfigError, HarnessError

MEASURES = ("cca_phone", "cca_word", "mi_phone", "mi_speaker", "probe_layer")
DEFAULT_MEASURES = ("cca_phone", "mi_phone", "mi_speaker")
#: measures that cannot run (name -> why); none at present
UNAVAILABLE: Dict[str, str] = {}
#: cca_word keeps the words seen at least this many times in the sample (harness.analysis.words)
WORD_MIN_COUNT = 5
KIND = "layer_analysis"
FOLDER = "analyze"
PROBE_TASKS = {"pr": "per", "sid": "acc"}


def parse_measures(spec: Optional[str]) -> List[str]:
    """"cca_phone,mi_phone" -> ["cca_phone", "mi_phone"] (default: DEFAULT_MEASURES); an unknown
    or unavailable name is a one-line error."""
    names = [m.strip() for m in (spec or ",".join(DEFAULT_MEASURES)).split(",") if m.strip()]
    for m in names:
        if m in UNAVAILABLE:
            raise ConfigError(f"--measure {m}: {UNAVAILABLE[m]}")
        if m not in MEASURES:
            raise ConfigError(f"--measure {m!r} is not a measure; known: {', '.join(MEASURES)}")
    if not names:
        raise ConfigError("--measure names no measure")
    return list(dict.fromkeys(names))


def _finished(folder: Path) -> bool:
    """A readable layer-analysis result.json (results.is_finished checks a probe run's keys)."""
    try:
        return json.loads((Path(folder) / results.RESULT).read_text()).get("kind") == "layer_analysis"
    except (OSError, ValueError, AttributeError):
        return False


def analyze(upstream: str, corpus: str, runs_root: Path, cache_dir: Path, measures: Sequence[str] = DEFAULT_MEASURES,
            max_frames: int = 20000, clusters: int = 50, keep_variance: float = 0.99, seed: int = 0,
            probe_steps: int = 150, cache_budget_gb: float = 20.0, force: bool = False,
            log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the measures on every layer and write the run folder; returns the result dict.

    Args:
        upstream: name or exported folder (as `harness eval --upstream`).
        corpus: a resolved corpus spec (harness.evaluate.resolve_corpus).
        measures: names from MEASURES.
        max_frames: speech frames read (all measures but probe_layer, which trains on the tasks' splits).
        clusters: k of the k-means behind mi_phone / mi_speaker.
        keep_variance: the SVD step of PWCCA (harness/analysis/cca.py).
        seed: the utterance order, k-means seeds and the MI permutation.
        probe_steps: updates of each single-layer probe.
        force: recompute a finished run.
    """
    from harness.analysis import cca as cca_mod, labels as lab, mi as mi_mod
    from harness.catalog import upstream_facts
    from harness.data.corpora import load_corpus
    from harness.environment import environment
    from harness.evaluate import build_upstream, corpus_version
    from harness.features import manifest_hash, prepare_sources
    from tasks.base import pools_by_subset_split

    for name, v, lo in (("--max-frames", max_frames, 100), ("--clusters", clusters, 2), ("--probe-steps", probe_steps, 1)):
        if int(v) < lo:
            raise ConfigError(f"{name} must be at least {lo}, got {v}")
    t_all, cpu_all = time.time(), time.process_time()
    up = build_upstream(upstream)
    spec = up.spec
    corp = load_corpus(corpus, cache_dir=Path(cache_dir) / "corpora")
    whash = up.weights_hash()
    settings = {"measures": sorted(measures), "max_frames": max_frames, "clusters": clusters,
                "keep_variance": keep_variance, "seed": seed, "frames": "speech frames of (speech, train), no silence",
                **({"probe_steps": probe_steps} if "probe_layer" in measures else {}),
                **({"word_min_count": WORD_MIN_COUNT} if "cca_word" in measures else {})}
    ident = {"settings": settings, "upstream": spec.name, "upstream_weights": whash, "corpus": corp.name,
             "corpus_meta": {k: corp.meta.get(k) for k in ("size", "seed", "version", "generator")}}
    chash = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]
    folder = Path(runs_root) / results.slug(corp.name) / results.slug(spec.name) / FOLDER / chash
    if _finished(folder) and not force:
        log(f"skip {spec.name} analysis: finished in {folder}")
        return json.loads((folder / results.RESULT).read_text())

    utts = corp.select(split="train", subset="speech")
    if not utts:
        raise HarnessError(f"corpus {corp.name} ({corp.root}) has no (speech, train) utterances to analyse")
    timing: Dict[str, float] = {}
    t0 = time.time()
    src = prepare_sources(up, {"train": utts}, pools_by_subset_split(corp, {"train": utts}),
                          Path(cache_dir) / "features", cache_budget_gb, log=log, weights_hash=whash)["train"]
    timing["features_s"] = time.time() - t0

    def features(uid: str) -> np.ndarray:
        layers, lengths = src.get_batch([uid])
        return layers[:, 0, : int(lengths[0])].permute(1, 0, 2).numpy()

    t0 = time.time()
    readable = set(src.ids)  # all but audio skipped as unreadable
    sample = lab.sample_frames([u for u in utts if u.id in readable], features, spec.frame_rate_hz, max_frames, seed)
    timing["sample_s"] = time.time() - t0
    phones, speakers = lab.label_codes(sample.phones), lab.label_codes(sample.speakers)
    onehot = cca_mod.one_hot(phones["codes"], len(phones["classes"]))
    rows: List[Dict[str, Any]] = [{"layer": layer} for layer in range(spec.num_layers)]
    need_clusters = any(m in measures for m in ("mi_phone", "mi_speaker"))
    words = None
    if "cca_word" in measures:
        from harness.analysis import words as words_mod

        t0 = time.time()
        by_id = {u.id: u for u in utts}
        w_layers, w_labels, w_stats = words_mod.word_sample([by_id[i] for i in sample.utterances], features,
                                                            spec.frame_rate_hz, WORD_MIN_COUNT)
        w_codes = lab.label_codes(w_labels)
        words = (w_layers, cca_mod.one_hot(w_codes["codes"], len(w_codes["classes"])), w_stats)
        timing["word_segments_s"] = time.time() - t0
    for m in ("cca_phone", "cca_word", "kmeans", "mi_phone", "mi_speaker"):
        timing[f"{m}_s"] = 0.0
    for layer, row in enumerate(rows):
        x = sample.layers[layer]
        if "cca_phone" in measures:
            t0 = time.time()
            row["cca_phone"] = cca_mod.pwcca(x, onehot, keep_variance)
            timing["cca_phone_s"] += time.time() - t0
        if words is not None:
            t0 = time.time()
            row["cca_word"] = cca_mod.pwcca(words[0][layer], words[1], keep_variance)
            timing["cca_word_s"] += time.time() - t0
        if need_clusters:
            t0 = time.time()
            cl = mi_mod.kmeans_labels(x, clusters, seed=seed)
            timing["kmeans_s"] += time.time() - t0
            for m, codes in (("mi_phone", phones["codes"]), ("mi_speaker", speakers["codes"])):
                if m in measures:
                    t0 = time.time()
                    r = mi_mod.cluster_mi(cl, codes, seed=seed)
                    row.update({m: r.mi, f"{m}_norm": r.normalised, f"{m}_chance": r.chance})
                    timing[f"{m}_s"] += time.time() - t0
    if not need_clusters:
        timing.pop("kmeans_s")
    probe_info = None
    if "probe_layer" in measures:
        t0 = time.time()
        probe_info = _probe_all(upstream, corp, cache_dir, cache_budget_gb, probe_steps, rows, log)
        timing["probe_layer_s"] = time.time() - t0
    for m in ("cca_phone", "cca_word", "mi_phone", "mi_speaker"):
        if m not in measures:
            timing.pop(f"{m}_s", None)
    timing = {k: round(v, 2) for k, v in timing.items()}
    timing.update(total_s=round(time.time() - t_all, 2), cpu_s=round(time.process_time() - cpu_all, 2))
    res = {
        "kind": KIND, "run_id": f"{results.slug(spec.name)}/{FOLDER}/{chash}",
        "corpus": corp.name, "corpus_kind": corp.kind, "corpus_size": corp.meta.get("size"),
        "corpus_version": corpus_version(corp), "upstream": spec.name, "upstream_family": spec.family,
        "num_layers": spec.num_layers, "upstream_facts": upstream_facts(up), "upstream_weights": whash,
        "measures": list(measures), "settings": settings, "config_hash": chash,
        "seeds": {"frames": seed, "kmeans": seed, "permutation": seed,
                  **({"probe": probe_info["seed"]} if probe_info else {})},
        "hashes": {"pool": manifest_hash(utts), "frames": hashlib.sha256("\n".join(sample.utterances).encode()).hexdigest()[:16]},
        "sample": {"frames": int(sample.phones.size), "utterances": len(sample.utterances),
                   "phones": len(phones["classes"]), "speakers": len(speakers["classes"]),
                   "phone_entropy_bits": mi_mod.entropy(phones["codes"]),
                   "speaker_entropy_bits": mi_mod.entropy(speakers["codes"]),
                   **({"words": {**words[2], "min_count": WORD_MIN_COUNT}} if words is not None else {})},
        "probe_layer": probe_info, "layers": rows, "timing": timing,
        "git_sha": results.git_sha(), "versions": results.versions(), "environment": environment(),
        "finished_at": results.now_iso(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    results.atomic_write_json(folder / results.RESULT, res)
    log(f"{spec.name} analysis ({', '.join(measures)}) in {timing['total_s']:.0f} s: {folder}")
    return res


def _probe_all(upstream: str, corp, cache_dir: Path, budget_gb: float, steps: int, rows: List[Dict[str, Any]],
               log: Callable[[str], None]) -> Dict[str, Any]:
    """probe_layer: per task of PROBE_TASKS, one probe per layer; fills rows[l]["<task>_<metric>"]
    (test) and returns what the probes were (lr, steps, seed, dev metrics)."""
    from harness.analysis.probe_layer import probe_layers
    from harness.evaluate import build_task, build_upstream, resolve_config
    from harness.features import prepare_sources

    info: Dict[str, Any] = {"steps": steps, "profile": "quick", "tasks": {}}
    for name, metric in PROBE_TASKS.items():
        task = build_task(name)
        up = build_upstream(upstream).for_task(task)
        cfg = resolve_config(task, "quick", None, {"steps": steps, "eval_every": max(1, steps // 2)})
        splits = task.prepare(corp)
        sources = prepare_sources(up, splits.as_dict(), splits.pools, Path(cache_dir) / "features", budget_gb, log=log)
        lr = cfg.probe.lrs[0]
        out = probe_layers(task, splits, sources, up.spec, cfg.probe, lr, range(up.spec.num_layers), log=log)
        for row, o in zip(rows, out):
            row[f"{name}_{metric}"] = o["test"][metric]
        info["tasks"][name] = {"metric": metric, "lr": lr, "dev": [o["dev"][metric] for o in out],
                               "learned_nothing": [o["learned_nothing"] for o in out],
                               "train_s": [o["train_s"] for o in out]}
        info["seed"] = cfg.probe.seed
    return info
