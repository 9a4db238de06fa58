"""`pretrain(recipe, corpus, out)`: chain a recipe's iterations; every stage idempotent and resumable.

Run folder:
    out/recipe.json                     resolved recipe, its hash + corpus (a re-run must match it)
    out/iter{k}/features/{train,dev}    feature shards (dump.py)
    out/iter{k}/clusters/{stream}       centroids.npy (k-means) or index.faiss (cluster.method ivf)
                                        + done.json (k, inertia, points, seconds)
    out/iter{k}/labels/{stream}/{split} label shards at the model's frame rate (labels.py) +
                                        done.json (PNMI, purity)
    out/iter{k}/train                   checkpoint.pt, log.jsonl, done.json (loop.py)
    out/iter{k}/exports/step{NNNNNN}    with export_every N: the weights after every N updates before
                                        the last, exported like `upstream` (named "<recipe>-it<k>-
                                        step<NNNNNN>"; its upstream.json's pretraining record holds
                                        step and train_seconds): the points of a learning curve
    out/iter{k}/upstream                upstream.safetensors + upstream.json (upstreams/base.py,
                                        keyed by family), named "<recipe>-it<k>"; `harness eval
                                        --upstream` loads it
    out/iter{k}/curves.png              accuracy and loss against the step (training log, held-out)
    out/iter{k}/summary.json            stage times, masked accuracies, label quality and codebook
                                        usage per split, the machine (harness.environment) of the
                                        process that finished it
The stages talk to a model family (upstreams/base.py) and an objective (objectives/), so a new
method is a family and/or objective file plus a recipe. An iteration with `continue` (a second
stage, WavLabLM) has no features, clusters or labels of its own: it trains from the previous
iteration's model on the previous iteration's labels; nor has an iteration whose objective
needs no labels (data2vec: its targets come from an EMA teacher). A stage whose done marker
exists is skipped; a killed stage restarts (training from its last checkpoint, dumping and labelling shard
by shard). Under torchrun every rank calls `pretrain`: dumping and labelling are sharded by
rank, clustering runs on rank 0, training uses DDP.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from harness.config import check_count
from harness.data.corpora import load_corpus
from harness.data.corpus import Corpus, Utterance
from harness.environment import environment
from harness.errors import HarnessError
from harness.pretrain import cluster as clus
from harness.pretrain import checkpoint, dump, labels as lab, loop
from harness.pretrain.batches import Item
from harness.pretrain.distributed import Dist, barrier, init_distributed, resolve_device
from harness.pretrain.quality import codebook_usage, corpus_label_quality
from harness.pretrain.recipe import DataConfig, IterationConfig, Recipe, load_recipe, recipe_hash, recipe_to_dict
from harness.results import atomic_write_json, now_iso
from upstreams.base import export_encoder, get_family

SPLITS = ("train", "dev")


def select_utterances(corpus: Corpus, data: DataConfig, split: str) -> List[Utterance]:
    """Utterances of `split` in the data config's subset (the subset filter is skipped when the
    corpus has no subset field), in manifest order; the train split is capped and, with
    balance "language", cut to at most `per_language` utterances of each language."""
    if not split:
        return []
    has_subset = any("subset" in u.custom for u in corpus.utterances)
    utts = corpus.select(split=split, subset=data.subset if has_subset else None)
    if split == data.train_split and data.max_utterances:
        utts = utts[: data.max_utterances]
    if split == data.train_split and data.balance == "language":
        utts = balance_languages(utts, data.per_language, data.balance_seed)
    return utts


def balance_languages(utts: List[Utterance], per_language: int = 0, seed: int = 0) -> List[Utterance]:
    """At most `per_language` utterances of each language (0 = the median language's count),
    drawn at random with `seed`, returned in manifest order."""
    by_lang: Dict[str, List[int]] = {}
    for i, u in enumerate(utts):
        if not u.language:
            raise HarnessError(f"utterance {u.id} has no language: a language-balanced subset needs one per utterance")
        by_lang.setdefault(u.language, []).append(i)
    cap = per_language or int(np.median([len(v) for v in by_lang.values()]))
    rng = np.random.default_rng(seed)
    keep: List[int] = []
    for lang in sorted(by_lang):
        idx = by_lang[lang]
        keep += idx if len(idx) <= cap else sorted(rng.choice(idx, cap, replace=False).tolist())
    return [utts[i] for i in sorted(keep)]


def noise_clips(corpus: Corpus, noise: Optional[str], split: str) -> List[str]:
    """Noise clip files for objectives that mix in noise: every wav/flac under `noise` (a folder,
    e.g. MUSAN or DNS-Challenge noise), else the corpus's own "noise" subset of `split`."""
    if noise:
        root = Path(noise)
        if not root.is_dir():
            raise HarnessError(f"--noise {noise}: not a folder of noise clips")
        files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
        if not files:
            raise HarnessError(f"--noise {noise}: no .wav or .flac file in it")
        return files
    clips = [u for u in corpus.select(split=split) if u.subset == "noise"]
    return sorted({u.path for u in clips})


def pretrain(recipe: Union[str, Path], corpus: str, out: Path, log: Callable[[str], None] = print,
             iterations: Optional[int] = None, noise: Optional[str] = None, overrides: Sequence[str] = (),
             export_every: int = 0, pretrain_seed: int = 0) -> Path:
    """Run (or resume) every iteration of `recipe` on `corpus` in folder `out`; returns the last
    iteration's exported upstream folder. `iterations` stops after that many iterations; `noise`
    is a folder of noise clips for objectives that mix in noise (default: the corpus's noise
    subset); `export_every` N > 0 also exports the weights every N updates of each iteration's
    training to out/iter{k}/exports/step{NNNNNN} (not part of the recipe: the weights do not
    change); `pretrain_seed` s > 0 runs the recipe from other seeds, named "<recipe>-s<s>"
    (harness.pretrain.seeds; out is the caller's, e.g. seeds.pretrain_folder)."""
    if iterations is not None:
        check_count("iterations", iterations)
    if export_every < 0:
        raise HarnessError(f"export_every {export_every}: must be >= 0 (0 = no step exports)")
    rec = load_recipe(recipe, overrides, pretrain_seed)
    out = Path(out)
    d = init_distributed(rec.iterations[0].train.device)
    c = load_corpus(corpus)
    utts = {s: select_utterances(c, rec.data, getattr(rec.data, f"{s}_split")) for s in SPLITS}
    if not utts["train"]:
        raise HarnessError(f"corpus {corpus}: no utterances in split {rec.data.train_split!r}"
                           f" (subset {rec.data.subset!r})")
    noise_files = noise_clips(c, noise, rec.data.train_split)
    for k, it in enumerate(rec.iterations, 1):
        obj = it.make_objective()
        if obj.needs_noise and not noise_files:
            raise HarnessError(f"iteration {k} ({obj.name}) mixes in noise, but corpus {corpus} has no noise "
                               "subset: pass --noise DIR (a folder of wav/flac noise clips)")
    ident = _identity(rec, corpus, utts)
    if d.is_main:
        _check_run_folder(out, ident, rec)
    barrier(d)
    n_iter = len(rec.iterations) if iterations is None else max(1, min(iterations, len(rec.iterations)))
    upstream = None
    for k in range(1, n_iter + 1):
        it_utts = {**utts, "train": select_utterances(c, rec.iterations[k - 1].data, rec.data.train_split)}
        upstream = run_iteration(rec, k, it_utts, out, d, log, noise_files, export_every)
    return upstream


def _identity(rec: Recipe, corpus: str, utts: Dict[str, List[Utterance]]) -> dict:
    """What a run folder's recipe.json pins: the resolved recipe, the corpus and its split sizes."""
    return {"recipe": recipe_to_dict(rec), "corpus": str(corpus), "train_utterances": len(utts["train"]),
            "dev_utterances": len(utts["dev"])}


def shared_iterations(a: Recipe, b: Recipe) -> int:
    """How many leading iterations recipes a and b have in common (same data and iteration
    configs: the same run would produce the same models)."""
    if a.data != b.data:
        return 0
    n = 0
    while n < min(len(a.iterations), len(b.iterations)) and a.iterations[n] == b.iterations[n]:
        n += 1
    return n


def reuse_iterations(recipe: Union[str, Path], corpus: str, out: Path, others: Sequence[Path],
                     log: Callable[[str], None] = print, pretrain_seed: int = 0) -> int:
    """Before running `recipe` in `out`: link in the finished leading iterations of another run
    folder (of `others`) whose recipe starts with the same iterations on the same corpus (e.g.
    every variant of an ablation shares the reference's HuBERT iteration 1). Files are hard
    links where the file system allows (finished stages are never rewritten). Returns the number
    of iterations reused (0: nothing matched, or `out` already had them). `pretrain_seed`: the
    seed `out` is run with (a run of another seed differs in its seeds, so never matches)."""
    import shutil

    rec = load_recipe(recipe, pretrain_seed=pretrain_seed)
    c = load_corpus(corpus)
    ident = _identity(rec, corpus, {s: select_utterances(c, rec.data, getattr(rec.data, f"{s}_split")) for s in SPLITS})
    new = json.loads(json.dumps(ident))
    best, source = 0, None
    for other in others:
        path = Path(other) / "recipe.json"
        if Path(other).resolve() == Path(out).resolve() or not path.is_file():
            continue
        old = json.loads(path.read_text())
        if any(old.get(k) != new[k] for k in ("corpus", "train_utterances", "dev_utterances")) or \
                not _matches(old["recipe"]["data"], new["recipe"]["data"], rec.data):
            continue
        n, oi, ni = 0, old["recipe"]["iterations"], new["recipe"]["iterations"]
        while (n < min(len(oi), len(ni)) and _matches(oi[n], ni[n], rec.iterations[n])
               and (Path(other) / f"iter{n + 1}" / "summary.json").is_file()):
            n += 1
        if n > best:
            best, source = n, Path(other)
    reused = 0
    for k in range(1, best + 1):
        dst = Path(out) / f"iter{k}"
        if (dst / "summary.json").is_file():
            continue
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(source / f"iter{k}", dst, copy_function=_link_or_copy)
        reused += 1
    if reused:
        log(f"{rec.name}: reusing iterations 1-{best} of {source} (same corpus, data and iteration configs)")
    return reused


def _link_or_copy(src, dst):
    import os
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _check_run_folder(out: Path, ident: dict, rec: Recipe) -> None:
    path = out / "recipe.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if not same_run(old, ident, rec):
            raise HarnessError(f"{out} holds a pre-training run of another recipe or corpus "
                               f"({old.get('recipe', {}).get('name')} on {old.get('corpus')}); "
                               "choose another --out or delete it")
        return
    out.mkdir(parents=True, exist_ok=True)
    # the hash is saved beside the identity, not in it: folders made before it was saved still match
    atomic_write_json(path, {**ident, "recipe_hash": recipe_hash(rec), "created": now_iso()})


def same_run(old: dict, ident: dict, rec: Recipe) -> bool:
    """True when a run folder's saved identity `old` (recipe.json) is `ident` (of `rec`). A field
    added to the configs after that run was made is absent from `old`; it matches when `rec`
    leaves it at its default (the run was made with what the default now is)."""
    new = json.loads(json.dumps(ident))
    return _matches({k: old.get(k) for k in new}, new, {"recipe": rec})


def _matches(old, new, obj) -> bool:
    if isinstance(new, dict) and isinstance(old, dict):
        fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
        for k, v in new.items():
            child = obj.get(k) if isinstance(obj, dict) else getattr(obj, k, None)
            if k in old:
                if not _matches(old[k], v, child):
                    return False
            elif k not in fields or _field_default(fields[k]) != child:
                return False
        return set(old) <= set(new)
    if isinstance(new, list) and isinstance(old, list):
        items = list(obj) if isinstance(obj, (list, tuple)) else [None] * len(new)
        return len(old) == len(new) and all(_matches(a, b, c) for a, b, c in zip(old, new, items))
    return old == new


def _field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def run_iteration(rec: Recipe, k: int, utts: Dict[str, List[Utterance]], out: Path, d: Dist,
                  log: Callable[[str], None] = print, noise_files: List[str] = (), export_every: int = 0) -> Path:
    """All stages of iteration k (1-based); returns its upstream folder. `export_every`: see
    `pretrain`."""
    it: IterationConfig = rec.iterations[k - 1]
    root = out / f"iter{k}"
    name = rec.iteration_name(k)
    objective = it.make_objective()
    streams = objective.label_streams(it.cluster.k)
    times: Dict[str, float] = {}
    say = log if d.is_main else (lambda *_: None)
    source = "mfcc" if it.features.source == "mfcc" else f"layer {it.features.layer} of iteration {k - 1}"
    what = (f"continues iteration {k - 1} on its labels" if it.continue_previous else
            "no labels" if not objective.needs_labels else
            f"features {source}"
            f", {'faiss IVF' if it.cluster.method == 'ivf' else 'k-means'} K = {it.cluster.k}"
            f"{', encoder warm-started from iteration %d' % (k - 1) if it.warm_start else ''}")
    say(f"== {name}: {it.family} {it.model.encoder_layers} x {it.model.encoder_dim}, objective {it.objective}, "
        f"{what}, {it.train.steps} steps on {len(utts['train'])} utterances")

    if it.continue_previous:
        label_root = _label_root(rec, k, out)
    else:
        label_root = root
        if streams:
            _features_clusters_labels(rec, it, k, utts, out, root, streams, d, say, times)

    # 4. training (from scratch, or from the previous iteration's model)
    min_samples = int(rec.data.min_seconds * dump.SAMPLE_RATE)
    items = [Item.from_utterance(u) for u in utts["train"]]
    kept = [x for x in items if x.num_samples >= min_samples]
    if len(kept) < len(items):
        say(f"training on {len(kept)} of {len(items)} utterances (dropped {len(items) - len(kept)} "
            f"shorter than {rec.data.min_seconds} s)")
    dev_items = [Item.from_utterance(u) for u in utts["dev"]]
    if it.train.dev_max_utterances:
        dev_items = dev_items[: it.train.dev_max_utterances]
    init = checkpoint.final_model_state(out / f"iter{k - 1}" / "train") if it.continue_previous or it.warm_start else None
    if it.warm_start:  # the encoder only: the heads belong to the previous labels
        init = {key: v for key, v in init.items() if key.startswith("encoder.")}

    def export_step(step: int, seconds: float, encoder: torch.nn.Module) -> None:
        export_encoder(encoder, it.family, step_export_folder(root, step), f"{name}-step{step:06d}",
                       pretraining=provenance(rec, k, kept, out, step=step, train_seconds=seconds))

    tr = loop.train(it.train, it.family, it.model, objective, streams, kept,
                    {s.name: label_root / "labels" / s.name / "train" for s in streams}, root / "train",
                    dev_items, {s.name: label_root / "labels" / s.name / "dev" for s in streams} if dev_items and streams else None,
                    init_state=init, noise_files=noise_files if objective.needs_noise else (), log=log, desc=name,
                    export_every=export_every, export=export_step)
    wanted = range(export_every, it.train.steps, export_every) if export_every else ()
    missing = [s for s in wanted if not (step_export_folder(root, s) / "upstream.json").is_file()]
    if missing:  # trained before --export-every was given: those weights are gone
        say(f"{name}: no step export of step(s) {', '.join(map(str, missing))} (trained before export_every "
            f"{export_every} was asked for; delete {root / 'train'} to retrain with them)")
    times["train"] = tr["train_seconds"] + tr.get("dev_eval_seconds", 0.0)

    # 5. export
    up = root / "upstream"
    if d.is_main and not (up / "upstream.json").is_file():
        t0 = time.perf_counter()
        pre = provenance(rec, k, kept, out, train_seconds=tr["train_seconds"])
        export_iteration(root / "train", it, up, name, pretraining=pre)
        times["export"] = time.perf_counter() - t0
    barrier(d)
    if d.is_main:
        summary = _summary(rec, k, root, label_root, streams[0].name if streams else None, times, tr, up, name)
        atomic_write_json(root / "summary.json", summary)
        _curves(root, tr, summary)
        maj = summary["masked_acc"]["majority_label"]
        if not streams:
            say(f"== {name}: done in {summary['total_seconds']:.0f} s; train loss {tr.get('train_loss', float('nan')):.4f}; "
                f"upstream {up}")
        else:
            say(f"== {name}: done in {summary['total_seconds']:.0f} s; masked acc train {tr.get('train_masked_acc', float('nan')):.3f}, "
                f"held-out {tr.get('dev_masked_acc', float('nan')):.3f} (chance 1/K {1 / streams[0].k:.3f}"
                f"{'' if maj is None else f', majority label {maj:.3f}'}); upstream {up}")
    barrier(d)
    return up


def _curves(root: Path, tr: dict, summary: dict) -> None:
    """iter{k}/curves.png: the training log's accuracy and loss against the step, with the
    held-out evaluation at the last step."""
    from harness import plots

    log_path = root / "train" / checkpoint.LOG
    if not log_path.is_file():
        return
    history = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
    held = {k: tr[f"dev_{k}"] for k in ("masked_acc", "unmasked_acc", "masked_ce") if f"dev_{k}" in tr}
    plots.training_curves(history, {**held, "step": tr["steps"]} if held else {}, root / "curves.png",
                          title=summary["name"], chance=summary["masked_acc"]["chance"])


def _label_root(rec: Recipe, k: int, out: Path) -> Path:
    """The iteration folder holding the labels iteration k trains on (itself, or the iteration
    a chain of `continue` stages started from)."""
    while rec.iterations[k - 1].continue_previous:
        k -= 1
    return out / f"iter{k}"


def _features_clusters_labels(rec: Recipe, it: IterationConfig, k: int, utts: Dict[str, List[Utterance]], out: Path,
                              root: Path, streams, d: Dist, say, times: Dict[str, float]) -> None:
    """Stages 1-3 of an iteration: features, clustering per label stream (k-means or the faiss IVF
    index), labels through the saved codebook (+ quality). A stream with a parent (a level of
    MS-HuBERT's hierarchy) is k-means of its parent's centroids and is labelled through its
    parent's labels; streams come parents first."""
    # 1. features
    for split in SPLITS:
        if not utts[split]:
            continue
        folder = root / "features" / split
        times[f"features_{split}"] = _stage(folder, len(utts[split]), d, lambda f=folder, s=split: _dump(it, k, out, utts[s], f, d),
                                            say, f"features {split}")
    for stream in streams:
        # 2. clustering (rank 0)
        cdir = root / "clusters" / stream.name
        if not (cdir / "done.json").is_file():
            if d.is_main:
                t0 = time.perf_counter()
                cdir.mkdir(parents=True, exist_ok=True)
                extra = {}
                # explicit: under torchrun OMP_NUM_THREADS=1 would leave the fit on one core
                threads = it.cluster.threads or clus.cpu_cores()
                on_gpu = " and faiss's GPU index" if it.cluster.gpu else ""
                say(f"clustering {stream.name} on {threads} CPU thread(s){on_gpu}")
                with clus.omp_threads(threads):
                    if stream.parent:  # a level of a hierarchy (MS-HuBERT): k-means on the parent level's centroids
                        x = np.load(root / "clusters" / stream.parent / "centroids.npy")
                        say(f"k-means {stream.name}: the {len(x)} centroids of {stream.parent}, K = {stream.k}")
                        res = clus.fit_kmeans(x, stream.k, niter=it.cluster.niter, seed=it.cluster.seed,
                                              nredo=it.cluster.nredo, init=it.cluster.init, threads=threads,
                                              gpu=it.cluster.gpu)
                        # parents[c] = this level's cluster of the parent level's centroid c
                        np.save(cdir / "parents.npy", clus.nearest(x, res.centroids)[0])
                        np.save(cdir / "centroids.npy", res.centroids)
                    else:
                        reader = dump.FeatureReader(root / "features" / "train")
                        x = clus.sample_frames(reader, it.cluster.sample_fraction, it.cluster.seed, it.cluster.max_frames)
                        if it.cluster.method == "ivf":
                            factory = clus.ivf_factory(it.cluster.ivf_factory, stream.k)
                            say(f"faiss index {factory} {stream.name}: {len(x)} frames x {x.shape[1]} dims")
                            res = clus.fit_ivf(x, stream.k, it.cluster.ivf_factory, seed=it.cluster.seed,
                                               threads=threads)
                            for note in res.notes:
                                say(f"faiss index {stream.name}: {note}")
                            res.codebook.save(cdir)
                            extra = {"method": "ivf", "factory": res.factory}
                        else:
                            say(f"k-means {stream.name}: {len(x)} frames x {x.shape[1]} dims, K = {stream.k}")
                            res = clus.fit_kmeans(x, stream.k, niter=it.cluster.niter, seed=it.cluster.seed,
                                                  nredo=it.cluster.nredo, init=it.cluster.init, threads=threads,
                                                  gpu=it.cluster.gpu)
                            np.save(cdir / "centroids.npy", res.centroids)
                atomic_write_json(cdir / "done.json", {"k": stream.k, "inertia": res.inertia, "points": res.n_points,
                                                       "inertia_per_point": res.inertia / res.n_points,
                                                       "fit_seconds": res.seconds, **extra,
                                                       "seconds": time.perf_counter() - t0})
            barrier(d)
        times[f"clusters_{stream.name}"] = json.loads((cdir / "done.json").read_text())["seconds"]
        codebook = clus.load_codebook(cdir)

        # 3. labels at the model's frame rate (+ quality against phone alignments)
        for split in SPLITS:
            if not utts[split]:
                continue
            ldir = root / "labels" / stream.name / split
            if not (ldir / "done.json").is_file():
                t0 = time.perf_counter()
                if d.is_main:
                    _remove_other_worlds(ldir, d.world)
                barrier(d)
                if stream.parent:  # a frame's label follows its parent-level label up the tree
                    lab.derive_labels(root / "labels" / stream.parent / split, np.load(cdir / "parents.npy"), ldir,
                                      stream.k, d.rank, d.world)
                else:
                    reader = dump.FeatureReader(root / "features" / split)
                    ns = {u.id: int(round(u.duration * dump.SAMPLE_RATE)) for u in utts[split]}
                    lab.assign_labels(reader, codebook, ldir, ns, it.model, d.rank, d.world)
                barrier(d)
                if d.is_main:
                    store = lab.LabelStore(ldir)
                    counts = lab.label_counts(store)
                    q = corpus_label_quality(utts[split], store.get, it.model)
                    atomic_write_json(ldir / "done.json", {
                        "utterances": len(store), "frames": int(counts.sum()), "k": store.k,
                        "clusters_used": int((counts > 0).sum()), "counts": counts.tolist(), "quality": q,
                        "seconds": time.perf_counter() - t0})
                    if q.get("frames"):
                        say(f"labels {stream.name} {split}: PNMI {q['pnmi']:.3f}, phone purity {q['phone_purity']:.3f}, "
                            f"cluster purity {q['cluster_purity']:.3f}, {int((counts > 0).sum())}/{store.k} clusters used")
                barrier(d)
            times[f"labels_{stream.name}_{split}"] = json.loads((ldir / "done.json").read_text())["seconds"]


def _stage(folder: Path, n: int, d: Dist, fn, say, what: str) -> float:
    """Run a sharded dump unless complete; returns its recorded seconds."""
    if not dump.is_complete(folder, n):
        t0 = time.perf_counter()
        if d.is_main:
            _remove_other_worlds(folder, d.world)
            (folder / "done.json").unlink(missing_ok=True)
        barrier(d)
        fn()
        barrier(d)
        if d.is_main:
            dump.mark_complete(folder, n, seconds=time.perf_counter() - t0)
            say(f"{what}: {n} utterances in {time.perf_counter() - t0:.1f} s")
        barrier(d)
    return float(json.loads((folder / "done.json").read_text()).get("seconds", 0.0))


def _remove_other_worlds(folder: Path, world: int) -> None:
    """Shards written by a launch with another world size cannot be mixed with ours."""
    if not folder.is_dir():
        return
    for p in folder.glob("shard*-of*"):
        w = p.name.split("-of", 1)[1].split(".", 1)[0]
        if w != str(world):
            p.unlink()


def _dump(it: IterationConfig, k: int, out: Path, utts: List[Utterance], folder: Path, d: Dist) -> None:
    if it.features.source == "mfcc":
        dump.dump_mfcc(utts, folder, d.rank, d.world)
        return
    prev = out / f"iter{k - 1}" / "upstream"
    if not (prev / "upstream.json").is_file():
        raise HarnessError(f"iteration {k} clusters layer {it.features.layer} of iteration {k - 1}, "
                           f"but {prev} holds no exported model")
    device = resolve_device(it.train.device)
    if device == "cuda":
        device = f"cuda:{d.local_rank}"
    dump.dump_layer(utts, folder, prev, it.features.layer, d.rank, d.world, device=device,
                    batch_seconds=it.features.batch_seconds)


def step_export_folder(root: Path, step: int) -> Path:
    """Where iteration folder `root` keeps the export of its weights after `step` updates."""
    return root / "exports" / f"step{step:06d}"


def provenance(rec: Recipe, k: int, kept: List[Item], out: Path, step: Optional[int] = None,
               train_seconds: Optional[float] = None) -> dict:
    """What iteration k's weights after `step` updates of its training (default: all) were
    trained on, for their export's upstream.json (the board reads it from the runs' result.json):
    the corpus (as given to `pretrain`, from out/recipe.json), the training utterances and hours
    actually used, the optimiser updates behind the weights (this iteration's `step`, plus those
    of the iterations it continues from), `step` and `train_seconds` (this iteration's training
    time up to that step: the minutes a learning curve shows) and, for a pre-training seed s > 0
    (harness.pretrain.seeds), `pretrain_seed` s (absent: seed 0, the record of every export made
    before seeds)."""
    updates = 0
    for j, it in enumerate(rec.iterations[:k], 1):
        updates = (updates if it.continue_previous or it.warm_start else 0) + (it.train.steps if j < k or step is None else step)
    ident = out / "recipe.json"
    corpus = json.loads(ident.read_text()).get("corpus") if ident.is_file() else None
    return {"corpus": corpus, "utterances": len(kept),
            "hours": round(sum(x.num_samples for x in kept) / dump.SAMPLE_RATE / 3600, 3), "updates": updates,
            "recipe": rec.name, "iteration": k, "objective": rec.iterations[k - 1].objective,
            "step": rec.iterations[k - 1].train.steps if step is None else step,
            "train_seconds": None if train_seconds is None else round(float(train_seconds), 3),
            **({"pretrain_seed": rec.pretrain_seed} if rec.pretrain_seed else {})}


def export_iteration(train_dir: Path, it: IterationConfig, folder: Path, name: str,
                     pretraining: Optional[dict] = None) -> Path:
    """The trained encoder (the objective's heads dropped) -> an export of its family, with what
    it was trained on (`provenance`) in its upstream.json."""
    sd = checkpoint.final_model_state(train_dir)
    enc_sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    encoder = get_family(it.family).encoder_cls(it.model)
    encoder.load_state_dict(enc_sd)
    return export_encoder(encoder, it.family, folder, name, pretraining=pretraining)


def _summary(rec: Recipe, k: int, root: Path, label_root: Path, stream: Optional[str], times: Dict[str, float],
             tr: dict, up: Path, name: str) -> dict:
    """summary.json of iteration k; `stream`: the first label stream (None for an objective
    without labels: no features, clustering, label quality or accuracies)."""
    it = rec.iterations[k - 1]
    labels = label_root / "labels" / (stream or "")
    quality = {}
    for split in SPLITS if stream else ():
        p = labels / split / "done.json"
        if p.is_file():
            dd = json.loads(p.read_text())
            quality[split] = {**dd["quality"], **codebook_usage(dd["counts"])}
    cl = json.loads((label_root / "clusters" / stream / "done.json").read_text()) if stream else None
    # accuracy of always answering the most frequent train label: what "learned only the prior" scores
    majority = None
    ctr, cdev = labels / "train" / "done.json", labels / "dev" / "done.json"
    if stream and ctr.is_file() and cdev.is_file():
        top = int(np.argmax(json.loads(ctr.read_text())["counts"]))
        dev_counts = json.loads(cdev.read_text())["counts"]
        majority = dev_counts[top] / max(1, sum(dev_counts))
    return {
        "name": name, "iteration": k, "recipe": rec.name, "upstream": str(up), "family": it.family,
        "objective": it.objective, "continues": k - 1 if it.continue_previous else None,
        "labels": str(labels) if stream else None,
        "features": {"source": it.features.source, "layer": it.features.layer if it.features.source == "layer" else None}
        if stream else None,
        "k": cl["k"] if cl else None, "clustering": cl,
        "times_s": times, "total_seconds": float(sum(times.values())),
        "train": tr,
        "masked_acc": {"train": tr.get("train_masked_acc"), "dev": tr.get("dev_masked_acc"), "chance": 1 / cl["k"] if cl else None,
                       "majority_label": majority},
        "unmasked_acc": {"train": tr.get("train_unmasked_acc"), "dev": tr.get("dev_unmasked_acc")},
        "label_quality": quality,
        "environment": environment(),  # which CPU / threads / kernels made these weights
        "finished_at": now_iso(),
    }
