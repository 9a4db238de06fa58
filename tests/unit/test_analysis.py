"""Known-answer tests of the layer-analysis measures (harness/analysis)."""

import math

import numpy as np
import pytest
import torch

from harness.analysis import cca as C
from harness.analysis import labels as L
from harness.analysis import mi as M


def _layer_and_labels(n=4000, classes=10, dim=24, seed=0):
    """A layer whose frames carry phone identity linearly (class means + noise) and its labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    means = rng.standard_normal((classes, dim)) * 2.0
    x = means[y] + rng.standard_normal((n, dim))
    return x, y


def test_pwcca_of_a_layer_with_itself_is_one():
    x, _ = _layer_and_labels()
    assert C.pwcca(x, x) == pytest.approx(1.0, abs=1e-9)
    assert C.pwcca(x, x, keep_variance=None) == pytest.approx(1.0, abs=1e-9)


def test_pwcca_with_independent_noise_is_near_zero():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20000, 12))
    noise = rng.standard_normal((20000, 8))
    # spurious canonical correlations of independent views shrink as sqrt(dims / n): ~0.04 here
    assert C.pwcca(x, noise) < 0.05
    y = rng.integers(0, 10, 20000)
    assert C.pwcca(x, C.one_hot(y)) < 0.05


def test_pwcca_is_invariant_to_an_invertible_linear_map_of_the_layer():
    x, y = _layer_and_labels()
    oh = C.one_hot(y)
    rng = np.random.default_rng(2)
    q1, _ = np.linalg.qr(rng.standard_normal((24, 24)))
    q2, _ = np.linalg.qr(rng.standard_normal((24, 24)))
    a = q1 @ np.diag(rng.uniform(0.3, 3.0, 24)) @ q2  # invertible, condition number about 10
    base = C.pwcca(x, oh, keep_variance=None)
    assert 0.3 < base < 1.0  # a real, imperfect relation: the invariance is not 1 == 1
    assert C.pwcca(x @ a, oh, keep_variance=None) == pytest.approx(base, abs=1e-9)
    assert C.pwcca(x @ a + 5.0, oh, keep_variance=None) == pytest.approx(base, abs=1e-9)  # and to a shift
    # with the 99 %-variance SVD step: exact for an orthogonal map times a scale
    assert C.pwcca(3.0 * x @ q1, oh) == pytest.approx(C.pwcca(x, oh), abs=1e-9)


def test_pwcca_tracks_how_much_label_information_the_layer_keeps():
    x, y = _layer_and_labels()
    oh = C.one_hot(y)
    rng = np.random.default_rng(3)
    noisier = x + 3.0 * rng.standard_normal(x.shape)
    assert C.pwcca(noisier, oh) < C.pwcca(x, oh) - 0.1


def _textbook_canonical_correlations(x, y):
    """rho^2 = eigenvalues of Sxx^-1 Sxy Syy^-1 Syx (Hotelling 1936)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = xc.T @ xc, yc.T @ yc, xc.T @ yc
    m = np.linalg.solve(sxx, sxy) @ np.linalg.solve(syy, sxy.T)
    ev = np.sort(np.linalg.eigvals(m).real)[::-1][: min(x.shape[1], y.shape[1])]
    return np.sqrt(np.clip(ev, 0, 1))


def _related_views(n=3000, seed=4):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3))
    x = np.hstack([z, rng.standard_normal((n, 4))]) @ rng.standard_normal((7, 7))
    y = np.hstack([z * [1.0, 0.6, 0.3] + rng.standard_normal((n, 3)) * [0.3, 0.6, 1.0],
                   rng.standard_normal((n, 2))]) @ rng.standard_normal((5, 5))
    return x, y


def test_cca_correlations_match_the_textbook_eigenproblem():
    x, y = _related_views()
    rho = C.cca(x, y, keep_variance=None).rho
    np.testing.assert_allclose(rho, _textbook_canonical_correlations(x, y), atol=1e-8)
    assert rho[0] > 0.9 and rho[-1] < 0.1  # the views share three directions of different strength


def test_cca_correlations_match_sklearn():
    from sklearn.cross_decomposition import CCA

    x, y = _related_views()
    ours = C.cca(x, y, keep_variance=None)
    xs, ys = CCA(n_components=3, max_iter=5000, tol=1e-12).fit(x, y).transform(x, y)
    theirs = [abs(np.corrcoef(xs[:, i], ys[:, i])[0, 1]) for i in range(3)]
    np.testing.assert_allclose(ours.rho[:3], theirs, atol=1e-4)
    # our variates are orthonormal and each pair correlates by rho
    np.testing.assert_allclose(ours.hx.T @ ours.hx, np.eye(ours.hx.shape[1]), atol=1e-9)
    np.testing.assert_allclose(np.diag(ours.hx.T @ ours.hy), ours.rho, atol=1e-9)


def test_svd_reduce_keeps_the_variance_asked_for_and_drops_the_centred_one_hot_direction():
    y = np.repeat(np.arange(5), 20)
    assert C.svd_reduce(C.one_hot(y), keep_variance=None).shape == (100, 4)  # centring removes one
    rng = np.random.default_rng(5)
    x = rng.standard_normal((500, 6)) * [10, 5, 2, 0.1, 0.1, 0.1]  # variance shares .78 .19 .03 .0002
    assert C.svd_reduce(x, keep_variance=0.99).shape[1] == 3
    assert C.svd_reduce(x, keep_variance=0.9).shape[1] == 2
    with pytest.raises(ValueError, match="constant"):
        C.svd_reduce(np.ones((10, 3)))


def test_projection_weights_by_hand():
    # two orthonormal variates; the view's single column lies along the first: all weight there
    h = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=float) / np.sqrt(2)
    z = np.array([[2.0], [-2.0], [0.0], [0.0]])
    np.testing.assert_allclose(C.projection_weights(h, z), [1.0, 0.0])


def test_mi_of_a_layer_equal_to_the_phone_one_hot_is_the_phone_entropy():
    rng = np.random.default_rng(6)
    phones = rng.choice(12, 5000, p=np.arange(1, 13) / 78.0)
    layer = C.one_hot(phones) * 4.0  # the layer is the phone, nothing else
    clusters = M.kmeans_labels(layer, 12, seed=0)
    r = M.cluster_mi(clusters, phones)
    p = np.bincount(phones) / phones.size
    h = float(-(p * np.log2(p)).sum())
    assert r.label_entropy == pytest.approx(h, abs=1e-12)
    assert r.mi == pytest.approx(h, abs=1e-9)
    assert r.normalised == pytest.approx(1.0, abs=1e-9)
    assert r.chance < 0.05


def test_mi_of_independent_clusters_is_near_zero():
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 10, 50000), rng.integers(0, 8, 50000)
    # plug-in bias (|A|-1)(|B|-1)/(2 n ln 2) = 0.0009 bits
    assert M.mutual_information(a, b) < 0.005
    x = rng.standard_normal((20000, 8))
    r = M.cluster_mi(M.kmeans_labels(x, 20, seed=0), rng.integers(0, 6, 20000))
    assert r.mi < 0.01 and abs(r.mi - r.chance) < 0.01


def test_mutual_information_matches_sklearn():
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(8)
    a = rng.integers(0, 7, 3000)
    b = (a + rng.integers(0, 3, 3000)) % 9
    assert M.mutual_information(a, b) == pytest.approx(mutual_info_score(a, b) / math.log(2), abs=1e-12)
    assert M.mutual_information(a, a) == pytest.approx(M.entropy(a), abs=1e-12)
    assert M.mutual_information(["x", "y", "x"], [1, 2, 1]) == pytest.approx(M.entropy([0, 1, 0]))


def test_frame_phones_label_each_frame_by_its_centre():
    align = [["sil", 0.0, 0.05], ["a", 0.05, 0.11], ["b", 0.11, 0.2]]
    # 50 Hz: centres 0.01, 0.03, 0.05, 0.07, 0.09, 0.11, 0.13, ..., 0.23
    got = L.frame_phones(align, 12, 50.0)
    assert got == ["sil", "sil", "a", "a", "a", "b", "b", "b", "b", "b", None, None]


def test_sample_frames_leaves_out_silence_and_stops_at_max_frames():
    from harness.data.corpus import Utterance

    align = [["sil", 0.0, 0.04], ["a", 0.04, 0.1], ["sil", 0.1, 0.2]]
    utts = [Utterance(f"u{i}", "x.wav", 0.2, speaker=f"s{i}", custom={"alignment": align}) for i in range(3)]
    feats = {f"u{i}": np.full((10, 2, 3), float(i)) for i in range(3)}
    s = L.sample_frames(utts, feats.__getitem__, 50.0, max_frames=5, seed=0)
    assert s.layers.shape == (2, 5, 3)
    assert list(s.phones) == ["a"] * 5  # frames 2..4 of each utterance are "a"
    assert len(set(s.speakers)) == 2 and len(s.utterances) == 2


class _Pool:
    """A stand-in for a CachedPool: (T, L+1, D) arrays by id."""

    skipped = {}

    def __init__(self, arrays):
        self.arrays = arrays
        first = next(iter(arrays.values()))
        self.num_layers, self.dim = first.shape[1], first.shape[2]

    def __contains__(self, uid):
        return uid in self.arrays

    def frames(self, uid):
        return self.arrays[uid].shape[0]

    def get(self, uid, start=0, length=None):
        a = self.arrays[uid]
        return a[start: None if length is None else start + length]


def test_one_layer_source_hands_the_probe_only_that_layer():
    from harness.analysis.probe_layer import OneLayerSource
    from harness.data.corpus import Utterance
    from harness.features import FeatureSource

    rng = np.random.default_rng(9)
    arrays = {"a": rng.standard_normal((7, 4, 3)).astype(np.float16), "b": rng.standard_normal((5, 4, 3)).astype(np.float16)}
    src = FeatureSource([Utterance(i, "x.wav", 1.0) for i in arrays], pools=[_Pool(arrays)])
    one = OneLayerSource(src, 2)
    layers, lengths = one.get_batch(["a", "b"])
    assert layers.shape == (1, 2, 7, 3) and lengths.tolist() == [7, 5]
    torch.testing.assert_close(layers[0, 1, :5], torch.from_numpy(arrays["b"][:, 2].astype(np.float32)))
    assert one.ids == src.ids and one.frames("a") == 7
    # the probe's own path (the prefetcher's host batches) hands out that one layer too
    from harness.batches import device_batch, host_batch

    got, _ = device_batch(host_batch(one, ["a", "b"]), "cpu")
    torch.testing.assert_close(got, layers)
