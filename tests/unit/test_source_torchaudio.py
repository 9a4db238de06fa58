"""Tests for upstreams/source_torchaudio.py: `torchaudio:PRESET:FILE` equals torchaudio's own
factory model layer by layer; bad specs, presets and files fail clearly."""

from __future__ import annotations

import pytest
import torch
import torchaudio

from harness.errors import HarnessError
from harness.evaluate import build_upstream
from upstreams.hubert import HubertUpstream
from upstreams.wavlm import WavlmUpstream

TOL = 1e-4


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def perturb(module, seed=1):
    """Norms, biases and WavLM's gate constants start at 0/1: perturb them so that a swapped or
    ignored mapping shows."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if p.ndim == 1 or name.endswith("gru_rel_pos_const"):
            p.add_(0.1 * torch.randn(p.shape, generator=g))


@torch.no_grad()
def assert_same_states(upstream, ta, x):
    """upstream's L+1 states on the unpadded batch x (B, S) equal torchaudio model ta's: state 0 =
    the first layer's input, states 1..L-1 = the layer outputs, L = the encoder output (after the
    final LN for pre-LN). Unpadded: torchaudio's WavLM rejects `lengths` (pytorch/audio#3700)."""
    lens = torch.full((x.shape[0],), x.shape[1])
    ours = upstream(x, lens).layers
    ta_layers, _ = ta.extract_features(x)
    ta_out, _ = ta(x)
    ta_feats, _ = ta.feature_extractor(x, None)
    ref = [ta.encoder.transformer._preprocess(ta.encoder._preprocess(ta_feats)[0])] + ta_layers[:-1] + [ta_out]
    assert len(ours) == len(ref)
    for i, (a, b) in enumerate(zip(ours, ref)):
        assert a.shape == b.shape and (a - b).abs().max().item() <= TOL, f"state {i}"
    assert (ours[1] - ours[2]).abs().max().item() > 0.1  # the comparison is not vacuous


@pytest.mark.parametrize("preset,cls", [("hubert_base", HubertUpstream), ("wavlm_base", WavlmUpstream)])
def test_factory_state_dict_equals_torchaudio(tmp_path, preset, cls):
    torch.manual_seed(0)
    ta = getattr(torchaudio.models, preset)().eval()
    perturb(ta)
    path = tmp_path / f"{preset}.pt"
    torch.save(ta.state_dict(), path)
    up = build_upstream(f"torchaudio:{preset}:{path}")
    assert isinstance(up, cls) and up.spec.name.split("@")[0] == f"torchaudio:{preset}:{preset}"
    assert up.spec.num_layers == 13 and up.spec.hidden_size == 768 and up.spec.frame_rate_hz == 50
    assert_same_states(up, ta, 0.1 * randn(1, 16000, seed=2))


def test_large_preset_architecture_is_read_from_the_factory():
    from upstreams.source_torchaudio import factory_config

    fam, c = factory_config("wav2vec2_large_lv60k")
    assert fam.name == "hubert" and (c.encoder_layers, c.encoder_dim, c.encoder_heads, c.encoder_ffn_dim) == (
        24, 1024, 16, 4096)
    assert c.extractor_mode == "layer_norm" and c.conv_bias and c.layer_norm_first
    assert factory_config("hubert_pretrain_base")[1] == factory_config("hubert_base")[1]  # wrapper unwrapped
    fam, c = factory_config("wavlm_large")
    assert fam.name == "wavlm" and c.layer_norm_first and not c.conv_bias and (c.num_buckets, c.max_distance) == (
        320, 800)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(HarnessError, match="PRESET:FILE"):
        build_upstream("torchaudio:hubert_base")
    with pytest.raises(HarnessError, match="not found"):
        build_upstream(f"torchaudio:hubert_base:{tmp_path / 'missing.pt'}")
    path = tmp_path / "sd.pt"
    torch.save({"encoder.nonsense.weight": torch.zeros(2)}, path)
    with pytest.raises(HarnessError, match="no model factory 'hubert_nope'"):
        build_upstream(f"torchaudio:hubert_nope:{path}")
    with pytest.raises(HarnessError, match="wav2vec2_\\*, hubert_\\* or wavlm_\\*"):
        build_upstream(f"torchaudio:conformer:{path}")
    with pytest.raises(HarnessError, match="encoder.nonsense.weight"):
        build_upstream(f"torchaudio:hubert_base:{path}")
