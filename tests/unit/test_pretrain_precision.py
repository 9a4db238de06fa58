"""train.precision: the fixed choices, and "fastest" (measured once per stage, recorded, reused on
resume, drawing no number from the training's random stream)."""

from __future__ import annotations

import json

import pytest
import torch

from harness.pretrain import precision as P
from upstreams.hubert import HubertConfig, HubertEncoder


def _encoder():
    torch.manual_seed(0)
    return HubertEncoder(HubertConfig.tiny())


def _resolve(prec, tmp_path, enc=None, samples=3200):
    return P.resolve_precision(prec, "cpu", enc if enc is not None else _encoder(), samples, tmp_path,
                               True, lambda rec: rec, log=lambda line: None)


def test_fixed_choices(tmp_path):
    assert _resolve("fp32", tmp_path)[0] == torch.float32
    assert _resolve("bf16", tmp_path)[0] == torch.bfloat16
    assert _resolve("auto", tmp_path)[0] == torch.float32  # the CPU: auto is fp32
    assert not (tmp_path / P.PRECISION_FILE).exists()


@pytest.mark.parametrize("bf16_s, want", [(0.5, torch.bfloat16), (0.95, torch.float32), (1.4, torch.float32)])
def test_fastest_takes_bf16_only_beyond_the_margin(tmp_path, monkeypatch, bf16_s, want):
    monkeypatch.setattr(P, "measure", lambda enc, n, dev: {"fp32": 1.0, "bf16": bf16_s})
    dtype, rec = _resolve("fastest", tmp_path)
    assert dtype == want
    assert rec["step_s_bf16"] == bf16_s and rec["step_s_fp32"] == 1.0 and rec["precision_asked"] == "fastest"
    assert json.loads((tmp_path / P.PRECISION_FILE).read_text())["precision"] == rec["precision"]


def test_fastest_is_read_back_on_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "measure", lambda enc, n, dev: {"fp32": 1.0, "bf16": 0.5})
    assert _resolve("fastest", tmp_path)[0] == torch.bfloat16

    def boom(*a):
        raise AssertionError("a resumed stage must not measure again")

    monkeypatch.setattr(P, "measure", boom)
    assert _resolve("fastest", tmp_path)[0] == torch.bfloat16


def test_measuring_leaves_the_model_and_the_random_stream_alone(tmp_path):
    enc = _encoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    torch.manual_seed(123)
    t = P.measure(enc, 3200, "cpu")
    after_draw = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after_draw, torch.rand(3))
    assert t["fp32"] > 0 and t["bf16"] > 0
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    assert all(p.grad is None for p in enc.parameters())
