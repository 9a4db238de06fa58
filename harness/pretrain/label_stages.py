"""Stages 1-3 of an iteration: features, clustering per label stream, labels (+ their quality).

Each stage is sharded by rank where it can be (dumping, labelling; clustering runs on rank 0),
marked done when finished and skipped on a re-run; shards written by a launch with another
world size are removed before a stage restarts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from harness.data.corpus import Utterance
from harness.errors import HarnessError
from harness.pretrain import cluster as clus
from harness.pretrain import dump, labels as lab
from harness.pretrain.distributed import Dist, barrier, resolve_device
from harness.pretrain.quality import corpus_label_quality
from harness.pretrain.recipe import IterationConfig, Recipe
from harness.pretrain.utterances import SPLITS
from harness.results import atomic_write_json


def label_iteration_root(rec: Recipe, k: int, out: Path) -> Path:
    """The iteration folder holding the labels iteration k trains on (itself, or the iteration
    a chain of `continue` stages started from)."""
    while rec.iterations[k - 1].continue_previous:
        k -= 1
    return out / f"iter{k}"


def features_clusters_labels(rec: Recipe, it: IterationConfig, k: int, utts: Dict[str, List[Utterance]], out: Path,
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
