"""Tests for upstreams/source_fairseq.py: fairseq-layout checkpoints (HuBERT with a Hydra DictConfig,
wav2vec 2.0 with a pre-Hydra argparse Namespace, unilm WavLM with a plain dict config) written
with the real key names; the loaded upstream equals torchaudio's equivalent model layer by layer.
Refusals: a non-allowlisted pickled class (named), a missing file, an unsupported config."""

from __future__ import annotations

import argparse
import collections
import enum
import re
import sys
import types

import pytest
import torch
import torchaudio
from omegaconf import OmegaConf

from harness.errors import HarnessError
from harness.evaluate import build_upstream
from tests.unit.test_source_torchaudio import assert_same_states, perturb, randn
from upstreams.base import get_family
from upstreams.hubert import HubertUpstream
from upstreams.source_fairseq import parse_conv_layers
from upstreams.wavlm import WavlmUpstream

CONV = "[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2"
SIZES = dict(encoder_embed_dim=64, encoder_layers=3, encoder_attention_heads=4, encoder_ffn_embed_dim=128,
             conv_pos=16, conv_pos_groups=4, conv_feature_layers=CONV)


def _torchaudio_model(cfg: dict, wavlm: bool):
    """torchaudio's equivalent of a fairseq model config (the factory import_fairseq_model uses)."""
    kw = dict(
        extractor_mode="group_norm" if cfg["extractor_mode"] == "default" else "layer_norm",
        extractor_conv_layer_config=parse_conv_layers(cfg["conv_feature_layers"]),
        extractor_conv_bias=cfg["conv_bias"], encoder_embed_dim=cfg["encoder_embed_dim"],
        encoder_projection_dropout=0.0, encoder_pos_conv_kernel=cfg["conv_pos"],
        encoder_pos_conv_groups=cfg["conv_pos_groups"], encoder_num_layers=cfg["encoder_layers"],
        encoder_num_heads=cfg["encoder_attention_heads"], encoder_attention_dropout=0.0,
        encoder_ff_interm_features=cfg["encoder_ffn_embed_dim"], encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0, encoder_layer_norm_first=cfg["layer_norm_first"], encoder_layer_drop=0.0,
        aux_num_out=None)
    if wavlm:
        return torchaudio.models.wavlm_model(encoder_num_buckets=cfg["num_buckets"],
                                             encoder_max_distance=cfg["max_distance"], **kw).eval()
    return torchaudio.models.wav2vec2_model(**kw).eval()


# torchaudio -> fairseq / unilm names: the inverse of torchaudio's import_fairseq_model mapping, plus
# unilm's WavLM attention names.
_L = r"encoder\.transformer\.layers\.(\d+)\."
_TO_FAIRSEQ = [
    (r"feature_extractor\.conv_layers\.(\d+)\.conv\.(\w+)", r"feature_extractor.conv_layers.\1.0.\2"),
    (r"encoder\.feature_projection\.projection\.(\w+)", r"post_extract_proj.\1"),
    (r"encoder\.feature_projection\.layer_norm\.(\w+)", r"layer_norm.\1"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.bias", "encoder.pos_conv.0.bias"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original0", "encoder.pos_conv.0.weight_g"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.parametrizations\.weight\.original1", "encoder.pos_conv.0.weight_v"),
    (r"encoder\.transformer\.layer_norm\.(\w+)", r"encoder.layer_norm.\1"),
    (_L + r"attention\.((?:[qkv]|out)_proj\.\w+)", r"encoder.layers.\1.self_attn.\2"),
    (_L + r"attention\.attention\.out_proj\.(\w+)", r"encoder.layers.\1.self_attn.out_proj.\2"),
    (_L + r"attention\.rel_attn_embed\.weight", r"encoder.layers.\1.self_attn.relative_attention_bias.weight"),
    (_L + r"attention\.gru_rel_pos_linear\.(\w+)", r"encoder.layers.\1.self_attn.grep_linear.\2"),
    (_L + r"attention\.gru_rel_pos_const", r"encoder.layers.\1.self_attn.grep_a"),
    (_L + r"layer_norm\.(\w+)", r"encoder.layers.\1.self_attn_layer_norm.\2"),
    (_L + r"feed_forward\.intermediate_dense\.(\w+)", r"encoder.layers.\1.fc1.\2"),
    (_L + r"feed_forward\.output_dense\.(\w+)", r"encoder.layers.\1.fc2.\2"),
    (_L + r"final_layer_norm\.(\w+)", r"encoder.layers.\1.final_layer_norm.\2"),
]


def _fairseq_state_dict(ta, extractor_mode: str) -> dict:
    out = {}
    for key, value in ta.state_dict().items():
        m = re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(\w+)", key)
        if m:  # GroupNorm is block 0's module 2; a LayerNorm sits inside a transpose sandwich at 2.1
            sub = "2" if extractor_mode == "default" else "2.1"
            out[f"feature_extractor.conv_layers.{m.group(1)}.{sub}.{m.group(2)}"] = value
            continue
        m = re.fullmatch(_L + r"attention\.attention\.in_proj_(weight|bias)", key)
        if m:  # torchaudio's fused q/k/v; unilm keeps three projections
            for name, part in zip("qkv", value.chunk(3)):
                out[f"encoder.layers.{m.group(1)}.self_attn.{name}_proj.{m.group(2)}"] = part
            continue
        for pat, rep in _TO_FAIRSEQ:
            if (m := re.fullmatch(pat, key)):
                out[m.expand(rep)] = value
                break
        else:
            raise AssertionError(key)
    dim = ta.encoder.feature_projection.projection.out_features
    out["mask_emb"] = randn(dim, seed=5)
    return out


def _hubert_checkpoint(ta, cfg):
    """Hydra-era fairseq (HuBERT releases): cfg is a DictConfig with model / task sections; the
    pre-training head and bookkeeping come along."""
    sd = _fairseq_state_dict(ta, cfg["extractor_mode"])
    sd.update({"label_embs_concat": randn(10, 16), "final_proj.weight": randn(16, 64), "final_proj.bias": randn(16)})
    return {"args": None,
            "cfg": OmegaConf.create({"_name": None, "common": {"seed": 1337},
                                     "model": {"_name": "hubert", "activation_fn": "gelu", **cfg},
                                     "task": {"_name": "hubert_pretraining", "normalize": False, "labels": ["km"]}}),
            "model": sd, "optimizer_history": [{"criterion_name": "HubertCriterion", "num_updates": 5}],
            "task_state": {}, "extra_state": {"epoch": 2}}


def _wav2vec2_checkpoint(ta, cfg):
    """Pre-Hydra fairseq (wav2vec 2.0 releases): flat argparse Namespace; quantizer heads dropped."""
    sd = _fairseq_state_dict(ta, cfg["extractor_mode"])
    sd.update({"quantizer.vars": randn(1, 8, 16), "quantizer.weight_proj.weight": randn(8, 64),
               "quantizer.weight_proj.bias": randn(8), "project_q.weight": randn(16, 16),
               "project_q.bias": randn(16), "final_proj.weight": randn(16, 64), "final_proj.bias": randn(16)})
    return {"args": argparse.Namespace(arch="wav2vec2", normalize=False, activation_fn="gelu", **cfg),
            "model": sd, "optimizer_history": [], "extra_state": {}}


def _wavlm_checkpoint(ta, cfg):
    """unilm WavLM releases: `cfg` is the plain dict of WavLMConfig fields."""
    return {"cfg": {"relative_position_embedding": True, "gru_rel_pos": True, "normalize": False, **cfg},
            "model": _fairseq_state_dict(ta, cfg["extractor_mode"])}


CASES = {
    "hubert_post_ln": (_hubert_checkpoint, dict(extractor_mode="default", conv_bias=False, layer_norm_first=False)),
    "wav2vec2_pre_ln": (_wav2vec2_checkpoint, dict(extractor_mode="layer_norm", conv_bias=True, layer_norm_first=True)),
    "wavlm_post_ln": (_wavlm_checkpoint, dict(extractor_mode="default", conv_bias=False, layer_norm_first=False,
                                              num_buckets=320, max_distance=800)),
    "wavlm_pre_ln": (_wavlm_checkpoint, dict(extractor_mode="layer_norm", conv_bias=False, layer_norm_first=True,
                                             num_buckets=32, max_distance=100)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_checkpoint_equals_torchaudio_reference(tmp_path, case):
    make, extra = CASES[case]
    cfg = {**SIZES, **extra}
    wavlm = "num_buckets" in cfg
    torch.manual_seed(0)
    ta = _torchaudio_model(cfg, wavlm)
    perturb(ta)
    path = tmp_path / f"{case}.pt"
    torch.save(make(ta, cfg), path)
    up = build_upstream(f"fairseq:{path}")
    assert type(up) is (WavlmUpstream if wavlm else HubertUpstream)
    assert up.spec.name.split("@")[0] == f"fairseq:{case}" and up.spec.num_layers == 4 and up.spec.hidden_size == 64
    assert up.config.normalize is False and up.config.pos_conv_kernel == 16
    # 2.5 s -> 124 frames: WavLM's relative distances reach the logarithmic buckets
    assert_same_states(up, ta, 0.1 * randn(1, 40000, seed=2))


def test_dictconfig_values_reach_the_config(tmp_path):
    """A value set only in the DictConfig (not a default) lands in our config: the config is read."""
    cfg = {**SIZES, "extractor_mode": "default", "conv_bias": False, "layer_norm_first": False}
    ckpt = _hubert_checkpoint(_torchaudio_model(cfg, False), cfg)
    ckpt["cfg"].task.normalize = True
    ckpt["cfg"].model.final_dim = 16
    torch.save(ckpt, tmp_path / "h.pt")
    c = build_upstream(f"fairseq:{tmp_path / 'h.pt'}").config
    assert c.normalize is True and c.final_dim == 16 and c.conv_channels == (64,) * 7


def test_hydra_era_checkpoint_with_enums_and_dictionaries(tmp_path, monkeypatch):
    """fairseq between 2021-03 and 2021-05 pickled cfg as a DictConfig whose ChoiceEnum fields hold
    `fairseq.dataclass.constants.Choices` members, and the HuBERT task's state holds
    `fairseq.data.dictionary.Dictionary` objects: both read (as inert records), without fairseq."""
    names = ("fairseq", "fairseq.dataclass", "fairseq.dataclass.constants", "fairseq.data", "fairseq.data.dictionary")
    mods = {n: types.ModuleType(n) for n in names}
    for n, m in mods.items():
        monkeypatch.setitem(sys.modules, n, m)
    choices = enum.Enum("Choices", {"default": "default", "layer_norm": "layer_norm"},
                        module="fairseq.dataclass.constants")
    mods["fairseq.dataclass.constants"].Choices = choices
    dictionary = type("Dictionary", (), {"__module__": "fairseq.data.dictionary"})
    mods["fairseq.data.dictionary"].Dictionary = dictionary
    cfg = {**SIZES, "extractor_mode": "layer_norm", "conv_bias": False, "layer_norm_first": True}
    torch.manual_seed(0)
    ta = _torchaudio_model(cfg, False)
    perturb(ta)
    ckpt = _hubert_checkpoint(ta, cfg)
    ckpt["cfg"].model.extractor_mode = choices.layer_norm
    labels = dictionary()
    labels.symbols, labels.indices = ["<s>", "0", "1"], {"<s>": 0, "0": 1, "1": 2}
    ckpt["task_state"] = {"dictionaries": [labels]}
    torch.save(ckpt, tmp_path / "hydra.pt")
    pickled = set(torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "hydra.pt"))
    assert {"fairseq.dataclass.constants.Choices", "fairseq.data.dictionary.Dictionary",
            "omegaconf.dictconfig.DictConfig"} <= pickled
    for n in names:  # fairseq is not importable when the checkpoint is read
        monkeypatch.delitem(sys.modules, n)
    up = build_upstream(f"fairseq:{tmp_path / 'hydra.pt'}")
    assert up.config.extractor_mode == "layer_norm" and up.config.layer_norm_first
    assert_same_states(up, ta, 0.1 * randn(1, 16000, seed=2))


def test_no_projection_when_the_cnn_has_the_encoder_width(tmp_path):
    """fairseq / unilm build no post_extract_proj when CNN width == encoder width (here 64 == 64):
    the upstream equals a reference whose projection is the identity."""
    cfg = {**SIZES, "extractor_mode": "default", "conv_bias": False, "layer_norm_first": False}
    torch.manual_seed(0)
    ta = _torchaudio_model(cfg, False)
    perturb(ta)
    with torch.no_grad():
        ta.encoder.feature_projection.projection.weight.copy_(torch.eye(64))
        ta.encoder.feature_projection.projection.bias.zero_()
    ckpt = _hubert_checkpoint(ta, cfg)
    del ckpt["model"]["post_extract_proj.weight"], ckpt["model"]["post_extract_proj.bias"]
    torch.save(ckpt, tmp_path / "noproj.pt")
    assert_same_states(build_upstream(f"fairseq:{tmp_path / 'noproj.pt'}"), ta, 0.1 * randn(1, 16000, seed=2))


def test_unilm_defaults_fill_absent_fields():
    """unilm's WavLMConfig defaults (max_distance 1280, not our 800) apply to absent fields."""
    conv = get_family("wavlm").sources["fairseq"]
    c = conv.config({"relative_position_embedding": True, "gru_rel_pos": True}, False)
    assert (c.num_buckets, c.max_distance) == (320, 1280)
    with pytest.raises(HarnessError, match="gru_rel_pos=False"):
        conv.config({"gru_rel_pos": False}, False)


def test_refuses_a_pickled_class_outside_the_allowlist(tmp_path):
    cfg = {**SIZES, "extractor_mode": "default", "conv_bias": False, "layer_norm_first": False}
    ckpt = _wavlm_checkpoint(_torchaudio_model({**cfg, "num_buckets": 320, "max_distance": 800}, True),
                             {**cfg, "num_buckets": 320, "max_distance": 800})
    ckpt["extra_state"] = collections.deque([1])
    torch.save(ckpt, tmp_path / "evil.pt")
    with pytest.raises(HarnessError, match=r"refused to unpickle collections\.deque"):
        build_upstream(f"fairseq:{tmp_path / 'evil.pt'}")


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(HarnessError, match="missing.pt' not found"):
        build_upstream(f"fairseq:{tmp_path / 'missing.pt'}")
    cfg = {**SIZES, "extractor_mode": "default", "conv_bias": False, "layer_norm_first": False}
    ta = _torchaudio_model(cfg, False)
    for change, match in [({"activation_fn": "relu"}, "activation_fn='relu'"),
                          ({"conv_pos_batch_norm": True}, "conv_pos_batch_norm=True"),
                          ({"conv_feature_layers": "__import__('os')"}, "conv_feature_layers")]:
        ckpt = _wav2vec2_checkpoint(ta, cfg)
        vars(ckpt["args"]).update(change)
        torch.save(ckpt, tmp_path / "bad.pt")
        with pytest.raises(HarnessError, match=re.escape(match)):
            build_upstream(f"fairseq:{tmp_path / 'bad.pt'}")
    ckpt = _wav2vec2_checkpoint(ta, cfg)
    ckpt["model"] = {"w2v_encoder.w2v_model.mask_emb": torch.zeros(64)}
    torch.save(ckpt, tmp_path / "ft.pt")
    with pytest.raises(HarnessError, match="fine-tuned"):
        build_upstream(f"fairseq:{tmp_path / 'ft.pt'}")


def test_conv_feature_layers_parse_without_eval():
    assert parse_conv_layers("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2") == (
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2)
