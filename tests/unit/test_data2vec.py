"""data2vec (harness/pretrain/objectives/data2vec.py): the EMA decay schedule and teacher update,
the targets (top-K fc2 outputs, instance-normalised over time, averaged) against hand
computations, the loss, learning on a tiny batch, the teacher in the state dict, the recipes."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from harness.pretrain.model import compute_mask
from harness.pretrain.objectives import get_objective
from harness.pretrain.objectives.data2vec import (Data2VecModel, Data2VecOptions, ema_decay, instance_norm_time,
                                                  make_targets)
from harness.pretrain.recipe_load import load_recipe
from upstreams.hubert import HubertConfig, HubertEncoder

TOY = replace(HubertConfig.tiny(), conv_channels=(16,) * 7, encoder_dim=32, encoder_layers=3, encoder_heads=4,
              encoder_ffn_dim=64, final_dim=16, pos_conv_kernel=16, pos_conv_groups=4, dropout=0.0,
              attention_dropout=0.0, dropout_input=0.0, layerdrop=0.0)


def _model(seed: int = 0, **opts) -> Data2VecModel:
    torch.manual_seed(seed)
    obj = get_objective("data2vec").from_dict({"average_top_k_layers": 2, **opts})
    return obj.build_model(HubertEncoder(TOY), [], None)


def test_ema_decay_schedule_values():
    tau0, tau1, n = 0.999, 0.9999, 30000
    assert ema_decay(0, tau0, tau1, n) == pytest.approx(0.999, abs=1e-15)
    assert ema_decay(n // 2, tau0, tau1, n) == pytest.approx(0.99945, abs=1e-15)
    assert ema_decay(n, tau0, tau1, n) == 0.9999
    assert ema_decay(n + 1, tau0, tau1, n) == ema_decay(10 * n, tau0, tau1, n) == 0.9999
    assert ema_decay(3000, tau0, tau1, n) == pytest.approx(0.999 + 0.1 * 0.0009, abs=1e-15)
    taus = [ema_decay(s, tau0, tau1, n) for s in range(0, n + 1, 1000)]
    assert all(a < b for a, b in zip(taus, taus[1:]))  # strictly rising until the end
    assert ema_decay(5, 0.9, 0.9, 10) == 0.9  # no anneal when start == end


def test_after_step_uses_the_schedule_and_total_steps_when_anneal_is_zero():
    seen = []

    class Spy:
        def update_teacher(self, tau):
            seen.append(tau)

    obj = get_objective("data2vec").from_dict({"ema_decay": 0.5, "ema_end_decay": 0.9, "ema_anneal_end_step": 0})
    for step in (1, 50, 100, 150):
        obj.after_step(Spy(), step, 100)  # anneal over the run's 100 updates
    assert seen == pytest.approx([0.5 + 0.4 * 0.01, 0.7, 0.9, 0.9], abs=1e-12)


def _fill(module: torch.nn.Module, start: float) -> None:
    """Every tensor of the state <- small dyadic values (k / 8): tau = 0.75 updates are exact."""
    with torch.no_grad():
        for i, t in enumerate(module.state_dict().values()):
            t.copy_(((torch.arange(t.numel()).reshape(t.shape) % 13) - 6 + start + i % 3) / 8)


def test_teacher_update_is_exactly_tau_teacher_plus_one_minus_tau_student():
    m = _model()
    _fill(m.teacher, 0.0)
    _fill(m.encoder.encoder, 5.0)
    t0 = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    s = {k: v.clone() for k, v in m.encoder.encoder.state_dict().items()}
    m.update_teacher(0.75)
    after = m.teacher.state_dict()
    assert any(k.startswith("pos_conv.") for k in after)
    for k, v in after.items():
        want = s[k] if k.startswith("pos_conv.") else 0.75 * t0[k] + 0.25 * s[k]  # pos conv copied (ema_layers_only)
        assert torch.equal(v, want), k
    assert not torch.equal(after["layers.0.fc1.weight"], s["layers.0.fc1.weight"])
    # the student is untouched and the teacher's weights take no gradient
    assert all(torch.equal(v, s[k]) for k, v in m.encoder.encoder.state_dict().items())
    assert not any(p.requires_grad for p in m.teacher.parameters())


def test_teacher_update_random_weights_and_options():
    m = _model(seed=3, ema_layers_only=False)
    with torch.no_grad():
        for p in m.encoder.encoder.parameters():
            p.add_(torch.randn_like(p))
    t0 = {k: v.double() for k, v in m.teacher.state_dict().items()}
    s = {k: v.double() for k, v in m.encoder.encoder.state_dict().items()}
    tau = ema_decay(7, 0.999, 0.9999, 30000)
    m.update_teacher(tau)
    for k, v in m.teacher.state_dict().items():  # pos conv averaged too without ema_layers_only
        torch.testing.assert_close(v.double(), tau * t0[k] + (1 - tau) * s[k], rtol=1e-6, atol=1e-7)
    before = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    m.update_teacher(1.0)  # tau = 1: the teacher stays
    assert all(torch.equal(v, before[k]) for k, v in m.teacher.state_dict().items())


def test_instance_norm_and_top_k_average_by_hand():
    # two layers, one item, 4 frames, 2 channels
    a = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [3.0, 4.0], [6.0, 0.0]]])
    b = torch.tensor([[[0.0, 1.0], [0.0, -1.0], [2.0, 1.0], [2.0, -1.0]]])

    def by_hand(layer):
        out = torch.zeros_like(layer)
        for c in range(layer.shape[2]):
            col = [float(v) for v in layer[0, :, c]]
            mean = sum(col) / len(col)
            var = sum((v - mean) ** 2 for v in col) / len(col)
            out[0, :, c] = torch.tensor([(v - mean) / math.sqrt(var + 1e-5) for v in col])
        return out

    # a channel 0: mean 3, var (4 + 1 + 0 + 9) / 4 = 3.5 -> frame 0 = -2 / sqrt(3.50001)
    assert float(instance_norm_time(a)[0, 0, 0]) == pytest.approx(-2 / math.sqrt(3.50001), rel=1e-6)
    want = (by_hand(a) + by_hand(b)) / 2
    got = make_targets([a, b])
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got, (F.instance_norm(a.transpose(1, 2)) + F.instance_norm(b.transpose(1, 2))).transpose(1, 2) / 2)
    # without instance norm: the plain mean; layer_norm_targets: then normalised over channels
    torch.testing.assert_close(make_targets([a, b], instance_norm=False), (a + b) / 2)
    ln = make_targets([a, b], layer_norm=True)
    mu, var = want.mean(-1, keepdim=True), want.var(-1, unbiased=False, keepdim=True)
    torch.testing.assert_close(ln, (want - mu) / torch.sqrt(var + 1e-5))


def test_instance_norm_uses_valid_frames_only():
    torch.manual_seed(0)
    y = torch.randn(2, 7, 3)
    valid = torch.ones(2, 7, dtype=torch.bool)
    valid[1, 5:] = False
    got = instance_norm_time(y, valid)
    torch.testing.assert_close(got[1, :5], instance_norm_time(y[1:, :5])[0])
    torch.testing.assert_close(got[0], instance_norm_time(y[:1])[0])


def test_teacher_targets_are_the_top_k_ffn_outputs():
    """fairseq's layer_results[2]: fc2's output before the final residual and LN, recomputed here
    from the teacher's own states (post-LN layers)."""
    m = _model(seed=1)
    x = torch.randn(2, 20, TOY.encoder_dim)
    pad = torch.zeros(2, 20, dtype=torch.bool)
    got = m.teacher_layers(x, pad)
    states = m.teacher(x, pad)
    assert len(got) == 2
    for j, i in enumerate((1, 2)):  # the top 2 of 3 layers (0-based)
        layer, s = m.teacher.layers[i], states[i]
        h = layer.self_attn_layer_norm(s + layer.self_attn(s, None))
        ffn = layer.fc2(F.gelu(layer.fc1(h)))
        torch.testing.assert_close(got[j], ffn)
        torch.testing.assert_close(layer.final_layer_norm(h + ffn), states[i + 1])  # what the layer outputs
        assert not torch.allclose(got[j], states[i + 1])


def test_loss_is_the_scaled_squared_error_at_masked_frames():
    m = _model(seed=2)
    m.eval()
    wavs = torch.randn(2, 8000)
    T = int(TOY.num_frames(8000))
    mask = compute_mask(2, T, 0.65, 5, 1, generator=torch.Generator().manual_seed(0))
    out = m(wavs, {}, mask)
    x, _, _, pad = m.encoder.front_end(wavs)
    y = make_targets(m.teacher_layers(x, pad))
    pred = m.final_proj(m.encoder(wavs, mask=mask).hidden_states[-1])
    want = ((pred - y) ** 2).sum(-1)[mask].sum() / math.sqrt(TOY.encoder_dim)
    torch.testing.assert_close(out["loss"], want)
    assert int(out["n_masked"]) == int(mask.sum()) and int(out["n_unmasked"]) == int((~mask).sum())
    assert int(out["correct_masked"]) == 0


def test_a_few_dozen_steps_on_a_tiny_batch_lower_the_loss():
    m = _model(seed=4)
    obj = get_objective("data2vec").from_dict({"average_top_k_layers": 2, "ema_decay": 0.9, "ema_end_decay": 0.99,
                                               "ema_anneal_end_step": 20})
    torch.manual_seed(4)
    t = torch.arange(16000) / 16000
    wavs = torch.stack([torch.sin(2 * math.pi * f * t) * (1 + t) for f in (150.0, 330.0)]) + 0.05 * torch.randn(2, 16000)
    T = int(TOY.num_frames(16000))
    mask = compute_mask(2, T, 0.65, 10, 1, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=5e-3)
    losses, zero = [], []
    m.train()
    for step in range(60):
        out = m(wavs, {}, mask)
        (out["loss"] / out["n_masked"]).backward()
        opt.step()
        opt.zero_grad()
        obj.after_step(m, step + 1, 60)
        losses.append(float(out["loss"].detach()) / int(out["n_masked"]))
        with torch.no_grad():  # what predicting 0 (each target channel's mean over time) would score
            x, _, _, pad = m.encoder.front_end(wavs)
            y = make_targets(m.teacher_layers(x, pad))
            zero.append(float((y[mask] ** 2).sum(-1).mean()) / math.sqrt(TOY.encoder_dim))
    assert sum(losses[-5:]) / 5 < 0.6 * losses[0]
    assert sum(losses[-5:]) / 5 < 0.6 * sum(zero[-5:]) / 5  # the student predicts more than the mean
    assert not torch.equal(m.teacher.layers[0].fc1.weight, m.encoder.encoder.layers[0].fc1.weight)


def test_teacher_lives_in_the_state_dict_and_restarts_on_a_warm_start():
    m = _model(seed=5)
    sd = m.state_dict()
    assert any(k.startswith("teacher.layers.") for k in sd)
    assert not any(k.startswith("encoder.") and "teacher" in k for k in sd)  # export keeps encoder.* only
    other = _model(seed=6)
    with torch.no_grad():
        other.teacher.layers[0].fc1.weight.add_(1.0)
    m.load_state_dict(other.state_dict())  # a checkpoint: its teacher as saved
    torch.testing.assert_close(m.teacher.layers[0].fc1.weight, other.teacher.layers[0].fc1.weight)
    enc_only = {k: v for k, v in other.state_dict().items() if k.startswith("encoder.")}
    m.load_state_dict(enc_only, strict=False)  # a warm start: the teacher restarts from the student
    torch.testing.assert_close(m.teacher.layers[0].fc1.weight, other.encoder.encoder.layers[0].fc1.weight)
    m.train()
    assert m.encoder.training and not m.teacher.training


def test_options_are_checked():
    with pytest.raises(ConfigError, match="ema_decay"):
        Data2VecOptions(ema_decay=1.5)
    with pytest.raises(ConfigError, match="average_top_k_layers"):
        Data2VecOptions(average_top_k_layers=0)
    with pytest.raises(ConfigError, match="average_top_k_layers = 4"):
        _model(average_top_k_layers=4)
    with pytest.raises(ConfigError, match="loss_beta"):
        Data2VecOptions(loss_beta=-1.0)


def test_recipes_resolve_without_labels(tmp_path):
    tiny, base = load_recipe("data2vec_tiny"), load_recipe("data2vec_base")
    hubert = load_recipe("hubert_tiny")
    assert len(tiny.iterations) == len(base.iterations) == 1
    it = tiny.iterations[0]
    assert it.objective == "data2vec" and it.label_streams() == []
    assert it.objective_options.average_top_k_layers == 3 and it.train.mask_prob == 0.65 and it.train.min_masks == 1
    assert (it.model, it.train.steps, it.train.lr) == (hubert.iterations[0].model, 1200, hubert.iterations[0].train.lr)
    b = base.iterations[0]
    assert b.objective_options == Data2VecOptions()  # the defaults are the published Base values
    assert (b.model.encoder_layers, b.model.extractor_mode, b.model.normalize, b.train.steps) == (12, "layer_norm", True, 400000)
    p = tmp_path / "x.yaml"
    p.write_text("base: data2vec_tiny\nobjective: {average_top_k_layers: 5}\n")
    with pytest.raises(ConfigError, match="average_top_k_layers = 5, but the model has 4 layers"):
        load_recipe(p)
