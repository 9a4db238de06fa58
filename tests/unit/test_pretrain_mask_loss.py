"""HuBERT's span mask and masked-prediction loss against values computed here (issue 36).

The mask: the number of spans is floor(mask_prob T / mask_length + u), so the masked fraction
follows `mask_prob` (fairseq compute_mask_indices); with distinct uniform starts and overlapping
spans of L frames among S = T - L starts, the expected fraction is computed exactly below
(a frame is unmasked when none of the starts covering it is drawn). The loss: cross-entropy of
cosine(final_proj(state), codeword) / logit_temp over the masked frames that have a label,
summed, plus feature_pen * mean(CNN features^2) * (masked frames), written out independently.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from harness.pretrain.model import MaskedPredictionModel, compute_mask
from upstreams.hubert import HubertConfig, HubertEncoder

MICRO = replace(HubertConfig.tiny(), conv_channels=(32,) * 7, encoder_dim=64, encoder_layers=2, encoder_heads=4,
                encoder_ffn_dim=128, final_dim=32, dropout=0.0, attention_dropout=0.0, dropout_input=0.0,
                layerdrop=0.0, feature_grad_mult=1.0)


def _runs(row: torch.Tensor):
    out, n = [], 0
    for v in row.tolist() + [False]:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def _expected_fraction(p: float, T: int, L: int) -> float:
    """Mean masked fraction of one row of T frames: num = floor(p T / L + u) spans of L frames at
    distinct starts drawn uniformly from S = T - L; frame t is left unmasked when none of the w_t
    starts that cover it is drawn, probability prod_i (S - w_t - i) / (S - i)."""
    S = T - L
    lo = math.floor(p * T / L)
    hi_w = p * T / L - lo  # P(num = lo + 1)

    def masked(num: int) -> float:
        free = 0.0
        for t in range(T):
            w = min(S - 1, t) - max(0, t - L + 1) + 1
            free += math.prod((S - w - i) / (S - i) for i in range(num))
        return 1.0 - free / T

    return (1 - hi_w) * masked(lo) + hi_w * masked(lo + 1)


@pytest.mark.parametrize("mask_prob, mask_length", [(0.3, 10), (0.65, 10), (0.5, 5)])
def test_masked_fraction_follows_mask_prob(mask_prob, mask_length):
    g = torch.Generator().manual_seed(0)
    T = 2000
    fr = []
    for _ in range(60):
        m = compute_mask(1, T, mask_prob, mask_length, 2, generator=g)
        assert min(_runs(m[0])) >= mask_length  # whole spans (overlaps make longer runs, never shorter)
        fr.append(m.float().mean().item())
    expected = _expected_fraction(mask_prob, T, mask_length)
    assert sum(fr) / len(fr) == pytest.approx(expected, abs=0.008)
    # the two values are far apart: 0.3 -> 0.26, 0.65 -> 0.48 (0.8, the default, -> 0.55)
    assert abs(expected - _expected_fraction(0.8, T, mask_length)) > 0.05


def test_batch_rows_share_one_count_and_min_masks_holds():
    g = torch.Generator().manual_seed(1)
    m = compute_mask(4, 300, 0.4, 10, 2, generator=g)
    counts = m.sum(1).tolist()
    assert len(set(counts)) == 1 and counts[0] >= 10
    short = compute_mask(2, 30, 0.01, 10, 2, generator=g)  # 0.01 * 30 / 10 < 1: min_masks spans
    assert int(short.sum(1).min()) >= 10


def test_loss_equals_the_cross_entropy_written_out():
    torch.manual_seed(0)
    K = 7
    model = MaskedPredictionModel(HubertEncoder(MICRO), [("main", K)], logit_temp=0.1, feature_pen=10.0).eval()
    wav = 0.1 * torch.randn(2, 16000)
    out_enc = model.encoder(wav, None, mask=None)
    T = out_enc.hidden_states[-1].shape[1]
    y = torch.randint(0, K, (2, T))
    y[0, :6] = -1  # frames without a label
    mask = compute_mask(2, T, 0.65, 10, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(wav, {"main": y}, mask)
        enc = model.encoder(wav, None, mask=mask)
        x = enc.hidden_states[-1]
        proj = model.final_proj["main"](x)  # (B, T, final_dim)
        emb = model.label_embs["main"]  # (K, final_dim)
        logits = F.cosine_similarity(proj[:, :, None, :], emb[None, None, :, :], dim=-1) / 0.1  # (B, T, K)
        sel = mask & (y >= 0)
        ce = F.cross_entropy(logits[sel], y[sel], reduction="sum")
        n = int(sel.sum())
        pen = enc.features.float().pow(2).mean()
    assert 0 < n < int((y >= 0).sum())  # some labelled frames are not masked: they must not count
    assert int(out["n_masked"]) == n
    assert float(out["ce"]) == pytest.approx(float(ce), rel=1e-4)
    assert float(out["loss"]) == pytest.approx(float(ce) + 10.0 * float(pen) * n, rel=1e-4)
    assert float(pen) * n > 1e-3 * float(ce)  # the penalty term is not negligible here
