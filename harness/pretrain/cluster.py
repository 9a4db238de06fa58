"""Clustering for pre-training labels: faiss k-means on all sampled frames, or the mHuBERT-147
faiss IVF index; sklearn only as the reference.

faiss.Kmeans silently subsamples its training set to `max_points_per_centroid` (256) x k points;
`fit_kmeans` raises that limit so the centroids are fitted on every sampled frame. Which frames are
sampled is decided here instead (`sample_frames`: a fraction of the utterances, all their frames,
as fairseq's simple_kmeans does with 10%).

A **codebook** is what the label stage needs from clustering: fit -> save(folder) ->
load_codebook(folder) -> assign(frames) -> int labels. `Centroids` (k-means: centroids.npy,
nearest centroid) and `IVFIndex` (mHuBERT-147: index.faiss, the IVF coarse centroid after the
index's transforms) are the two kinds.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

# faiss ships its own OpenMP runtime; with the default (spinning) wait policy, two threads on a
# machine whose cores are busy run 10-30x slower than one. Passive waiting avoids that; it only
# takes effect when set before faiss is first imported, and an explicit setting is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from harness.errors import HarnessError
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
    if gpu:
        check_faiss_gpu()
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
    return KMeansResult(centroids, inertia(x, centroids, threads=threads), n, secs)


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask: a SLURM job's allocation), not
    OMP_NUM_THREADS (torchrun sets it to 1)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def check_faiss_gpu() -> int:
    """The number of GPUs faiss can use; a one-line HarnessError when it can use none (a
    faiss-cpu build, or no visible GPU)."""
    import faiss

    n = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if not hasattr(faiss, "StandardGpuResources"):
        raise HarnessError(f"cluster.gpu is true but the installed faiss {faiss.__version__} has no GPU support "
                           "(faiss-cpu): `pip uninstall -y faiss-cpu && pip install -e '.[gpu]'` (faiss-gpu-cu12, same "
                           "faiss module), or set cluster.gpu=false")
    if n < 1:
        raise HarnessError("cluster.gpu is true but faiss sees no GPU here (faiss.get_num_gpus() == 0); "
                           "set cluster.gpu=false")
    return n


@contextlib.contextmanager
def omp_threads(threads: int):
    """Run the block with `threads` OpenMP threads, then give torch back its own count (faiss and
    torch share one OpenMP runtime: a rank's training would otherwise inherit the fit's count)."""
    import torch

    prev = torch.get_num_threads()
    set_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(prev)


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


def inertia(x: np.ndarray, centroids: np.ndarray, chunk: int = 1 << 18, threads: Optional[int] = None) -> float:
    """Sum over rows of x of the squared distance to the nearest centroid (float64 sum)."""
    total = 0.0
    for i in range(0, len(x), chunk):
        total += float(nearest(x[i: i + chunk], centroids, threads)[1].astype(np.float64).sum())
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


# ----------------------------------------------------------------------------- codebooks


class Centroids:
    """k-means codebook: label = the nearest centroid (exact, faiss IndexFlatL2).

    Args:
        centroids: (k, dim) float32.
    """

    FILE = "centroids.npy"

    def __init__(self, centroids: np.ndarray):
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.k = int(self.centroids.shape[0])

    def assign(self, x: np.ndarray, threads: Optional[int] = None) -> np.ndarray:
        """(n,) int64 labels of the rows of x (n, dim)."""
        return nearest(x, self.centroids, threads)[0]

    def save(self, folder: Path) -> None:
        np.save(Path(folder) / self.FILE, self.centroids)


# mHuBERT-147's "strong compression" index (their create_mhubert_index.py, K = 1000 in every
# iteration): OPQ rotation to 64 dims (16 sub-spaces), IVF with K lists whose coarse quantizer is an
# HNSW graph over the K centroids, 4-bit fast-scan PQ codes of the residuals. Only the coarse
# assignment is used as the label; the PQ part is trained (the authors train the whole index) but
# never read.
IVF_FACTORY = "OPQ16_64,IVF{K}_HNSW32,PQ16x4fsr"
# OPQMatrix fits its rotation against an 8-bit PQ (256 centroids per sub-space); faiss asks for
# 39 points per centroid and prints a warning for every sub-space and iteration below that.
OPQ_PQ_BITS = 8
FAISS_MIN_POINTS_PER_CENTROID = 39


class IVFIndex:
    """faiss IVF codebook (mHuBERT-147): label = the IVF coarse-centroid id of a frame after the
    index's transforms (OPQ), found by the coarse quantizer's own search (HNSW, approximate) -
    what the authors' apply_index_per_file.py does and what index.add files each vector under.

    Args:
        index: a trained faiss index with an IVF stage (optionally behind IndexPreTransform).
    """

    FILE = "index.faiss"

    def __init__(self, index):
        import faiss

        self.index = index
        self.ivf = faiss.extract_index_ivf(index)
        self.k = int(self.ivf.nlist)
        chain = index.chain if isinstance(index, faiss.IndexPreTransform) else None
        self.transforms = [faiss.downcast_VectorTransform(chain.at(i)) for i in range(chain.size())] if chain else []

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(n, dim) -> (n, d_ivf) float32: the index's transforms applied in order."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        for vt in self.transforms:
            x = vt.apply(x)
        return x

    def search(self, x: np.ndarray, threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(labels int64, squared distances float32 in the transformed space) of the rows of x."""
        set_threads(threads)
        dist, lab = self.ivf.quantizer.search(self.transform(x), 1)
        if len(lab) and lab.min() < 0:
            raise HarnessError(f"faiss IVF index: the coarse quantizer found no centroid for "
                               f"{int((lab < 0).sum())} frames")
        return lab[:, 0], dist[:, 0]

    def assign(self, x: np.ndarray, threads: Optional[int] = None) -> np.ndarray:
        """(n,) int64 labels of the rows of x (n, dim)."""
        return self.search(x, threads)[0]

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(Path(folder) / self.FILE))


Codebook = Union[Centroids, IVFIndex]


def load_codebook(folder: Path) -> Codebook:
    """The codebook a clustering stage saved in `folder` (index.faiss or centroids.npy)."""
    folder = Path(folder)
    if (folder / IVFIndex.FILE).is_file():
        import faiss

        return IVFIndex(faiss.read_index(str(folder / IVFIndex.FILE)))
    if (folder / Centroids.FILE).is_file():
        return Centroids(np.load(folder / Centroids.FILE))
    raise HarnessError(f"{folder}: no codebook ({Centroids.FILE} or {IVFIndex.FILE})")


@dataclass
class IVFResult:
    codebook: IVFIndex
    inertia: float  # sum of squared distances of the training points to their coarse centroid (transformed space)
    n_points: int
    seconds: float
    factory: str  # the faiss factory string with K filled in
    notes: List[str]  # what the caller should tell the user (too few training points)


def ivf_factory(factory: str, k: int) -> str:
    """The factory string with "{K}" replaced by the stream's number of clusters."""
    return factory.replace("{K}", str(int(k)))


def fit_ivf(x: np.ndarray, k: int, factory: str = IVF_FACTORY, seed: int = 0,
            threads: Optional[int] = None) -> IVFResult:
    """Train mHuBERT-147's faiss index on the frames x (n, dim): the authors' create_index
    (index_factory, then train with faiss's defaults: IVF k-means of 10 iterations on at most
    256 x K frames, the OPQ rotation on at most 65,536; their index.add of the training frames is
    left out, as the labels never read it).

    Seeds: faiss seeds each component itself (IVF k-means and PQ 1234, HNSW levels 12345, the OPQ
    rotation 1234); here every one that faiss exposes is set from `seed`: the IVF k-means
    (cp.seed), the residual PQ, the HNSW level generator, and the OPQ rotation (a seeded random
    orthonormal start and the seed of the PQ it is fitted against). faiss keeps two fixed seeds
    that it does not expose: OPQ's subsample of at most 65,536 training points and the HNSW
    insertion shuffle. Training runs on one thread: the HNSW graph is built in parallel when a
    level has over 100 nodes (K > 100), and faiss notes that its OPQ SVD is bit-exact only
    single-threaded. Every step subsamples, so the cost is bounded whatever the number of frames.

    Returns:
        IVFResult; inertia = summed squared distance of x to its coarse centroid in the
        transformed space.
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    spec = ivf_factory(factory, k)
    try:
        index = faiss.index_factory(d, spec)
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError as e:
        raise HarnessError(f"faiss index {spec!r} for {d}-dim features: {str(e).strip().splitlines()[-1]}") from None
    if int(ivf.nlist) != k:
        raise HarnessError(f"faiss index {spec!r} has {ivf.nlist} IVF lists, the label stream K = {k}")
    if n < k:
        raise HarnessError(f"faiss IVF index: {n} points for K = {k} clusters")
    ivf.cp.seed = int(seed)
    sub = faiss.downcast_index(ivf)
    if hasattr(sub, "pq"):
        sub.pq.cp.seed = int(seed)
    quantizer = faiss.downcast_index(ivf.quantizer)
    if isinstance(quantizer, faiss.IndexHNSW):
        quantizer.hnsw.rng = faiss.RandomGenerator(int(seed))
    notes: List[str] = []
    keep = []  # Python owners of objects faiss only points to during training
    rng = np.random.default_rng(seed)
    for vt in IVFIndex(index).transforms:
        if isinstance(vt, faiss.OPQMatrix):
            dd, d2 = max(vt.d_in, vt.d_out), vt.d_out
            if d2 % vt.M:
                raise HarnessError(f"faiss index {spec!r}: OPQ{vt.M}_{d2} needs an output size divisible by {vt.M}")
            # faiss starts from the first d2 columns of a random dd x dd orthonormal matrix (its
            # rotation is padded with zeros when d_out > d_in, e.g. 39-d MFCC -> 64); so do we, seeded
            q, _ = np.linalg.qr(rng.standard_normal((dd, dd)))
            faiss.copy_array_to_vector(np.ascontiguousarray(q[:, :d2].T, dtype=np.float32).ravel(), vt.A)
            pq = faiss.ProductQuantizer(d2, vt.M, OPQ_PQ_BITS)
            pq.cp.seed = int(seed)
            if n < FAISS_MIN_POINTS_PER_CENTROID * pq.ksub:
                # one note here instead of faiss's warning per sub-space and per OPQ iteration
                pq.cp.min_points_per_centroid = 1
                notes.append(f"{n} training frames: fewer than the {FAISS_MIN_POINTS_PER_CENTROID * pq.ksub} faiss "
                             f"asks for to fit the OPQ rotation ({pq.ksub} centroids per sub-space)")
            keep.append(pq)
            vt.pq = pq
    prev = set_threads(threads)
    faiss.omp_set_num_threads(1)
    t0 = time.perf_counter()
    try:
        index.train(x)
    finally:
        faiss.omp_set_num_threads(prev)
    for vt in IVFIndex(index).transforms:
        if isinstance(vt, faiss.OPQMatrix):
            vt.pq = None  # not saved by write_index; do not leave a pointer to a freed object
    cb = IVFIndex(index)
    inertia_ = float(cb.search(x, threads)[1].astype(np.float64).sum())
    return IVFResult(cb, inertia_, n, time.perf_counter() - t0, spec, notes)
