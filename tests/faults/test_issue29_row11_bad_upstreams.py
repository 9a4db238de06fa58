"""Issue 29, row 11: an upstream that cannot be used is one line naming the file.

NaN weights in an export; an HF folder whose config.json is a JSON list; an HF folder whose
pickled pytorch_model.bin torch refuses to unpickle; an s3prl checkpoint s3prl refuses. On
f051749: 51-124-line tracebacks, and s3prl's refusal took 7 lines.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from harness.cli import app
from harness.evaluate import build_upstream
from tests.conftest import make_tone_corpus
from tests.unit.test_source_hf import SIZES
from upstreams.base import WEIGHTS_FILE, export_encoder


def _one_line(tmp_path, upstream):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4)
    r = CliRunner().invoke(app, ["eval", "--upstream", upstream, "--task", "lid", "--corpus", str(corpus),
                                 "--steps", "2", "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert not (tmp_path / "runs").exists()
    return lines[0]


def _hf_folder(folder):
    config = transformers.Wav2Vec2Config(conv_dim=[16] * 4, conv_kernel=[10, 4, 4, 4], conv_stride=[5, 4, 4, 4],
                                         num_feat_extract_layers=4, num_conv_pos_embeddings=16, **SIZES)
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(config).save_pretrained(folder)
    return folder


def test_row11_nan_weights_in_an_export(tmp_path):
    folder = export_encoder(build_upstream("random:hubert_tiny").encoder, "hubert", tmp_path / "exp", name="exp")
    sd = load_file(str(folder / WEIGHTS_FILE))
    key = sorted(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 3)[0]
    sd[key] = sd[key].clone()
    sd[key].view(-1)[:3] = float("nan")
    save_file(sd, str(folder / WEIGHTS_FILE))
    line = _one_line(tmp_path, str(folder))
    assert str(folder / WEIGHTS_FILE) in line and key in line and "3 NaN or infinite" in line


def test_row11_nan_weights_in_an_hf_folder(tmp_path):
    folder = _hf_folder(tmp_path / "hf")
    sd = load_file(str(folder / "model.safetensors"))
    key = sorted(k for k, v in sd.items() if v.is_floating_point())[0]
    sd[key] = torch.full_like(sd[key], float("inf"))
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    line = _one_line(tmp_path, f"hf:{folder}")
    assert f"hf:{folder}" in line and "NaN or infinite" in line


def test_row11_an_hf_config_that_is_a_list(tmp_path):
    folder = _hf_folder(tmp_path / "hf")
    (folder / "config.json").write_text(json.dumps([1, 2, 3]))
    line = _one_line(tmp_path, f"hf:{folder}")
    assert str(folder / "config.json") in line and "JSON object" in line and "list" in line


def test_row11_a_pickle_that_torch_refuses_in_an_hf_folder(tmp_path):
    folder = _hf_folder(tmp_path / "hf")
    (folder / "model.safetensors").unlink()
    torch.save({"args": argparse.Namespace(lr=1.0)}, folder / "pytorch_model.bin")  # not weights only
    line = _one_line(tmp_path, f"hf:{folder}")
    assert str(folder) in line and "cannot load the weights" in line


def test_row11_an_s3prl_checkpoint_that_s3prl_refuses(tmp_path):
    ckpt = tmp_path / "bad.pt"
    torch.save({"args": argparse.Namespace(lr=1.0), "model": {}}, ckpt)
    line = _one_line(tmp_path, f"s3prl:hubert:{ckpt}")
    assert f"s3prl:hubert:{ckpt}" in line and "cannot load it" in line
