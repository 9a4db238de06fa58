"""Every registered upstream keeps the interface: L+1 layers, shapes, lengths, padding."""

import pytest
import torch

from harness.catalog import registered_row
from harness.registry import UPSTREAMS, load_all

load_all()
# published-size nets (base, base_plus, large, at any frame rate) are covered by parity tests;
# tiny ones run here
NAMES = [n for n in UPSTREAMS.names() if not any(s in n for s in ("_base", "_large"))]


@pytest.fixture(scope="module", params=NAMES)
def upstream(request):
    torch.manual_seed(0)
    return UPSTREAMS.get(request.param)().eval()


def test_spec_and_shapes(upstream):
    spec = upstream.spec
    wavs = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        hs = upstream(wavs, torch.tensor([16000, 16000]))
    assert len(hs.layers) == spec.num_layers
    for h in hs.layers:
        assert h.shape[0] == 2 and h.shape[2] == spec.hidden_size
        assert torch.isfinite(h).all()
    assert hs.lengths.tolist() == upstream.num_frames(torch.tensor([16000, 16000])).tolist()
    assert abs(hs.lengths[0].item() - spec.frame_rate_hz) <= 2  # about 1 s of frames
    assert spec.sample_rate == 16000


def test_padded_batch_equals_items_alone(upstream):
    torch.manual_seed(1)
    a, b = torch.randn(16000) * 0.1, torch.randn(9000) * 0.1
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :9000] = a, b
    with torch.no_grad():
        hs = upstream(batch, torch.tensor([16000, 9000]))
        alone_b = upstream(b[None], torch.tensor([9000]))
    n = int(alone_b.lengths[0])
    assert int(hs.lengths[1]) == n
    for hb, ha in zip(hs.layers, alone_b.layers):
        assert torch.allclose(hb[1, :n], ha[0, :n], atol=1e-4), float((hb[1, :n] - ha[0, :n]).abs().max())


def test_very_short_input_gives_a_frame(upstream):
    with torch.no_grad():
        hs = upstream(torch.randn(1, 100) * 0.1, torch.tensor([100]))
    assert int(hs.lengths[0]) >= 1
    assert all(torch.isfinite(h).all() for h in hs.layers)


def test_listed_row_is_the_built_upstreams(upstream):
    """`harness list upstreams` describes each upstream built on the meta device (no weights):
    it must be what the real one reports."""
    s = upstream.spec
    row = registered_row(s.name)
    assert (row.family, row.layers, row.width, row.frame_rate_hz, row.source) == (
        s.family, s.num_layers, s.hidden_size, s.frame_rate_hz, s.source)
    assert row.params == sum(p.numel() for p in upstream.parameters())


def test_weights_hash_is_stable(upstream):
    assert upstream.weights_hash() == upstream.weights_hash()
