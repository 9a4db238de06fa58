"""Entropy and mutual information of discrete labels, and the MI between k-means clusters of a
layer's frames and a labelling of the same frames (phones, speakers).

The MI is the plug-in estimate from the joint count table, in bits:
I(A; B) = sum_ab p(a, b) log2 p(a, b) / (p(a) p(b)). It is biased upwards by about
(|A| - 1)(|B| - 1) / (2 n ln 2) bits for n samples (Miller 1955), which is why `cluster_mi` also
reports the MI against a random permutation of the labels (`chance`): an estimate of the part of
the value that any clustering would get from a finite sample (one permutation, so a value near it
is no evidence either way; it is not a bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


def _codes(labels) -> np.ndarray:
    """Any hashable labels -> (n,) int64 codes 0..K-1."""
    return np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1)


def entropy(labels) -> float:
    """H(A) in bits of the empirical distribution of (n,) labels."""
    counts = np.bincount(_codes(labels)).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def mutual_information(a, b) -> float:
    """Plug-in I(A; B) in bits of two (n,) labellings of the same samples (0 <= I <= min(H(A), H(B)))."""
    ca, cb = _codes(a), _codes(b)
    if ca.size != cb.size:
        raise ValueError(f"mutual_information: {ca.size} and {cb.size} labels; they must match")
    if ca.size == 0:
        raise ValueError("mutual_information: no samples")
    joint = np.zeros((ca.max() + 1, cb.max() + 1), dtype=np.float64)
    np.add.at(joint, (ca, cb), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(max(0.0, (joint[nz] * np.log2(joint[nz] / (pa @ pb)[nz])).sum()))


@dataclass
class ClusterMI:
    """MI between k-means clusters of a layer and a labelling.

    Attributes:
        mi: I(cluster; label) in bits.
        label_entropy: H(label) in bits (the most the MI can be).
        chance: I(cluster; permuted label) in bits, one permutation: the estimate's finite-sample
            bias on this sample (an estimate itself, not a strict floor).
        k: clusters that hold at least one of the frames.
    """

    mi: float
    label_entropy: float
    chance: float
    k: int

    @property
    def normalised(self) -> float:
        """mi / H(label) in [0, 1] (nan when the label is constant)."""
        return self.mi / self.label_entropy if self.label_entropy > 0 else float("nan")


def kmeans_labels(x: np.ndarray, k: int, seed: int = 0, niter: int = 20, fit_frames: Optional[int] = None) -> np.ndarray:
    """(n,) nearest-centroid cluster of each row of x for k-means (k clusters, k-means++ seeds)
    fitted on the rows (or a seeded random `fit_frames` of them). Uses the pre-training's
    k-means (harness/pretrain/cluster.py) so the analysis clusters as the labels were made."""
    from harness.pretrain.cluster import fit_kmeans, nearest

    x = np.ascontiguousarray(x, dtype=np.float32)
    fit = x
    if fit_frames is not None and len(x) > fit_frames:
        rng = np.random.default_rng(seed)
        fit = x[np.sort(rng.choice(len(x), fit_frames, replace=False))]
    km = fit_kmeans(fit, k, niter=niter, seed=seed)
    return nearest(x, km.centroids)[0]


def cluster_mi(clusters: np.ndarray, labels, seed: int = 0) -> ClusterMI:
    """MI of precomputed (n,) cluster ids with (n,) labels, with its permutation floor."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    return ClusterMI(mutual_information(clusters, labels), entropy(labels),
                     mutual_information(clusters, labels[rng.permutation(labels.size)]),
                     int(np.unique(clusters).size))
