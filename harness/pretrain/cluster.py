"""k-means for pre-training labels: faiss on all sampled frames; sklearn only as the reference.

faiss.Kmeans silently subsamples its training set to `max_points_per_centroid` (256) x k points;
`fit_kmeans` raises that limit so the centroids are fitted on every sampled frame. Which frames are
sampled is decided here instead (`sample_frames`: a fraction of the utterances, all their frames,
as fairseq's simple_kmeans does with 10%).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

# faiss ships its own OpenMP runtime; with the default (spinning) wait policy, two threads on a
# machine whose cores are busy run 10-30x slower than one. Passive waiting avoids that; it only
# takes effect when set before faiss is first imported, and an explicit setting is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from harness.pretrain.dump import FeatureReader


@dataclass
class KMeansResult:
    centroids: np.ndarray  # (k, dim) float32
    inertia: float  # sum of squared distances of the training points to their nearest centroid
    n_points: int  # points the centroids were fitted on
    seconds: float


def sample_frames(reader: FeatureReader, fraction: float, seed: int = 0, max_frames: int = 0) -> np.ndarray:
    """Frames (float32) of a random `fraction` of the utterances (at least one), in random order,
    capped at `max_frames` frames (0 = no cap) by leaving out the utterances past the cap."""
    n = len(reader)
    rng = np.random.default_rng(seed)
    m = max(1, int(round(fraction * n)))
    pick = rng.permutation(n)[:m]
    parts, total = [], 0
    for i in pick:
        f = reader.get(int(i))
        if max_frames and total + len(f) > max_frames and total > 0:
            break
        parts.append(f)
        total += len(f)
    return np.concatenate(parts).astype(np.float32)


def kmeans_plusplus_init(x: np.ndarray, k: int, seed: int = 0, init_size: int = 10000) -> np.ndarray:
    """Greedy k-means++ seeds (sklearn's, 2 + ln k local trials) drawn from a random subset of
    max(init_size, k) points (the Lloyd iterations that follow run on all points)."""
    from sklearn.cluster import kmeans_plusplus

    rng = np.random.default_rng(seed)
    sub = x if len(x) <= max(init_size, k) else x[np.sort(rng.choice(len(x), max(init_size, k), replace=False))]
    centres, _ = kmeans_plusplus(np.ascontiguousarray(sub, dtype=np.float32), k, random_state=seed)
    return centres.astype(np.float32)


def fit_kmeans(x: np.ndarray, k: int, niter: int = 25, seed: int = 0, nredo: int = 1, init: str = "kmeans++",
               threads: Optional[int] = None, gpu: bool = False) -> KMeansResult:
    """faiss k-means (Lloyd) fitted on ALL rows of x. init "kmeans++": k-means++ seeds from a
    10,000-point subset (nredo restarts, the lowest inertia kept); "random": faiss's own
    initialisation (random points, nredo restarts inside faiss)."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if n < k:
        raise ValueError(f"k-means: {n} points for k = {k} clusters")
    if init not in ("kmeans++", "random"):
        raise ValueError(f"k-means init must be 'kmeans++' or 'random', got {init!r}")
    set_threads(threads)
    t0 = time.perf_counter()
    best = None
    for r in range(nredo if init == "kmeans++" else 1):
        km = faiss.Kmeans(d, k, niter=niter, seed=seed + r, nredo=1 if init == "kmeans++" else nredo,
                          verbose=False, gpu=gpu,
                          max_points_per_centroid=(n + k - 1) // k + 1,  # never subsample: fit on all n
                          min_points_per_centroid=1)
        km.train(x, init_centroids=kmeans_plusplus_init(x, k, seed + r) if init == "kmeans++" else None)
        c = km.centroids.reshape(k, d).astype(np.float32)
        obj = float(km.obj[-1]) if len(km.obj) else float("inf")
        if best is None or obj < best[0]:
            best = (obj, c)
    centroids = best[1]
    secs = time.perf_counter() - t0
    return KMeansResult(centroids, inertia(x, centroids), n, secs)


def set_threads(threads: Optional[int] = None) -> int:
    """faiss's OpenMP threads: `threads`, else torch's intra-op thread count (one knob for both)."""
    import faiss
    import torch

    n = int(threads) if threads else torch.get_num_threads()
    faiss.omp_set_num_threads(n)
    return n


def nearest(x: np.ndarray, centroids: np.ndarray, threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(labels int64, squared distances float32) of each row of x to its nearest centroid."""
    import faiss

    set_threads(threads)
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    dist, lab = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return lab[:, 0], dist[:, 0]


def inertia(x: np.ndarray, centroids: np.ndarray, chunk: int = 1 << 18) -> float:
    """Sum over rows of x of the squared distance to the nearest centroid (float64 sum)."""
    total = 0.0
    for i in range(0, len(x), chunk):
        total += float(nearest(x[i: i + chunk], centroids)[1].astype(np.float64).sum())
    return total


def fit_sklearn_reference(x: np.ndarray, k: int, seed: int = 0, n_init: int = 20, max_iter: int = 100,
                          batch_size: int = 10000) -> KMeansResult:
    """fairseq examples/hubert/simple_kmeans/learn_kmeans.py settings: MiniBatchKMeans k-means++,
    batch 10,000, n_init 20, max_iter 100, tol 0, max_no_improvement 100, init_size None,
    reassignment_ratio 0 (the reference our faiss stage is benchmarked against)."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.ascontiguousarray(x, dtype=np.float32)
    t0 = time.perf_counter()
    km = MiniBatchKMeans(n_clusters=k, init="k-means++", max_iter=max_iter, batch_size=batch_size,
                         verbose=0, compute_labels=False, tol=0.0, max_no_improvement=100,
                         init_size=None, n_init=n_init, reassignment_ratio=0.0, random_state=seed)
    km.fit(x)
    centroids = km.cluster_centers_.astype(np.float32)
    secs = time.perf_counter() - t0
    return KMeansResult(centroids, inertia(x, centroids), len(x), secs)
