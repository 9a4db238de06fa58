import torch

from tasks.heads import BiLSTM, masked_mean, reverse_padded
from tasks.heads_speaker import XVectorHead


def test_bilstm_matches_packed_torch_lstm():
    torch.manual_seed(0)
    ours = BiLSTM(6, 5, layers=2)
    ref = torch.nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for layer in range(2):
            for d, mod in (("", ours.fwd[layer]), ("_reverse", ours.bwd[layer])):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(ref, f"{name}_l{layer}{d}").copy_(getattr(mod, f"{name}_l0"))
    x = torch.randn(3, 9, 6)
    lens = torch.tensor([9, 4, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    y_ref, _ = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=9)
    y = ours(x, lens)
    assert torch.allclose(y, y_ref, atol=1e-6)


def test_reverse_padded_and_masked_mean():
    x = torch.arange(8.0).view(2, 4, 1)
    r = reverse_padded(x, torch.tensor([4, 2]))
    assert r[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    assert masked_mean(x, torch.tensor([4, 2]))[:, 0].tolist() == [1.5, 4.5]


def test_xvector_head_ignores_padding_and_scores_trials_on_linear1():
    torch.manual_seed(0)
    head = XVectorHead(8, hidden=16, stats_dim=24, emb_dim=12).eval()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules())  # batch_norm: False
    assert all(c.padding == (0,) for c in head.modules() if isinstance(c, torch.nn.Conv1d))  # unpadded
    a = torch.randn(1, 30, 8)
    padded = torch.cat([a, torch.randn(1, 10, 8)], 1)
    t1, e1 = head(a, torch.tensor([30]))
    t2, e2 = head(padded, torch.tensor([30]))
    assert torch.allclose(e1, e2, atol=1e-5) and torch.allclose(t1, t2, atol=1e-5)
    # 30 frames -> 16 TDNN frames; statistics = mean and unbiased std of those
    h = head.tdnn(head.proj(a).transpose(1, 2)).transpose(1, 2)[0]
    assert h.shape[0] == 30 - 14
    stats = torch.cat([h.mean(0), h.var(0).clamp(min=1e-6).sqrt()])  # unbiased, floored
    assert torch.allclose(e1[0], torch.relu(head.linear1(stats)), atol=1e-5)
    assert torch.allclose(t1[0], torch.relu(head.linear2(torch.relu(head.linear1(stats)))), atol=1e-5)
    # shorter than the 15 frames of context: still one embedding
    assert head(torch.randn(2, 9, 8), torch.tensor([9, 4]))[1].shape == (2, 12)
