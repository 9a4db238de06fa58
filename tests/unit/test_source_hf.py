"""`hf:DIR` (upstreams/source_hf.py): tiny random transformers models saved into tmp_path give,
through build_upstream, transformers' own hidden states layer by layer; the padding contract; the
unknown-architecture error; the export of the project's families and its round trip."""

import json

import pytest
import torch
import transformers

from harness.errors import HarnessError
from harness.evaluate import build_upstream
from upstreams.hubert import HubertConfig, HubertUpstream
from upstreams.source_hf import export_hf
from upstreams.wavlm import WavlmConfig

TOL = 1e-4
CNN = dict(conv_dim=[16, 16, 16], conv_kernel=[10, 3, 3], conv_stride=[5, 2, 2], num_feat_extract_layers=3)
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             num_conv_pos_embedding_groups=4, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
             feat_proj_dropout=0.0, layerdrop=0.0)
CONFIGS = {
    "hubert_group": lambda: transformers.HubertConfig(**CNN, **SIZES, num_conv_pos_embeddings=16,
                                                      feat_extract_norm="group"),
    "hubert_large_layout": lambda: transformers.HubertConfig(**CNN, **SIZES, num_conv_pos_embeddings=16, conv_bias=True,
                                                             feat_extract_norm="layer", do_stable_layer_norm=True),
    "wavlm": lambda: transformers.WavLMConfig(**CNN, **SIZES, num_conv_pos_embeddings=16, num_buckets=32,
                                              max_bucket_distance=64),
    "wav2vec2_group": lambda: transformers.Wav2Vec2Config(**CNN, **SIZES, num_conv_pos_embeddings=16,
                                                          feat_extract_norm="group"),
    "wav2vec2_layer": lambda: transformers.Wav2Vec2Config(**CNN, **SIZES, num_conv_pos_embeddings=16,
                                                          feat_extract_norm="layer", do_stable_layer_norm=True),
    "data2vec_audio": lambda: transformers.Data2VecAudioConfig(**CNN, **SIZES, conv_pos_kernel_size=5,
                                                               num_conv_pos_embeddings=2),
}


def _save(tmp_path, key, normalize=None):
    """A random model of CONFIGS[key] with every weight moved off its init (LayerNorms at 1/0 and
    zero biases would hide a wrong mapping), saved into tmp_path/key; returns (folder, model)."""
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(CONFIGS[key]()).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    folder = tmp_path / key
    model.save_pretrained(folder)
    if normalize is not None:
        transformers.Wav2Vec2FeatureExtractor(do_normalize=normalize).save_pretrained(folder)
    return folder, model


def _wav(n, seed):
    return 0.5 * torch.randn(1, n, generator=torch.Generator().manual_seed(seed))


def _reference(model, wav):
    """transformers' L+1 states, the last one its last_hidden_state (after a pre-LN model's final LN)."""
    with torch.no_grad():
        out = model(wav, output_hidden_states=True)
    return list(out.hidden_states[:-1]) + [out.last_hidden_state]


@pytest.mark.parametrize("key", list(CONFIGS))
def test_hidden_states_equal_transformers(tmp_path, key):
    folder, model = _save(tmp_path, key)
    up = build_upstream(f"hf:{folder}")
    assert up.spec.name.split("@")[0] == f"hf:{key}" and up.spec.num_layers == 3 and up.spec.hidden_size == 32
    assert up.spec.frame_rate_hz == 16000 / 20
    # the project's families run HuBERT and WavLM, transformers the others
    assert isinstance(up, HubertUpstream) == key.startswith(("hubert", "wavlm"))
    wav = _wav(1234, seed=2)
    ref = _reference(model, wav)
    with torch.no_grad():
        hs = up(wav, torch.tensor([1234]))
    assert hs.lengths.tolist() == [int(up.num_frames(1234))] == [ref[0].shape[1]]
    assert len(hs.layers) == len(ref) == 3
    for i, (a, b) in enumerate(zip(hs.layers, ref)):
        assert a.shape == b.shape and (a - b).abs().max() < TOL, (key, i, (a - b).abs().max())
    assert (ref[-1] - ref[0]).abs().max() > 0.1  # the layers do something


@pytest.mark.parametrize("key", list(CONFIGS))
def test_padded_batch_gives_each_item_its_alone_output(tmp_path, key):
    folder, _ = _save(tmp_path, key)
    up = build_upstream(f"hf:{folder}")
    lens = [1500, 700, 25]  # the last is shorter than the CNN's receptive field (40 samples)
    wavs = torch.zeros(3, 1500)
    for i, n in enumerate(lens):
        wavs[i, :n] = _wav(n, seed=10 + i)[0]
    wavs[1, 700:] = 3.0  # garbage past a length must be ignored
    with torch.no_grad():
        batch = up(wavs, torch.tensor(lens))
        for i, n in enumerate(lens):
            alone = up(wavs[i : i + 1, :n], torch.tensor([n]))
            t = int(alone.lengths[0])
            assert int(batch.lengths[i]) == t >= 1
            for a, b in zip(batch.layers, alone.layers):
                assert (a[i, :t] - b[0]).abs().max() < TOL, (key, i)
                assert a[i, t:].abs().max() == 0 if a.shape[1] > t else True


def test_normalize_from_preprocessor_config(tmp_path):
    """do_normalize: the model sees the waveform at zero mean and unit variance, in both paths."""
    for key in ("hubert_group", "wav2vec2_group"):
        folder, model = _save(tmp_path, key, normalize=True)
        up = build_upstream(f"hf:{folder}")
        wav = 3.0 + _wav(1000, seed=4)
        ref = _reference(model, (wav - wav.mean()) / wav.std(unbiased=False))
        with torch.no_grad():
            hs = up(wav, torch.tensor([1000]))
        # the project family normalises with fairseq's eps (1e-5), transformers' extractor with 1e-7
        assert (hs.layers[-1] - ref[-1]).abs().max() < 1e-3, key


def test_unknown_architecture_names_it(tmp_path):
    folder = tmp_path / "sew"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "sew", "architectures": ["SEWModel"]}))
    with pytest.raises(HarnessError, match=r"SEWModel \(model_type 'sew'\) is not supported.*Wav2Vec2Model"):
        build_upstream(f"hf:{folder}")
    with pytest.raises(HarnessError, match="no config.json"):
        build_upstream(f"hf:{tmp_path / 'missing'}")


@pytest.mark.parametrize("key,field", [("hubert_group", "feat_proj_layer_norm=False"),
                                       ("wav2vec2_group", "add_adapter=True")])
def test_unsupported_config_field_is_named(tmp_path, key, field):
    cfg = CONFIGS[key]()
    name, value = field.split("=")
    setattr(cfg, name, value == "True")
    folder = tmp_path / "odd"
    transformers.AutoModel.from_config(cfg).save_pretrained(folder)
    with pytest.raises(HarnessError, match=field):
        build_upstream(f"hf:{folder}")


# ----------------------------------------------------------------------------- export

SMALL = dict(conv_channels=(16, 16, 16), conv_kernels=(10, 3, 3), conv_strides=(5, 2, 2), encoder_dim=32,
             encoder_layers=2, encoder_heads=4, encoder_ffn_dim=64, pos_conv_kernel=16, pos_conv_groups=4)
EXPORTS = {
    "hubert": lambda: HubertConfig(**SMALL),
    "hubert_pre_ln": lambda: HubertConfig(**SMALL, extractor_mode="layer_norm", layer_norm_first=True,
                                          conv_bias=True, normalize=True),
    "wavlm": lambda: WavlmConfig(**SMALL, num_buckets=32, max_distance=64),
}


@pytest.mark.parametrize("key", list(EXPORTS))
def test_export_loads_in_transformers_and_round_trips(tmp_path, key):
    from upstreams.base import get_family

    config = EXPORTS[key]()
    fam = get_family("wavlm" if key == "wavlm" else "hubert")
    encoder = fam.random_encoder(config, seed=3)
    with torch.no_grad():  # off the init: unit LayerNorms and zero biases would hide a wrong mapping
        g = torch.Generator().manual_seed(5)
        for p in encoder.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    ours = fam.upstream_cls(encoder, "mine")
    folder = export_hf(ours, tmp_path / key)

    model, info = transformers.AutoModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys
    wav = _wav(1400, seed=6)
    with torch.no_grad():
        expected = ours(wav, torch.tensor([1400])).layers
    x = (wav - wav.mean()) / torch.sqrt(wav.var(unbiased=False) + 1e-5) if config.normalize else wav
    for a, b in zip(expected, _reference(model.eval(), x)):
        assert a.shape == b.shape and (a - b).abs().max() < TOL

    back = build_upstream(f"hf:{folder}")
    assert type(back) is type(ours) and back.encoder.config == config
    with torch.no_grad():
        for a, b in zip(expected, back(wav, torch.tensor([1400])).layers):
            assert (a - b).abs().max() < TOL


def test_export_refuses_other_families(tmp_path):
    with pytest.raises(HarnessError, match="hubert and wavlm"):
        export_hf(build_upstream("fbank"), tmp_path / "x")
