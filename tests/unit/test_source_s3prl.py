"""`s3prl:NAME:FILE` upstreams: tiny random models written in s3prl's own checkpoint formats
(converted HuBERT: task_cfg/model_cfg/model_weight/dictionaries_symbols; WavLM: cfg/model) run
through upstreams/source_s3prl.py give s3prl's hub expert's hidden states, layer by layer."""

import random

import pytest
import torch

from harness import s3prl_compat
from harness.errors import HarnessError
from harness.evaluate import build_upstream

CONV = "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2"  # the 20 ms CNN, narrow
TINY = {"encoder_layers": 2, "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 2,
        "conv_feature_layers": CONV, "conv_pos": 16, "conv_pos_groups": 4, "final_dim": 16}


def hubert_ckpt(path, extractor_mode):
    hm = s3prl_compat.module("s3prl.upstream.hubert.hubert_model")
    task_cfg = {"label_rate": 50.0, "sample_rate": 16000, "normalize": False}
    model_cfg = {**TINY, "label_rate": 50.0, "extractor_mode": extractor_mode}
    symbols = [[str(i) for i in range(8)]]
    torch.manual_seed(0)
    model = hm.HubertModel(hm.HubertConfig(**model_cfg), hm.HubertPretrainingConfig(**task_cfg), symbols)
    torch.save({"task_cfg": task_cfg, "model_cfg": model_cfg, "model_weight": model.state_dict(),
                "dictionaries_symbols": symbols}, path)
    return model.state_dict()


def wavlm_ckpt(path, extractor_mode):
    wm = s3prl_compat.module("s3prl.upstream.wavlm.WavLM")
    cfg = {**TINY, "extractor_mode": extractor_mode, "relative_position_embedding": True, "num_buckets": 16,
           "max_distance": 64, "gru_rel_pos": True, "normalize": False}
    torch.manual_seed(0)
    model = wm.WavLM(wm.WavLMConfig(cfg))
    torch.save({"cfg": cfg, "model": model.state_dict()}, path)
    return model.state_dict()


def _draw_after_seed(seed):
    return random.Random(seed).random()


def _torch_after_seed(seed):
    return torch.rand(3, generator=torch.Generator().manual_seed(seed))


WRITERS = {"hubert": hubert_ckpt, "wavlm": wavlm_ckpt}


@pytest.mark.parametrize("name,mode", [("hubert", "default"), ("hubert", "layer_norm"), ("wavlm", "default")])
def test_hidden_states_match_s3prl_expert(tmp_path, name, mode):
    path = tmp_path / f"tiny_{name}.pt"
    weights = WRITERS[name](path, mode)
    torch.manual_seed(123)
    random.seed(123)
    up = build_upstream(f"s3prl:{name}:{path}")
    # s3prl reseeds the global generators while loading; the caller's streams must not move
    assert random.random() == _draw_after_seed(123) and torch.equal(torch.rand(3), _torch_after_seed(123))
    assert up.spec.name.split("@")[0] == f"s3prl:{name}:tiny_{name}" and up.spec.family == f"s3prl:{name}"
    assert (up.spec.num_layers, up.spec.hidden_size, up.spec.frame_rate_hz) == (3, 32, 50.0)
    ours = {k[len("model.upstream.model."):]: v for k, v in up.state_dict().items()}
    assert set(weights) <= set(ours) and all(torch.equal(ours[k], v) for k, v in weights.items())

    expert = s3prl_compat.hub_local_entries()[f"{name}_local"](ckpt=str(path)).eval()
    g = torch.Generator().manual_seed(1)
    lens = torch.tensor([8000, 5123, 1200])
    wavs = torch.randn(3, 8000, generator=g)
    for i, n in enumerate(lens):
        wavs[i, n:] = 0
    with torch.no_grad():
        hs = up(wavs, lens)
        assert torch.equal(hs.lengths, (lens - 1) // 320 + 1)
        for i, n in enumerate(lens):
            ref = expert([wavs[i, :n]])["hidden_states"]
            assert len(ref) == len(hs.layers) == 3
            t_ref = ref[0].shape[1]  # the CNN's own count; s3prl pads the rest with the last frame
            for layer, r in zip(hs.layers, ref):
                assert torch.allclose(layer[i, :t_ref], r[0], atol=1e-4)
                assert torch.allclose(layer[i, t_ref:hs.lengths[i]], r[0, -1:].expand(hs.lengths[i] - t_ref, -1))
                assert not layer[i, hs.lengths[i]:].any()
            # padding contract: alone == in the padded batch
            alone = up(wavs[i: i + 1, :n], lens[i: i + 1])
            for a, b in zip(alone.layers, hs.layers):
                assert torch.allclose(a[0], b[i, : hs.lengths[i]], atol=1e-4)


def test_unknown_name_and_missing_file(tmp_path):
    path = tmp_path / "tiny.pt"
    hubert_ckpt(path, "layer_norm")
    with pytest.raises(HarnessError, match=r"no local-checkpoint upstream 'hubbert'.*hubert, "):
        build_upstream(f"s3prl:hubbert:{path}")
    with pytest.raises(HarnessError, match="no such checkpoint file"):
        build_upstream(f"s3prl:hubert:{tmp_path / 'absent.pt'}")
    with pytest.raises(HarnessError, match="s3prl's wavlm_local cannot load it"):
        build_upstream(f"s3prl:wavlm:{path}")  # a HuBERT checkpoint is not in WavLM's format
    with pytest.raises(HarnessError, match="expected s3prl:NAME:FILE"):
        build_upstream("s3prl:hubert")


# ----------------------------------------------------------------------------- export

# 320-sample stride in three convs (s3prl's experts assume 320); CNN as wide as the encoder or not
CNN3 = dict(conv_kernels=(10, 8, 8), conv_strides=(5, 8, 8), encoder_layers=2, encoder_heads=4,
            encoder_ffn_dim=64, pos_conv_kernel=16, pos_conv_groups=4, final_dim=16)
EXPORTS = {  # (family, config fields); equal widths exercise the widened CNN
    "hubert": ("hubert", dict(conv_channels=(32,) * 3, encoder_dim=32)),
    "hubert_pre_ln": ("hubert", dict(conv_channels=(16,) * 3, encoder_dim=32, extractor_mode="layer_norm",
                                     layer_norm_first=True, conv_bias=True, normalize=True)),
    "wavlm": ("wavlm", dict(conv_channels=(32,) * 3, encoder_dim=32, num_buckets=32, max_distance=64)),
    "wavlm_pre_ln": ("wavlm", dict(conv_channels=(32,) * 3, encoder_dim=32, num_buckets=32, max_distance=64,
                                   extractor_mode="layer_norm", layer_norm_first=True)),
}


def _project_upstream(key, identity_proj=False):
    """A project upstream of EXPORTS[key] with every weight moved off its init (unit LayerNorms
    and zero biases would hide a wrong mapping)."""
    from upstreams.base import get_family

    fam_name, kw = EXPORTS[key]
    fam = get_family(fam_name)
    encoder = fam.random_encoder(fam.config_cls(**CNN3, **kw), seed=3)
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        for p in encoder.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        if identity_proj:
            encoder.post_extract_proj.weight.copy_(torch.eye(kw["encoder_dim"]))
            encoder.post_extract_proj.bias.zero_()
    return fam_name, fam.upstream_cls(encoder, "mine")


def _assert_same_states(ours, back, lens=(6400, 4321, 1000)):
    """`back` (an s3prl: upstream) gives `ours`'s states on every valid frame, item by item."""
    g = torch.Generator().manual_seed(7)
    lens = torch.tensor(lens)
    wavs = 0.5 * torch.randn(len(lens), int(lens.max()), generator=g)
    with torch.no_grad():
        a, b = ours(wavs, lens), back(wavs, lens)
    assert len(a.layers) == len(b.layers)
    for i, n in enumerate(a.lengths.tolist()):
        assert n <= b.lengths[i]  # s3prl counts (samples - 1) // 320 + 1, the CNN's count or one more
        for x, y in zip(a.layers, b.layers):
            assert (x[i, :n] - y[i, :n]).abs().max() < 1e-4


@pytest.mark.parametrize("key", list(EXPORTS))
def test_export_loads_in_s3prl_with_our_hidden_states(tmp_path, key):
    from upstreams.source_s3prl import export_s3prl

    fam, ours = _project_upstream(key)
    path = export_s3prl(ours, tmp_path / f"exp_{key}")
    assert path == tmp_path / f"exp_{key}" / f"exp_{key}.pt"
    ckpt = torch.load(path, weights_only=True)  # s3prl's loader unpickles with torch.load's default
    cfg = ckpt["cfg"] if fam == "wavlm" else ckpt["model_cfg"]
    last = int(cfg["conv_feature_layers"].rsplit("(", 1)[1].split(",")[0])
    c = ours.config
    assert last == (2 * c.conv_channels[-1] if c.conv_channels[-1] == c.encoder_dim else c.conv_channels[-1])
    back = build_upstream(f"s3prl:{fam}:{path}")  # s3prl's own hub entry and S3PRLUpstream
    assert back.spec.name.split("@")[0] == f"s3prl:{fam}:exp_{key}"
    _assert_same_states(ours, back)


def test_export_keeps_an_identity_projection_out(tmp_path):
    from upstreams.source_s3prl import export_s3prl

    _, ours = _project_upstream("wavlm", identity_proj=True)
    path = export_s3prl(ours, tmp_path / "plain")
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["cfg"]["conv_feature_layers"].endswith("(32, 8, 8)]")
    assert not any(k.startswith("post_extract_proj") for k in ckpt["model"])  # fairseq's own layout
    _assert_same_states(ours, build_upstream(f"s3prl:wavlm:{path}"))


def test_export_command_and_refusals(tmp_path):
    from harness.export import export

    path = export("random:hubert_tiny", "s3prl", tmp_path / "tiny_s3prl")
    _assert_same_states(build_upstream("random:hubert_tiny"), build_upstream(f"s3prl:hubert:{path}"),
                        lens=(4000, 2500))
    with pytest.raises(HarnessError, match="stride 640 samples; s3prl's hubert_local upstream assumes 320"):
        export("random:hubert_tiny_40ms", "s3prl", tmp_path / "x")
    with pytest.raises(HarnessError, match="exports the hubert and wavlm families"):
        export("fbank", "s3prl", tmp_path / "y")
