"""A recipe whose first iteration is data2vec (no labels) and whose second is HuBERT on a layer of
the data2vec model, run by `pretrain`: the data2vec iteration dumps, clusters and labels nothing,
trains (its loss falls), exports its student encoder and writes its summary and curves; the
HuBERT iteration clusters the exported model's layer as usual."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from harness.pretrain import checkpoint
from harness.pretrain.run import pretrain
from harness.pretrain.toy import make_toy_corpus
from upstreams.base import load_exported
from upstreams.hubert import HubertConfig

MICRO = replace(HubertConfig.tiny(), conv_channels=(32,) * 7, encoder_dim=64, encoder_layers=2, encoder_heads=4,
                encoder_ffn_dim=128, final_dim=32, dropout=0.0, attention_dropout=0.0, dropout_input=0.0,
                layerdrop=0.0)


def _recipe(tmp: Path) -> Path:
    m = {k: (list(v) if isinstance(v, tuple) else v) for k, v in MICRO.to_dict().items()}
    train = {"steps": 30, "lr": 2e-3, "batch_samples": 48000, "checkpoint_every": 10, "log_every": 5, "seed": 3,
             "precision": "fp32", "device": "cpu"}
    recipe = tmp / "d2v.yaml"
    recipe.write_text(json.dumps({  # JSON is YAML
        "name": "d2v", "data": {"min_seconds": 1.0}, "model": {"preset": "tiny", **m},
        "cluster": {"k": 6, "sample_fraction": 1.0, "niter": 5}, "train": train,
        "iterations": [
            {"objective": {"name": "data2vec", "average_top_k_layers": 2, "ema_decay": 0.9, "ema_end_decay": 0.99,
                           "ema_anneal_end_step": 10}, "train": {"mask_prob": 0.65, "min_masks": 1}},
            {"objective": {"name": "masked_prediction"}, "features": {"source": "layer", "layer": 1},
             "train": {"steps": 4}}]}))
    return recipe


@pytest.mark.slow
def test_data2vec_iteration_then_hubert_on_its_layer(tmp_path):
    corpus = make_toy_corpus(tmp_path / "toy", n_train=10, n_dev=3, seed=5)
    out = tmp_path / "run"
    lines = []
    up = pretrain(_recipe(tmp_path), str(corpus.root), out, log=lines.append)
    it1, it2 = out / "iter1", out / "iter2"
    assert not any((it1 / d).exists() for d in ("features", "clusters", "labels"))
    done = json.loads((it1 / "train" / checkpoint.DONE).read_text())
    assert "chance_acc" not in done and "train_masked_acc" not in done and done["steps"] == 30
    log = [json.loads(x) for x in (it1 / "train" / checkpoint.LOG).read_text().splitlines()]
    assert [r["step"] for r in log] == [5, 10, 15, 20, 25, 30] and "masked_acc" not in log[0]
    assert log[-1]["loss"] < 0.7 * log[0]["loss"], [r["loss"] for r in log]
    s = json.loads((it1 / "summary.json").read_text())
    assert s["objective"] == "data2vec" and s["k"] is None and s["label_quality"] == {}
    assert s["train"]["train_loss"] == done["train_loss"]
    assert (it1 / "curves.png").stat().st_size > 0
    assert any("d2v-it1: done" in x and "train loss" in x for x in lines)
    # the export is the student encoder: what the checkpoint's encoder.* holds, no teacher
    ck = torch.load(it1 / "train" / checkpoint.CHECKPOINT, map_location="cpu", weights_only=False)
    assert any(k.startswith("teacher.") for k in ck["model"])
    enc = load_exported(it1 / "upstream").encoder.state_dict()
    assert set(enc) == {k[len("encoder."):] for k in ck["model"] if k.startswith("encoder.")}
    for k, v in enc.items():
        assert torch.equal(v, ck["model"][f"encoder.{k}"]), k
    # iteration 2 clustered layer 1 of that export and trained HuBERT on it
    assert (it2 / "clusters" / "main" / "done.json").is_file() and (it2 / "labels" / "main" / "train").is_dir()
    s2 = json.loads((it2 / "summary.json").read_text())
    assert s2["k"] == 6 and s2["masked_acc"]["chance"] == pytest.approx(1 / 6)
    assert up == it2 / "upstream"
