"""Tests for upstreams/hubert.py: torchaudio parity, padding, lengths, export/load, registry."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torchaudio

from harness.errors import ConfigError, HarnessError
from harness.registry import UPSTREAMS
from upstreams import hubert_frontend, hubert_modules
from upstreams.base import HiddenStates, export_encoder, load_exported
from upstreams.hubert import (
    HubertConfig,
    HubertEncoder,
    HubertUpstream,
    build_random_encoder,
)
from upstreams.hubert_sources import from_torchaudio_state_dict

TOL = 1e-4
TINY = HubertConfig.tiny()
TINY_PRE_LN = replace(TINY, extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True)
BASE_CNN = replace(TINY, conv_channels=(512,) * 7)  # Base-sized CNN (group norm), small transformer


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- torchaudio parity


def test_parity_with_torchaudio_hubert_base():
    torch.manual_seed(0)
    ta = torchaudio.models.hubert_base().eval()
    # Norm weights/biases and linear biases start at 1/0: perturb them so a swapped mapping shows.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ta.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    ours = HubertEncoder(HubertConfig.base()).eval()
    missing, unexpected = ours.load_state_dict(from_torchaudio_state_dict(ta.state_dict()), strict=False)
    assert missing == ["mask_emb"] and unexpected == []

    x = 0.1 * _randn(1, 32000, seed=2)  # 2 s
    with torch.no_grad():
        ta_layers, _ = ta.extract_features(x)
        ta_out, _ = ta(x)
        ta_feats, _ = ta.feature_extractor(x, None)
        # torchaudio's Transformer: x + pos_conv(x), LN (post-LN Base), dropout -> first layer.
        ta_state0 = ta.encoder.transformer._preprocess(ta.encoder._preprocess(ta_feats)[0])
        out = ours(x)
    hs = out.hidden_states
    assert len(hs) == 13 and hs[0].shape == (1, 99, 768) and out.lengths.tolist() == [99]
    assert (out.features - ta_feats).abs().max().item() <= TOL
    assert (hs[0] - ta_state0).abs().max().item() <= TOL
    for i, (a, b) in enumerate(zip(hs[1:], ta_layers)):
        assert (a - b).abs().max().item() <= TOL, f"layer {i + 1}"
    assert (hs[-1] - ta_out).abs().max().item() <= TOL
    # The states really differ from one another (the comparison is not vacuous).
    assert (hs[1] - hs[2]).abs().max().item() > 0.1


@pytest.mark.parametrize("channels,groups,kernel,bias", [(128, 16, 128, True), (64, 4, 9, False), (48, 8, 8, True)])
def test_grouped_conv_fft_equals_conv1d_forward_and_backward(channels, groups, kernel, bias):
    x = _randn(3, channels, 41).requires_grad_()
    w = _randn(channels, channels // groups, kernel, seed=1).requires_grad_()
    b = _randn(channels, seed=2).requires_grad_() if bias else None
    direct = torch.nn.functional.conv1d(x, w, b, padding=kernel // 2, groups=groups)
    fft = hubert_modules.grouped_conv_fft(x, w, b, kernel // 2)
    assert fft.shape == direct.shape
    assert (fft - direct).abs().max() <= 1e-5 * direct.abs().max()  # fp32 rounding, relative
    g = _randn(*direct.shape, seed=3)
    grads = [torch.autograd.grad((y * g).sum(), [x, w] + ([b] if bias else [])) for y in (direct, fft)]
    for gd, gf in zip(*grads):
        assert (gf - gd).abs().max() <= 1e-5 * gd.abs().max()


def test_fast_fft_length_is_the_next_5_smooth_number():
    def smooth(m):
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 1500):
        got = hubert_modules.fast_fft_length(n)
        assert got >= n and smooth(got) and not any(smooth(m) for m in range(n, got))


def test_positional_conv_takes_the_fft_only_with_few_channels_per_group():
    """The CPU positional conv goes through the FFT at <= FFT_MAX_GROUP_CHANNELS channels per group
    and gives the direct conv's output; with more it is the plain conv."""
    calls = []
    real = hubert_modules.grouped_conv_fft

    def spy(*args):
        calls.append(args[1].shape[1])
        return real(*args)

    x = _randn(2, 30, 128)
    for groups in (16, 2):  # 8 and 64 channels per group
        m = hubert_modules.ConvPositionalEmbedding(128, 16, groups, 0.0)
        with torch.no_grad():
            direct = torch.nn.functional.gelu(m.conv(x.transpose(1, 2))[..., :-1]).transpose(1, 2)
            hubert_modules.grouped_conv_fft = spy
            try:
                got = m(x)
            finally:
                hubert_modules.grouped_conv_fft = real
        assert torch.allclose(got, direct, atol=1e-5)
    assert calls == [8]


@pytest.mark.parametrize("frames", [40, 300])  # explicit attention below the frame bound, SDPA above
def test_attention_in_bf16_on_cpu_matches_sdpa_with_padding(frames):
    att = hubert_modules.SelfAttention(64, 4, 0.0).eval()
    x = _randn(2, frames, 64)
    mask = torch.ones(2, 1, 1, frames, dtype=torch.bool)
    mask[1, ..., frames // 2:] = False
    with torch.no_grad():
        ref = att(x, mask)  # fp32: SDPA
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = att(x, mask)
        q, k, v = (p(x).view(2, frames, 4, 16).transpose(1, 2) for p in (att.q_proj, att.k_proj, att.v_proj))
        explicit = att.out_proj(hubert_modules.explicit_attention(q, k, v, mask, 0.0).transpose(1, 2).reshape(2, frames, 64))
    assert torch.allclose(explicit, ref, atol=1e-5)
    assert (got.float() - ref).abs().max() < 0.05  # bf16 rounding


def _cnn_channel_major(cnn, wavs, lengths):
    """The CNN as plain channel-major conv1d's (the formulation ConvBlock replaces), (B, T, C)."""
    x = wavs.unsqueeze(1)
    for blk in cnn.conv_layers:
        x = blk.conv(x)
        lengths = hubert_frontend.conv_out_lengths(lengths, [blk.kernel], [blk.stride])
        if blk.norm_kind == "group":
            x = blk.norm(x, lengths)
        elif blk.norm_kind == "layer":
            x = blk.norm(x.transpose(1, 2)).transpose(1, 2)
        x = torch.nn.functional.gelu(x)
    return x.transpose(1, 2)


@pytest.mark.parametrize("mode,bias", [("group_norm", False), ("layer_norm", True)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_time_major_cnn_equals_channel_major_conv1d(mode, bias, dtype):
    """ConvBlock's time-major computation (first conv as a matmul, channels-last convs, the
    blocked transposing copy) gives the channel-major conv1d stack's frames and gradients, in fp32
    and under bf16 autocast, on a padded batch whose first layer spans several TIME_BLOCKs."""
    torch.manual_seed(0)
    cnn = hubert_frontend.ConvFeatureExtractor((16, 24, 24), (10, 3, 2), (5, 2, 2), bias, mode)
    wavs = _randn(2, 8000)
    lengths = torch.tensor([8000, 5000])
    wavs[1, 5000:] = 0.0
    assert hubert_frontend.conv_out_lengths(lengths[:1], [10], [5]).item() > 4 * hubert_frontend.TIME_BLOCK
    g = _randn(2, 399, 24, seed=1)
    outs, grads = [], []
    for fn in (lambda: cnn(wavs, lengths)[0], lambda: _cnn_channel_major(cnn, wavs, lengths)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            y = fn()
        assert y.shape == (2, 399, 24) and y.dtype == dtype
        outs.append(y.float())
        grads.append(torch.autograd.grad((y.float() * g).sum(), list(cnn.parameters())))
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # bf16: one rounding step of the largest value
    assert (outs[0] - outs[1]).abs().max() <= tol * outs[1].abs().max()
    for (name, _), a, b in zip(cnn.named_parameters(), *grads):
        assert (a - b).abs().max() <= tol * b.abs().max(), name
    assert outs[1].abs().max() > 0.1  # not vacuous


def test_channel_major_copy_is_the_transpose():
    x = _randn(3, 1000, 7)
    got = hubert_frontend.channel_major(x, torch.bfloat16)
    assert got.is_contiguous() and got.dtype == torch.bfloat16
    assert torch.equal(got, x.transpose(1, 2).to(torch.bfloat16))


def test_torchaudio_mapping_names_and_unknown_key():
    sd = {
        "wav2vec2.encoder.transformer.pos_conv_embed.conv.weight_g": torch.zeros(1),
        "encoder.transformer.pos_conv_embed.conv.weight_v": torch.zeros(1),
        "encoder.transformer.layers.3.feed_forward.output_dense.bias": torch.zeros(1),
        "mask_generator.mask_embedding": torch.zeros(1),
        "aux.weight": torch.zeros(1),
    }
    assert sorted(from_torchaudio_state_dict(sd)) == [
        "encoder.layers.3.fc2.bias",
        "encoder.pos_conv.conv.parametrizations.weight.original0",
        "encoder.pos_conv.conv.parametrizations.weight.original1",
        "mask_emb",
    ]
    with pytest.raises(HarnessError, match="encoder.foo"):
        from_torchaudio_state_dict({"encoder.foo": torch.zeros(1)})


# ----------------------------------------------------------------------------- padding


def _padded_vs_alone(enc, lens, seed=0, grad=False):
    """Largest difference between items of a padded batch and the items run alone. grad=True
    runs with autograd on: the first conv block then takes its training path (MaskedGroupNorm)
    instead of the folded one of inference."""
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # biases and norms start at 0/1: make padded frames non-trivial
        for p in enc.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    wavs = _randn(len(lens), max(lens), seed=seed)
    for i, n in enumerate(lens):
        wavs[i, n:] = 3.0  # samples past the length must be ignored
    worst = 0.0
    with torch.set_grad_enabled(grad):
        batch = enc(wavs, torch.tensor(lens))
        for i, n in enumerate(lens):
            alone = enc(wavs[i : i + 1, :n])
            t = int(alone.lengths[0])
            assert int(batch.lengths[i]) == t
            assert len(batch.hidden_states) == len(alone.hidden_states)
            for a, b in zip(batch.hidden_states, alone.hidden_states):
                worst = max(worst, (a[i, :t] - b[0]).abs().max().item())
                assert (a[i, t:] == 0).all()
    return worst


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "autograd"])
@pytest.mark.parametrize("config", [TINY, TINY_PRE_LN, BASE_CNN], ids=["tiny", "tiny_ln_preln", "base_cnn"])
def test_padded_batch_equals_items_alone(config, grad):
    enc = build_random_encoder(config).eval()
    assert _padded_vs_alone(enc, [16000, 9000, 250, 12345], grad=grad) <= TOL


def test_padding_check_fails_without_masked_group_norm(monkeypatch):
    """Negative control: plain GroupNorm statistics over padding break per-item equality."""
    enc = build_random_encoder(TINY).eval()
    monkeypatch.setattr(hubert_frontend.MaskedGroupNorm, "forward",
                        lambda self, x, lengths=None: torch.nn.GroupNorm.forward(self, x))
    assert _padded_vs_alone(enc, [16000, 6000], grad=True) > 1e-2


def test_padding_check_fails_when_the_folded_norm_counts_padding(monkeypatch):
    """Negative control of the inference path: statistics over every frame, padding included."""
    enc = build_random_encoder(TINY).eval()
    folded = hubert_frontend.ConvBlock._group_norm_folded
    monkeypatch.setattr(hubert_frontend.ConvBlock, "_group_norm_folded",
                        lambda self, f, w, lengths: folded(self, f, w, torch.full_like(lengths, f.shape[1])))
    assert _padded_vs_alone(enc, [16000, 6000]) > 1e-2


@pytest.mark.parametrize("norm_affine", [False, True], ids=["init", "trained"])
def test_folded_first_block_equals_conv_group_norm_gelu(norm_affine):
    """The inference path of the first conv block (statistics from the frames' covariance, one
    product) against conv -> MaskedGroupNorm -> GELU with autograd on: float32 to 1e-5; under
    bfloat16 autocast with bf16 weights (what --extract-dtype bfloat16 runs) to bf16 rounding."""
    torch.manual_seed(0)
    block = hubert_frontend.ConvBlock(1, 64, 10, 5, False, "group")
    if norm_affine:
        with torch.no_grad():
            block.norm.weight.uniform_(0.5, 1.5)
            block.norm.bias.uniform_(-0.2, 0.2)
    wavs = (torch.randn(3, 16000) * 0.1 + 0.05).unsqueeze(-1)  # a DC offset: centring matters
    lens = torch.tensor([16000, 9000, 300])
    ref, ref_len = block(wavs, lens)
    ref = ref.detach()
    with torch.no_grad():
        got, got_len = block(wavs, lens)
        assert torch.equal(got_len, ref_len) and got.dtype == torch.float32
        assert (got - ref).abs().max() < 1e-5
        block.conv.to(torch.bfloat16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, _ = block(wavs, lens)
    assert low.dtype == torch.bfloat16
    assert float((low.float() - ref).norm() / ref.norm()) < 1e-2
    for i, n in enumerate(ref_len.tolist()):
        assert (got[i, n:] == 0).all() and (low[i, n:] == 0).all()


# ----------------------------------------------------------------------------- lengths


def test_num_frames_conv_by_conv():
    enc = build_random_encoder(TINY)
    n = torch.tensor([16000, 32000, 400, 399, 100, 1, 0, 720, 719])
    assert enc.num_frames(n).tolist() == [49, 99, 1, 1, 1, 1, 0, 2, 1]
    for s in [400, 401, 719, 720, 1040, 16000, 16321]:  # the real output has that many frames
        with torch.no_grad():
            out = enc.eval()(_randn(1, s))
        assert out.hidden_states[0].shape[1] == int(enc.num_frames(torch.tensor([s]))[0]) == int(out.lengths[0])


def test_short_input_gives_one_frame():
    up = HubertUpstream(build_random_encoder(TINY), "t")
    with torch.no_grad():
        hs = up(_randn(1, 100), torch.tensor([100]))
        batch = up(torch.cat([_randn(1, 100), torch.zeros(1, 0)], 1).repeat(2, 1), torch.tensor([100, 50]))
    assert isinstance(hs, HiddenStates)
    assert hs.lengths.tolist() == [1] and all(t.shape == (1, 1, 128) for t in hs.layers)
    assert batch.lengths.tolist() == [1, 1]
    assert torch.isfinite(hs.layers[-1]).all()
    with pytest.raises(HarnessError):
        up(torch.zeros(1, 10), torch.tensor([0]))


# ----------------------------------------------------------------------------- upstream, registry, export


def test_upstream_spec_and_layers():
    up = UPSTREAMS.get("random:hubert_tiny")()
    s = up.spec
    assert (s.family, s.sample_rate, s.num_layers, s.hidden_size, s.frame_rate_hz, s.stride) == (
        "hubert", 16000, 5, 128, 50.0, 320)
    assert not up.training
    with torch.no_grad():
        hs = up(_randn(2, 16000), torch.tensor([16000, 8000]))
    assert len(hs.layers) == 5 and hs.layers[0].shape == (2, 49, 128) and hs.lengths.tolist() == [49, 24]


def test_base_preset_is_published_base():
    c = HubertConfig.base()
    assert c.conv_channels == (512,) * 7 and c.conv_kernels == (10, 3, 3, 3, 3, 2, 2)
    assert c.conv_strides == (5, 2, 2, 2, 2, 2, 2) and not c.conv_bias and c.extractor_mode == "group_norm"
    assert (c.encoder_dim, c.encoder_layers, c.encoder_heads, c.encoder_ffn_dim) == (768, 12, 12, 3072)
    assert not c.layer_norm_first and (c.pos_conv_kernel, c.pos_conv_groups) == (128, 16)
    assert c.receptive_field == 400 and c.stride == 320


def test_weights_hash_stable_and_seeded():
    a, b = UPSTREAMS.get("random:hubert_tiny")(), UPSTREAMS.get("random:hubert_tiny")()
    assert a.weights_hash() == b.weights_hash()
    other = HubertUpstream(build_random_encoder(TINY, seed=1), "random:hubert_tiny", a.spec.source)
    assert other.weights_hash() != a.weights_hash()


def test_init_follows_pretrain_md():
    enc = build_random_encoder(TINY)
    w = enc.encoder.layers[0].fc1.weight
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert (enc.post_extract_proj.bias == 0).all() and (enc.encoder.layers[1].self_attn.q_proj.bias == 0).all()
    assert enc.mask_emb.min() >= 0 and enc.mask_emb.max() < 1 and enc.mask_emb.std() > 0.2


def test_export_load_round_trip(tmp_path):
    enc = build_random_encoder(TINY_PRE_LN, seed=3)
    up = HubertUpstream(enc, "mine")
    folder = export_encoder(enc, "hubert", tmp_path / "ckpt", "mine")
    assert (folder / "upstream.safetensors").is_file() and (folder / "upstream.json").is_file()
    loaded = load_exported(folder)
    assert loaded.config == TINY_PRE_LN and loaded.spec.name == "mine" and not loaded.training
    sd_a, sd_b = up.state_dict(), loaded.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    wavs, lens = _randn(2, 8000), torch.tensor([8000, 5000])
    with torch.no_grad():
        a, b = up(wavs, lens), loaded(wavs, lens)
    for x, y in zip(a.layers, b.layers):
        assert torch.equal(x, y)


def test_load_bad_folder_names_the_file(tmp_path):
    with pytest.raises(HarnessError, match="upstream.json"):
        load_exported(tmp_path)
    folder = export_encoder(build_random_encoder(TINY), "hubert", tmp_path / "a", "a")
    (folder / "upstream.safetensors").unlink()
    with pytest.raises(HarnessError, match="upstream.safetensors"):
        load_exported(folder)
    # Weights of one size, config of another.
    folder = export_encoder(build_random_encoder(TINY), "hubert", tmp_path / "b", "b")
    meta = json.loads((folder / "upstream.json").read_text())
    meta["config"]["encoder_ffn_dim"] = 256
    (folder / "upstream.json").write_text(json.dumps(meta))
    with pytest.raises(HarnessError, match=r"upstream.safetensors.*fc1"):
        load_exported(folder)
    meta["config"]["bogus"] = 1
    (folder / "upstream.json").write_text(json.dumps(meta))
    with pytest.raises(HarnessError, match=r"upstream.json.*bogus"):
        load_exported(folder)
    (folder / "upstream.json").write_text("{not json")
    with pytest.raises(HarnessError, match="upstream.json"):
        load_exported(folder)


def test_export_written_before_the_family_seam_still_loads(tmp_path):
    """Exports made before model families were plugins: the same two files, written by the old
    `upstreams.hubert.export` (format_version 1, family "hubert", the HubertConfig dict)."""
    from safetensors.torch import save_file

    enc = build_random_encoder(TINY, seed=4)
    folder = tmp_path / "old"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(folder / "upstream.safetensors"),
              metadata={"format": "pt"})
    old_meta = {"config": TINY.to_dict(), "family": "hubert", "format_version": 1, "name": "hubert_tiny-it1"}
    (folder / "upstream.json").write_text(json.dumps(old_meta, indent=2, sort_keys=True) + "\n")
    up = load_exported(folder)
    assert isinstance(up, HubertUpstream) and up.spec.name == "hubert_tiny-it1" and up.config == TINY
    wavs = _randn(1, 8000)
    with torch.no_grad():
        assert torch.equal(up(wavs, torch.tensor([8000])).layers[-1], enc.eval()(wavs).hidden_states[-1])


def test_unknown_family_in_export_names_it(tmp_path):
    folder = export_encoder(build_random_encoder(TINY), "hubert", tmp_path / "a", "a")
    meta = json.loads((folder / "upstream.json").read_text())
    meta["family"] = "hubret"
    (folder / "upstream.json").write_text(json.dumps(meta))
    with pytest.raises(HarnessError, match=r"upstream.json.*hubret.*Did you mean: hubert"):
        load_exported(folder)


def test_config_dict_round_trip():
    d = TINY_PRE_LN.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert HubertConfig.from_dict(d) == TINY_PRE_LN
    with pytest.raises(ConfigError, match="nope"):
        HubertConfig.from_dict({**d, "nope": 1})
    with pytest.raises(ConfigError):
        HubertConfig(extractor_mode="batch_norm")


# ----------------------------------------------------------------------------- pre-training hooks


def test_mask_embedding_replaces_masked_frames():
    enc = build_random_encoder(TINY).eval()
    seen = {}
    enc.encoder.register_forward_pre_hook(lambda m, args: seen.update(x=args[0].detach()))
    wavs = _randn(2, 16000)
    mask = torch.zeros(2, 49, dtype=torch.bool)
    mask[0, 5:15] = True
    mask[1, 30:40] = True
    out = enc(wavs, mask=mask)
    x = seen["x"]
    assert torch.equal(x[mask], enc.mask_emb.detach().expand(20, -1))
    assert not torch.isclose(x[~mask], enc.mask_emb.detach()).all(-1).any()
    out.hidden_states[-1].pow(2).sum().backward()
    assert enc.mask_emb.grad is not None and enc.mask_emb.grad.abs().sum() > 0


def test_feature_grad_mult_scales_cnn_gradients():
    grads = {}
    for mult in (1.0, 0.1):
        enc = build_random_encoder(replace(TINY, feature_grad_mult=mult)).eval()
        out = enc(_randn(1, 8000))
        (out.hidden_states[-1].pow(2).sum() + out.features.pow(2).mean()).backward()
        grads[mult] = enc.feature_extractor.conv_layers[3].conv.weight.grad.clone()
    torch.testing.assert_close(grads[0.1], 0.1 * grads[1.0], rtol=1e-4, atol=1e-8)
    enc = build_random_encoder(replace(TINY, feature_grad_mult=0.0)).eval()
    enc(_randn(1, 8000)).hidden_states[-1].sum().backward()
    assert enc.feature_extractor.conv_layers[0].conv.weight.grad is None


# ----------------------------------------------------------------------------- log-Mel front end

SMALL = HubertConfig.small()


def test_fbank_front_end_matches_torchaudio_melspectrogram():
    """The log-Mel frames are torchaudio's MelSpectrogram (25 ms Hamming, 10 ms hop, HTK, 40
    bins), two consecutive 10 ms frames per 20 ms frame, the missing half of the last one zero."""
    fe = hubert_frontend.FbankFrontEnd(40, 2)
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=400, win_length=400, hop_length=160, f_min=20.0, f_max=8000.0, n_mels=40,
        window_fn=lambda n: torch.hamming_window(n, periodic=False), center=False, power=2.0, norm=None,
        mel_scale="htk")
    for n in (400, 719, 720, 16000, 16321):
        wav = _randn(1, n, seed=n)
        feats, lengths = fe(wav, torch.tensor([n]))
        want = ref(wav)[0].clamp_min(1e-10).log().T  # (T10, 40)
        t = int(lengths[0])
        assert t == int(SMALL.num_frames(torch.tensor([n]))[0]) == feats.shape[1]
        flat = feats[0].reshape(2 * t, 40)
        m = min(2 * t, want.shape[0])
        assert torch.allclose(flat[:m], want[:m], atol=1e-4)
        assert (flat[m:] == 0).all() and want.shape[0] - m == 0


def test_fbank_encoder_pads_lengths_and_has_no_front_end_weights():
    enc = build_random_encoder(SMALL).eval()
    assert _padded_vs_alone(enc, [16000, 9000, 250, 12345]) <= TOL
    assert not any(name.startswith("feature_extractor.") for name in enc.state_dict())
    assert enc.post_extract_proj.in_features == 80


def test_fbank_front_end_needs_the_20ms_geometry():
    with pytest.raises(ConfigError, match="frontend 'fbank' needs"):
        HubertConfig.tiny().at_frame_ms(40).__class__(**{**HubertConfig.tiny().at_frame_ms(40).to_dict(),
                                                         "frontend": "fbank"})
    with pytest.raises(ConfigError, match="frontend must be"):
        replace(SMALL, frontend="mel")


@pytest.mark.parametrize("fmt", ["s3prl", "hf"])
def test_fbank_front_end_is_refused_by_the_waveform_exports(fmt, tmp_path):
    from harness.export import export

    with pytest.raises(HarnessError, match="'fbank' front end has no counterpart"):
        export("random:hubert_small", fmt, tmp_path / "out")
