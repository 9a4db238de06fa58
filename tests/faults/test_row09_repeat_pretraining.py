"""Row 9 of issue 15: the same tiny recipe pre-trained twice in fresh processes on one machine
exports bit-identical weights (this held before the issue: keep it so), and each iteration's
summary says which machine, kernels and thread count made it (docs/reproducibility.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.environment import environment
from harness.pretrain.toy import make_toy_corpus
from upstreams.hubert import HubertConfig

ROOT = Path(__file__).resolve().parents[2]
MICRO = replace(HubertConfig.tiny(), conv_channels=(32,) * 7, encoder_dim=64, encoder_layers=2, encoder_heads=4,
                encoder_ffn_dim=128, final_dim=32, dropout=0.1, attention_dropout=0.1, dropout_input=0.1,
                layerdrop=0.0)


def _recipe(tmp: Path) -> Path:
    m = {k: (list(v) if isinstance(v, tuple) else v) for k, v in MICRO.to_dict().items()}
    recipe = tmp / "repeat.yaml"
    recipe.write_text(json.dumps({  # JSON is YAML; dropout on, so that every RNG draw matters
        "name": "repeat", "data": {"min_seconds": 1.0}, "model": {"family": "hubert", "preset": "tiny", **m},
        "cluster": {"k": 10, "sample_fraction": 1.0, "niter": 10},
        "train": {"steps": 8, "lr": 2e-3, "batch_samples": 48000, "checkpoint_every": 100, "log_every": 100,
                  "seed": 3},
        "iterations": [{"features": {"source": "mfcc"}}]}))
    return recipe


@pytest.mark.slow
def test_row09_repeat_pretraining_in_fresh_processes_is_bit_identical(tmp_path):
    corpus = make_toy_corpus(tmp_path / "toy", n_train=8, n_dev=2, seed=1)
    recipe = _recipe(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    procs = [subprocess.Popen([sys.executable, "-m", "harness.pretrain", "--recipe", str(recipe), "--corpus",
                               str(corpus.root), "--out", str(tmp_path / out), "--threads", "1"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for out in ("a", "b")]  # fmt: skip
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    up = [tmp_path / run / "iter1" / "upstream" for run in ("a", "b")]
    wa, wb = (load_file(str(u / "upstream.safetensors")) for u in up)
    assert wa.keys() == wb.keys() and len(wa) > 10
    for k in wa:
        assert wa[k].dtype == wb[k].dtype and wa[k].shape == wb[k].shape, k
        assert torch.equal(wa[k], wb[k]), k  # names the first tensor that differs; the bytes check below is bitwise
    assert (up[0] / "upstream.safetensors").read_bytes() == (up[1] / "upstream.safetensors").read_bytes()

    here = environment()
    summary = json.loads((tmp_path / "a" / "iter1" / "summary.json").read_text())
    rec = summary["environment"]
    assert rec["threads"] == 1 and rec["env"]["OMP_NUM_THREADS"] == "1"
    assert rec["cpu"] == here["cpu"] and rec["isa"] == here["isa"] and rec["torch"] == here["torch"]
    assert rec["cpu_capability"] == here["cpu_capability"] and isinstance(rec["mkldnn"], bool)
