"""Benchmark: our clustering stage (faiss k-means fit on the sampled frames + nearest-centroid
labels for every frame) vs fairseq simple_kmeans settings (sklearn MiniBatchKMeans, k-means++,
batch 10,000, n_init 20, max_iter 100, then predict) on the same features. Prints both times,
the ratio (sklearn time / ours) and both inertias on all frames.

    .venv/bin/python bench/clustering.py [--features RUN/iter1/features/train] [--corpus data/synth/small]
        [--k 100] [--fraction 1.0] [--threads 2]

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
    a = ap.parse_args()
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
        x = cluster.sample_frames(reader, a.fraction, seed=a.seed)
        allx = np.concatenate([reader.get(i) for i in range(len(reader))]).astype(np.float32)
        print(f"{len(x)} sampled frames ({a.fraction:g} of {len(reader)} utterances) x {x.shape[1]} dims; "
              f"labels for all {len(allx)} frames; K = {a.k}; {a.threads} threads")

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
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
