"""Tests for upstreams/wavlm.py: torchaudio and Hugging Face parity, the bucket function, padding,
presets, export/load and registration."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
import torchaudio
import transformers

from harness.errors import ConfigError, HarnessError
from harness.registry import UPSTREAMS, load_all
from upstreams.base import export_encoder, get_family, load_exported
from upstreams.hubert import HubertConfig
from upstreams.wavlm import (
    WAVLM,
    WavlmConfig,
    WavlmEncoder,
    WavlmUpstream,
    from_torchaudio_state_dict,
    relative_position_bucket,
)

TOL = 1e-4
KERNELS, STRIDES = (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)
# Small networks for parity: published kernels/strides and buckets, 64 channels, 3 x 64, 4 heads.
SMALL = WavlmConfig(conv_channels=(64,) * 7, encoder_dim=64, encoder_layers=3, encoder_heads=4,
                    encoder_ffn_dim=128, dropout=0.0, attention_dropout=0.0, dropout_input=0.0, layerdrop=0.0)
SMALL_PRE_LN = replace(SMALL, extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True)
TINY_PRE_LN = replace(WavlmConfig.tiny(), extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True)
WAV_4S = 72000  # 4.5 s -> 224 frames: distances up to 223 reach the logarithmic buckets (>= 80)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def _perturb(module, seed=1):
    """Norms, biases and the gate constants start at 0/1: perturb them so a swapped or ignored
    mapping shows."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if p.ndim == 1 or name.endswith(("gru_rel_pos_const", "grep_a")):
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def _max_diff(a, b):
    return (a - b).abs().max().item()


def _assert_states(ours, ref_inner, ref_out):
    """ours: L+1 states; ref_inner: reference states 0..L-1; ref_out: the encoder output."""
    assert len(ours) == len(ref_inner) + 1
    for i, (a, b) in enumerate(zip(ours, ref_inner)):
        assert a.shape == b.shape and _max_diff(a, b) <= TOL, f"state {i}: {_max_diff(a, b)}"
    assert _max_diff(ours[-1], ref_out) <= TOL, f"output: {_max_diff(ours[-1], ref_out)}"
    assert _max_diff(ours[1], ours[2]) > 0.1 and _max_diff(ours[0], ours[-1]) > 0.1  # not vacuous


# ----------------------------------------------------------------------------- torchaudio parity


def _torchaudio_wavlm(c: WavlmConfig):
    return torchaudio.models.wavlm_model(
        extractor_mode=c.extractor_mode, extractor_conv_layer_config=list(zip(c.conv_channels, KERNELS, STRIDES)),
        extractor_conv_bias=c.conv_bias, encoder_embed_dim=c.encoder_dim, encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=c.pos_conv_kernel, encoder_pos_conv_groups=c.pos_conv_groups,
        encoder_num_layers=c.encoder_layers, encoder_num_heads=c.encoder_heads, encoder_num_buckets=c.num_buckets,
        encoder_max_distance=c.max_distance, encoder_attention_dropout=0.0,
        encoder_ff_interm_features=c.encoder_ffn_dim,
        encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=c.layer_norm_first,
        encoder_layer_drop=0.0, aux_num_out=None,
    ).eval()


@pytest.mark.parametrize("config", [SMALL, SMALL_PRE_LN], ids=["post_ln", "pre_ln"])
def test_parity_with_torchaudio(config):
    torch.manual_seed(0)
    ta = _torchaudio_wavlm(config)
    _perturb(ta)
    ours = WavlmEncoder(config).eval()
    missing, unexpected = ours.load_state_dict(from_torchaudio_state_dict(ta.state_dict()), strict=False)
    assert missing == ["mask_emb"] and unexpected == []
    x = 0.1 * _randn(1, WAV_4S, seed=2)  # unpadded: torchaudio's WavLM rejects lengths (audio#3700)
    with torch.no_grad():
        ta_layers, _ = ta.extract_features(x)
        ta_out, _ = ta(x)
        ta_feats, _ = ta.feature_extractor(x, None)
        ta_state0 = ta.encoder.transformer._preprocess(ta.encoder._preprocess(ta_feats)[0])
        hs = ours(x).hidden_states
        assert hs[0].shape == (1, 224, 64)
        _assert_states(hs, [ta_state0] + ta_layers[:-1], ta_out)
        # Negative control: without the relative position bias the layers no longer match.
        ours.encoder.layers[0].self_attn.relative_attention_bias.weight.zero_()
        assert _max_diff(ours(x).hidden_states[1], ta_layers[0]) > 1e-2


def test_torchaudio_mapping_splits_in_proj_and_names_unknown_keys():
    w, b = torch.arange(12.0).view(6, 2), torch.arange(6.0)
    out = from_torchaudio_state_dict({
        "encoder.transformer.layers.2.attention.attention.in_proj_weight": w,
        "wav2vec2.encoder.transformer.layers.2.attention.attention.in_proj_bias": b,
        "encoder.transformer.layers.0.attention.rel_attn_embed.weight": torch.zeros(1),
        "encoder.transformer.layers.2.attention.gru_rel_pos_const": torch.zeros(1),
        "encoder.transformer.layers.2.feed_forward.output_dense.bias": torch.zeros(1),
    })
    p = "encoder.layers.2.self_attn."
    assert torch.equal(out[p + "q_proj.weight"], w[:2]) and torch.equal(out[p + "v_proj.weight"], w[4:])
    assert torch.equal(out[p + "k_proj.bias"], b[2:4])
    assert {"encoder.layers.0.self_attn.relative_attention_bias.weight", p + "grep_a",
            "encoder.layers.2.fc2.bias"} < set(out)
    for bad in ("encoder.transformer.layers.0.attention.foo", "encoder.bar"):
        with pytest.raises(HarnessError, match=bad):
            from_torchaudio_state_dict({bad: torch.zeros(1)})


# ----------------------------------------------------------------------------- Hugging Face parity


@pytest.mark.parametrize("config", [SMALL, SMALL_PRE_LN], ids=["post_ln", "pre_ln"])
def test_parity_with_hugging_face(config):
    c = config
    hf_cfg = transformers.WavLMConfig(
        hidden_size=c.encoder_dim, num_hidden_layers=c.encoder_layers, num_attention_heads=c.encoder_heads,
        intermediate_size=c.encoder_ffn_dim, conv_dim=c.conv_channels, conv_kernel=KERNELS, conv_stride=STRIDES,
        conv_bias=c.conv_bias, feat_extract_norm="layer" if c.extractor_mode == "layer_norm" else "group",
        do_stable_layer_norm=c.layer_norm_first, num_conv_pos_embeddings=c.pos_conv_kernel,
        num_conv_pos_embedding_groups=c.pos_conv_groups, num_buckets=c.num_buckets,
        max_bucket_distance=c.max_distance, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        feat_proj_dropout=0.0, layerdrop=0.0)
    torch.manual_seed(0)
    hf = transformers.WavLMModel(hf_cfg).eval()
    _perturb(hf)
    with torch.no_grad():  # HF draws the table and gate N(0, 0.02): too small for a wrong gate to show
        for name, p in hf.named_parameters():
            if name.endswith(("rel_attn_embed.weight", "gru_rel_pos_linear.weight")):
                p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    ours = WavlmEncoder(c).eval()
    ours.load_state_dict(WAVLM.sources["hf"].state_dict(hf.state_dict()))  # strict: every name maps
    x = 0.1 * _randn(1, WAV_4S, seed=3)
    with torch.no_grad():
        ref = hf(x, output_hidden_states=True)
        hs = ours(x).hidden_states
    # HF gives L+1 states; for pre-LN its last one may precede the final LN (transformers >= 5),
    # so the encoder output is compared with last_hidden_state.
    assert len(ref.hidden_states) == len(hs)
    _assert_states(hs, list(ref.hidden_states[:-1]), ref.last_hidden_state)


def test_hf_mapping_names_unknown_keys():
    from_hf = WAVLM.sources["hf"].state_dict
    assert set(from_hf({"wavlm.masked_spec_embed": torch.zeros(1)})) == {"mask_emb"}
    with pytest.raises(HarnessError, match="lm_head.weight"):
        from_hf({"lm_head.weight": torch.zeros(1)})


# ----------------------------------------------------------------------------- buckets


def test_relative_position_buckets():
    d = torch.arange(-3000, 3001)
    b = relative_position_bucket(d, 320, 800)
    assert b.min() >= 0 and b.max() < 320
    # Every bucket is used but 160 (distance 0 on the "key after query" side), as in the references.
    assert set(b.tolist()) == set(range(320)) - {160}
    small = d.abs() < 80
    assert torch.equal(b[small & (d <= 0)], -d[small & (d <= 0)])  # keys before (or at) the query
    assert torch.equal(b[small & (d > 0)], 160 + d[small & (d > 0)])  # keys after: upper half
    right, left = b[d >= 0][1:], b[d <= 0].flip(0)  # by increasing |d|
    assert (right.diff() >= 0).all() and (left.diff() >= 0).all()
    assert (b[d >= 800] == 319).all() and (b[d <= -800] == 159).all()
    assert (b[(d > 80) & (d < 700)] < 319).all()
    # The same buckets as torchaudio (a float32 log: borderline distances must agree too).
    ta_attn = torchaudio.models.wav2vec2.wavlm_attention.WavLMSelfAttention(8, 2, num_buckets=320, max_distance=800)
    assert torch.equal(b, ta_attn._relative_positions_bucket(d, bidirectional=True))


def test_config_validation_and_round_trip():
    d = replace(TINY_PRE_LN, num_buckets=64, max_distance=200).to_dict()
    assert json.loads(json.dumps(d)) == d and d["num_buckets"] == 64
    assert WavlmConfig.from_dict(d) == replace(TINY_PRE_LN, num_buckets=64, max_distance=200)
    with pytest.raises(ConfigError, match="nope"):
        WavlmConfig.from_dict({**d, "nope": 1})
    with pytest.raises(ConfigError, match="num_buckets"):
        WavlmConfig(num_buckets=321)
    with pytest.raises(ConfigError, match="max_distance"):
        WavlmConfig(max_distance=80)


# ----------------------------------------------------------------------------- padding


@pytest.mark.parametrize("config", [WavlmConfig.tiny(), TINY_PRE_LN], ids=["tiny", "tiny_ln_preln"])
def test_padded_batch_equals_items_alone(config):
    enc = WAVLM.random_encoder(config).eval()
    _perturb(enc)
    lens = [WAV_4S, 40000, 250, 52345]
    wavs = _randn(len(lens), max(lens), seed=4)
    for i, n in enumerate(lens):
        wavs[i, n:] = 3.0  # samples past the length must be ignored
    with torch.no_grad():
        batch = enc(wavs, torch.tensor(lens))
        hubert_rule = HubertConfig.tiny().num_frames(torch.tensor(lens)).tolist()
        assert batch.lengths.tolist() == hubert_rule == [224, 124, 1, 163]
        for i, n in enumerate(lens):
            alone = enc(wavs[i : i + 1, :n])
            t = int(alone.lengths[0])
            assert int(batch.lengths[i]) == t and len(batch.hidden_states) == len(alone.hidden_states) == 5
            for a, b in zip(batch.hidden_states, alone.hidden_states):
                assert _max_diff(a[i, :t], b[0]) <= TOL
                assert (a[i, t:] == 0).all()


def test_num_layers_gives_a_prefix_of_the_states():
    enc = WAVLM.random_encoder(WavlmConfig.tiny()).eval()
    x = _randn(2, 16000, seed=5)
    with torch.no_grad():
        full, two = enc(x).hidden_states, enc(x, num_layers=2).hidden_states
    assert len(two) == 3 and all(torch.equal(a, b) for a, b in zip(two, full))


# ----------------------------------------------------------------------------- presets, init, export, registry


def _mapped_torchaudio_matches(ta_factory, config):
    with torch.device("meta"):  # shapes only: no memory, no init
        ta, ours = ta_factory(), WavlmEncoder(config)
    sd, own = from_torchaudio_state_dict(ta.state_dict()), ours.state_dict()
    return set(own) - set(sd) == {"mask_emb"} and all(own[k].shape == v.shape for k, v in sd.items())


def test_presets_are_the_published_networks():
    b, p, l = WavlmConfig.base(), WavlmConfig.base_plus(), WavlmConfig.large()
    assert (b.encoder_dim, b.encoder_layers, b.encoder_heads, b.encoder_ffn_dim) == (768, 12, 12, 3072)
    assert b.extractor_mode == "group_norm" and not b.conv_bias and not b.layer_norm_first
    assert (l.encoder_dim, l.encoder_layers, l.encoder_heads, l.encoder_ffn_dim) == (1024, 24, 16, 4096)
    assert l.extractor_mode == "layer_norm" and not l.conv_bias and l.layer_norm_first
    for c in (b, p, l):
        assert (c.num_buckets, c.max_distance, c.pos_conv_kernel, c.pos_conv_groups) == (320, 800, 128, 16)
        assert c.conv_channels == (512,) * 7 and (c.conv_kernels, c.conv_strides) == (KERNELS, STRIDES)
    assert p == b
    assert _mapped_torchaudio_matches(torchaudio.models.wavlm_base, b)
    assert _mapped_torchaudio_matches(torchaudio.models.wavlm_large, l)


def test_init_follows_the_reference():
    enc = WAVLM.random_encoder(WavlmConfig.tiny())
    layers = enc.encoder.layers
    gate_w = torch.cat([layer.self_attn.grep_linear.weight.flatten() for layer in layers])
    assert abs(gate_w.std().item() - 0.02) < 0.004
    assert all((layer.self_attn.grep_linear.bias == 0).all() for layer in layers)
    assert all((layer.self_attn.grep_a == 1).all() for layer in layers)
    table = layers[0].self_attn.relative_attention_bias.weight
    assert table.shape == (320, 4) and abs(table.std().item() - 0.02) < 0.004
    assert all(layer.self_attn.relative_attention_bias is None for layer in layers[1:])  # one shared table


def test_export_load_round_trip(tmp_path):
    config = replace(TINY_PRE_LN, num_buckets=64, max_distance=200)
    enc = WAVLM.random_encoder(config, seed=3)
    _perturb(enc)
    up = WavlmUpstream(enc, "mine")
    folder = export_encoder(enc, "wavlm", tmp_path / "ckpt", "mine")
    assert json.loads((folder / "upstream.json").read_text())["family"] == "wavlm"
    loaded = load_exported(folder)
    assert isinstance(loaded, WavlmUpstream) and loaded.config == config and loaded.spec.family == "wavlm"
    wavs, lens = _randn(2, 8000), torch.tensor([8000, 5000])
    with torch.no_grad():
        a, b = up(wavs, lens), loaded(wavs, lens)
    assert all(torch.equal(x, y) for x, y in zip(a.layers, b.layers))


def test_registered():
    load_all()
    assert get_family("wavlm") is WAVLM
    for preset in ("tiny", "base", "base_plus", "large"):
        assert f"random:wavlm_{preset}" in UPSTREAMS
    up = UPSTREAMS.get("random:wavlm_tiny")()
    assert isinstance(up, WavlmUpstream) and not up.training
    assert (up.spec.family, up.spec.num_layers, up.spec.hidden_size, up.spec.frame_rate_hz) == ("wavlm", 5, 128, 50.0)


def test_training_step_reaches_the_bias_table_and_gates():
    enc = WAVLM.random_encoder(replace(WavlmConfig.tiny(), layerdrop=0.0)).train()
    mask = torch.zeros(2, 49, dtype=torch.bool)
    mask[:, 10:20] = True
    out = enc(_randn(2, 16000, seed=6), torch.tensor([16000, 12000]), mask=mask)
    out.hidden_states[-1].pow(2).sum().backward()
    attn = [layer.self_attn for layer in enc.encoder.layers]
    assert attn[0].relative_attention_bias.weight.grad.abs().sum() > 0
    assert all(a.grep_a.grad.abs().sum() > 0 and a.grep_linear.weight.grad.abs().sum() > 0 for a in attn)
