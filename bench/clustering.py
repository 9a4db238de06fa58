"""Benchmark: our clustering stage against its references on the same features.

Part "fit": faiss k-means fit on the sampled frames + nearest-centroid labels for every frame vs
fairseq simple_kmeans settings (sklearn MiniBatchKMeans, k-means++, batch 10,000, n_init 20,
max_iter 100, then predict). Prints both times, the ratio (sklearn time / ours) and both
inertias on all frames.

Part "assign": label assignment of every frame with the mHuBERT-147 faiss IVF index (cluster
method "ivf": OPQ transform + the HNSW coarse quantizer's search) vs exact nearest-centroid
search with K centroids: over the index's own centroids (OPQ transform + faiss IndexFlatL2: the
answer HNSW approximates), and, as the original HuBERT labelling does, over K k-means centroids
of the input frames with faiss IndexFlatL2, sklearn pairwise_distances_argmin (what
KMeans.predict does) and fairseq's ApplyKmeans arithmetic in numpy (|x|^2 - 2 x.C + |C|^2,
argmin). Interleaved repeats, the fastest of each kept; prints the times, the ratios (its time /
the IVF index's) and how often the IVF label is the exact nearest IVF centroid. Fitting is not
timed (once per iteration; the assignment runs over every frame).

    .venv/bin/python bench/clustering.py [--features RUN/iter1/features/train] [--corpus data/synth/small]
        [--k 100] [--fraction 1.0] [--max-frames 0] [--threads 2] [--parts fit,assign] [--repeat 3]

Without --features, the 39-d MFCC of the corpus's speech train split are dumped to a temp folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from harness.pretrain import cluster  # noqa: E402
from harness.pretrain.dump import FeatureReader, dump_mfcc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=Path, default=None, help="a feature folder of a pre-training run")
    ap.add_argument("--corpus", default="data/synth/small")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--fraction", type=float, default=1.0, help="fraction of utterances clustered")
    ap.add_argument("--niter", type=int, default=25, help="our Lloyd iterations (the recipes' default)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-frames", type=int, default=0, help="cap on the sampled (training) frames, 0 = none")
    ap.add_argument("--factory", default=cluster.IVF_FACTORY, help="faiss index of the assign part")
    ap.add_argument("--parts", default="fit,assign", help="which comparisons: fit, assign or both")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved timing repeats of the assign part")
    a = ap.parse_args()
    parts = set(a.parts.split(","))
    if not parts <= {"fit", "assign"}:
        ap.error(f"--parts takes fit and/or assign, got {a.parts}")
    import torch

    torch.set_num_threads(a.threads)  # faiss follows torch's thread count (cluster.set_threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(a.threads)
    except ImportError:
        pass

    tmp = None
    folder = a.features
    if folder is None:
        from harness.data.corpora import load_corpus

        c = load_corpus(a.corpus)
        utts = c.select(split="train", subset="speech")
        tmp = Path(tempfile.mkdtemp(prefix="bench_clustering_"))
        folder = tmp / "mfcc"
        t0 = time.perf_counter()
        dump_mfcc(utts, folder)
        print(f"dumped MFCC of {len(utts)} utterances in {time.perf_counter() - t0:.1f} s")
    try:
        reader = FeatureReader(folder)
        x = cluster.sample_frames(reader, a.fraction, seed=a.seed, max_frames=a.max_frames)
        allx = np.concatenate([reader.get(i) for i in range(len(reader))]).astype(np.float32)
        print(f"{len(x)} sampled frames ({a.fraction:g} of {len(reader)} utterances) x {x.shape[1]} dims; "
              f"labels for all {len(allx)} frames; K = {a.k}; {a.threads} threads")
        if "fit" in parts:
            bench_fit(a, x, allx)
        if "assign" in parts:
            bench_assign(a, x, allx)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def bench_assign(a, x: np.ndarray, allx: np.ndarray) -> None:
    """IVF label assignment vs exact nearest-centroid search (see the module docstring)."""
    import faiss
    from sklearn.metrics import pairwise_distances_argmin

    t0 = time.perf_counter()
    ivf = cluster.fit_ivf(x, a.k, a.factory, seed=a.seed, threads=a.threads).codebook
    km = cluster.fit_kmeans(x, a.k, niter=a.niter, seed=a.seed).centroids
    print(f"  faiss index {cluster.ivf_factory(a.factory, a.k)} and k-means K = {a.k} fitted on {len(x)} frames "
          f"in {time.perf_counter() - t0:.1f} s (not timed below)")
    opq_cents = ivf.ivf.quantizer.reconstruct_n(0, ivf.k)  # (K, d') IVF coarse centroids, transformed space

    def flat(frames, cents):
        index = faiss.IndexFlatL2(cents.shape[1])
        index.add(cents)
        return index.search(frames, 1)[1][:, 0]

    def numpy_fairseq(frames, cents):  # fairseq simple_kmeans/dump_km_label.py ApplyKmeans, numpy path
        c_norm = (cents ** 2).sum(1)
        out = np.empty(len(frames), np.int64)
        for i in range(0, len(frames), 1 << 16):
            b = frames[i: i + (1 << 16)]
            out[i: i + len(b)] = np.argmin((b ** 2).sum(1, keepdims=True) - 2 * b @ cents.T + c_norm, axis=1)
        return out

    ours = "ours: faiss IVF index (OPQ transform + HNSW coarse search)"
    exact_ivf = "faiss IndexFlatL2 over the IVF centroids (OPQ transform + exact)"
    runs = {ours: lambda: ivf.assign(allx, a.threads),
            exact_ivf: lambda: flat(ivf.transform(allx), opq_cents),
            "faiss IndexFlatL2 over k-means centroids (input space)": lambda: flat(allx, km),
            "sklearn pairwise_distances_argmin, k-means centroids": lambda: pairwise_distances_argmin(allx, km),
            "fairseq ApplyKmeans (numpy), k-means centroids": lambda: numpy_fairseq(allx, km)}
    best = {name: float("inf") for name in runs}
    labels = {}
    cluster.set_threads(a.threads)
    for _ in range(max(1, a.repeat)):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            labels[name] = np.asarray(fn())
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"  label assignment of {len(allx)} frames x {allx.shape[1]} dims, K = {ivf.k}, "
          f"fastest of {max(1, a.repeat)} interleaved runs (ratio = its time / the IVF index's):")
    for name in runs:
        print(f"    {name:64s} {best[name]:8.3f} s  ratio {best[name] / best[ours]:6.2f}x")
    print(f"  the IVF index's HNSW search gives the exact nearest IVF centroid for "
          f"{(labels[ours] == labels[exact_ivf]).mean():.4f} of the frames")
    assert (labels["sklearn pairwise_distances_argmin, k-means centroids"]
            == labels["faiss IndexFlatL2 over k-means centroids (input space)"]).mean() > 0.99


def bench_fit(a, x: np.ndarray, allx: np.ndarray) -> None:
    """faiss k-means fit + labels vs fairseq's sklearn MiniBatchKMeans (module docstring)."""
    import faiss  # noqa: F401  imported before timing, like sklearn
    from sklearn.cluster import MiniBatchKMeans

    t0 = time.perf_counter()
    ours = cluster.fit_kmeans(x, a.k, niter=a.niter, seed=a.seed)
    lab_o, _ = cluster.nearest(allx, ours.centroids)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    km = MiniBatchKMeans(n_clusters=a.k, init="k-means++", max_iter=100, batch_size=10000, verbose=0,
                         compute_labels=False, tol=0.0, max_no_improvement=100, init_size=None, n_init=20,
                         reassignment_ratio=0.0, random_state=a.seed)
    km.fit(x)
    lab_s = km.predict(allx)
    t_sk = time.perf_counter() - t0

    in_o = cluster.inertia(allx, ours.centroids)
    in_s = cluster.inertia(allx, km.cluster_centers_.astype(np.float32))
    print(f"  ours (faiss, k-means++ init, {a.niter} Lloyd iterations on all sampled frames): {t_ours:7.2f} s  "
          f"inertia {in_o:.4e} ({in_o / len(allx):.2f} per frame), {len(np.unique(lab_o))} clusters used")
    print(f"  sklearn MiniBatchKMeans (fairseq simple_kmeans):                 {t_sk:7.2f} s  "
          f"inertia {in_s:.4e} ({in_s / len(allx):.2f} per frame), {len(np.unique(lab_s))} clusters used")
    print(f"  ratio sklearn time / ours: {t_sk / t_ours:.1f}x; inertia ours / sklearn: {in_o / in_s:.3f}")


if __name__ == "__main__":
    main()
