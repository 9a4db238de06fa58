"""Canonical correlation analysis and projection-weighted CCA (PWCCA).

Maths (written from Morcos, Raghu and Bengio, "Insights on representational similarity in neural
networks with canonical correlation", NeurIPS 2018, sections 2-3, and Raghu et al.'s SVCCA,
NeurIPS 2017, for the SVD step):

1. Centre both views X (n, p) and Y (n, q) over the n samples.
2. SVD-reduce each view: X = U S V^T; keep the leading directions that hold `keep_variance` of the
   variance (and always drop directions whose singular value is numerically zero, e.g. the one
   that centring removes from a one-hot matrix). The reduced view is U_k S_k (n, k).
3. CCA by QR and SVD: X_r = Q_x R_x, Y_r = Q_y R_y (thin QR); Q_x^T Q_y = A diag(rho) B^T. rho are
   the canonical correlations (descending, in [0, 1]); the canonical variates of X are
   H_x = Q_x A (n, m), orthonormal columns, and those of Y are H_y = Q_y B.
4. PWCCA: rho_i weighted by alpha_i = sum_j |<h_i, z_j>| over the centred original columns z_j of
   one view (its canonical variates h_i), alpha normalised to sum 1: the canonical directions
   that account for more of the view's activity count more.

Which view carries the weights: the one with fewer kept directions. The published code does so
(google/svcca@766f2062e5163e86462fdf96d01152ea9f334389, pwcca.py, compute_pwcca: weights from
the view whose kept neurons are fewer). For a layer (hundreds of dims) against one-hot labels
(tens of classes) that is the label view, which makes PWCCA invariant to any invertible linear
map of the layer as long as the SVD step keeps the same subspace (keep_variance=None: only
numerically-zero directions dropped). With keep_variance < 1 the kept subspace depends on the
layer's variance spectrum, so the invariance is approximate (exact for orthogonal maps times a
scalar). Departure from that code: the weights project the centred columns (it projects the
uncentred ones); the canonical variates are centred, so centring only removes a constant offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

#: singular values below RTOL x the largest are numerically zero (dropped in every case)
RTOL = 1e-6


@dataclass
class CCAResult:
    """Canonical correlations and the variates behind them.

    Attributes:
        rho: (m,) canonical correlations, descending, m = min(kept_x, kept_y).
        hx: (n, m) canonical variates of X, orthonormal columns.
        hy: (n, m) canonical variates of Y, orthonormal columns.
        kept_x: directions of X kept by the SVD step.
        kept_y: directions of Y kept by the SVD step.
    """

    rho: np.ndarray
    hx: np.ndarray
    hy: np.ndarray
    kept_x: int
    kept_y: int


def svd_reduce(x: np.ndarray, keep_variance: Optional[float] = 0.99) -> np.ndarray:
    """The centred view in its leading singular directions.

    Args:
        x: (n, p) samples by features.
        keep_variance: fraction of the variance the kept directions hold (the smallest such
            prefix); None keeps every direction whose singular value is above RTOL x the largest.

    Returns:
        (n, k) float64, U_k S_k: orthogonal columns in descending variance.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"svd_reduce: want (n >= 2, p) samples x features, got shape {x.shape}")
    xc = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    if s.size == 0 or s[0] <= 0:
        raise ValueError("svd_reduce: the view is constant (no variance to correlate)")
    k = int((s > RTOL * s[0]).sum())
    if keep_variance is not None:
        if not 0 < keep_variance <= 1:
            raise ValueError(f"keep_variance must be in (0, 1], got {keep_variance}")
        frac = np.cumsum(s**2) / np.sum(s**2)
        k = min(k, int(np.searchsorted(frac, keep_variance - 1e-12)) + 1)
    return u[:, :k] * s[:k]


def cca(x: np.ndarray, y: np.ndarray, keep_variance: Optional[float] = 0.99) -> CCAResult:
    """Canonical correlations of two views of the same n samples (steps 1-3 of the module doc).

    Args:
        x: (n, p), y: (n, q) samples by features.
        keep_variance: see `svd_reduce` (applied to both views).
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"cca: views have {x.shape[0]} and {y.shape[0]} samples; they must match")
    xr, yr = svd_reduce(x, keep_variance), svd_reduce(y, keep_variance)
    qx, _ = np.linalg.qr(xr)
    qy, _ = np.linalg.qr(yr)
    a, rho, bt = np.linalg.svd(qx.T @ qy, full_matrices=False)
    m = min(qx.shape[1], qy.shape[1])
    rho = np.clip(rho[:m], 0.0, 1.0)  # rounding can push a perfect correlation past 1
    return CCAResult(rho, qx @ a[:, :m], qy @ bt.T[:, :m], qx.shape[1], qy.shape[1])


def projection_weights(h: np.ndarray, z: np.ndarray) -> np.ndarray:
    """alpha_i = sum_j |<h_i, z_j>| over the centred columns z_j of `z`, normalised to sum 1.

    Args:
        h: (n, m) canonical variates of the view `z` came from.
        z: (n, p) that view's original activations.

    Returns:
        (m,) non-negative weights summing to 1.
    """
    zc = np.asarray(z, dtype=np.float64)
    zc = zc - zc.mean(axis=0, keepdims=True)
    alpha = np.abs(h.T @ zc).sum(axis=1)
    total = alpha.sum()
    if total <= 0:
        raise ValueError("projection_weights: the view has no activity along its canonical variates")
    return alpha / total


def pwcca(x: np.ndarray, y: np.ndarray, keep_variance: Optional[float] = 0.99) -> float:
    """Projection-weighted CCA similarity of two views, in [0, 1] (1: one is a linear map of the
    other; near 0: unrelated). Weights from the view with fewer kept directions (module doc).

    Args:
        x: (n, p), y: (n, q) samples by features (e.g. a layer's frames and one-hot labels).
        keep_variance: see `svd_reduce`.
    """
    r = cca(x, y, keep_variance)
    h, z = (r.hx, x) if r.kept_x <= r.kept_y else (r.hy, y)
    return float(np.sum(projection_weights(h, z) * r.rho))


def one_hot(labels: np.ndarray, num_classes: Optional[int] = None) -> np.ndarray:
    """(n,) integer labels in [0, C) -> (n, C) float32 one-hot rows."""
    labels = np.asarray(labels, dtype=np.int64)
    c = int(labels.max()) + 1 if num_classes is None else num_classes
    out = np.zeros((labels.size, c), dtype=np.float32)
    out[np.arange(labels.size), labels] = 1.0
    return out
