import types

import torch

from harness.featurizer import WeightedSum, corrected_contributions
from harness.s3prl_compat import featurizer_class


def test_weighted_sum_equals_s3prl_featurizer():
    torch.manual_seed(0)
    L1, B, T, D = 5, 3, 17, 8
    layers = [torch.randn(B, T, D) for _ in range(L1)]
    lens = torch.tensor([17, 9, 3])
    fake_upstream = types.SimpleNamespace(num_layers=L1, hidden_sizes=[D] * L1, downsample_rates=[320] * L1)
    ref = featurizer_class()(fake_upstream)
    ours = WeightedSum(L1)
    w = torch.randn(L1)
    with torch.no_grad():
        ref.weights.copy_(w)
        ours.weights.copy_(w)
    expected, expected_lens = ref(layers, [lens] * L1)
    assert torch.allclose(ours(layers), expected, atol=1e-6)
    assert torch.equal(expected_lens, lens)


def test_zero_init_is_uniform_and_corrected_contributions():
    ws = WeightedSum(4)
    assert ws.softmax_weights() == [0.25] * 4
    c = corrected_contributions([0.5, 0.5], [1.0, 3.0])
    assert abs(c[0] - 0.25) < 1e-9 and abs(c[1] - 0.75) < 1e-9
