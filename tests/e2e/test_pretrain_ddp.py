"""torchrun with 2 CPU processes (gloo) matches one process with the same global batch.

The global batch of a step is world x grad_accum micro-batches (batches.py), so the single process
runs grad_accum = 2 micro-batches of the same size as each rank's: it sees exactly the same
items, crops and masks, and normalises by the same global masked count (which the DDP run must
all-reduce to get). It runs twice: HuBERT (masked prediction) and WavLM (gated relative position
bias + denoising with utterance and noise mixing on every item), whose mixing draws are seeded per
micro-batch so that the two launches mix exactly the same items; MS-HuBERT (Swap, two label
sets with one dropped per step); and data2vec (no labels: the loss is normalised by the global
masked-frame count, and each rank updates its EMA teacher after every step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from harness.pretrain import batches, checkpoint, labels as lab, loop
from harness.pretrain.toy import make_toy_corpus, phone_labels
from upstreams.hubert import HubertConfig

ROOT = Path(__file__).resolve().parents[2]
# dropout off: the two launches draw dropout masks differently; everything else must agree
MICRO = replace(HubertConfig.tiny(), conv_channels=(32,) * 7, encoder_dim=64, encoder_layers=2, encoder_heads=4,
                encoder_ffn_dim=128, final_dim=32, dropout=0.0, attention_dropout=0.0, dropout_input=0.0,
                layerdrop=0.0)
STEPS = 8


METHODS = {
    "hubert": {"family": "hubert", "objective": {"name": "masked_prediction"}},
    # every item mixed, half of them with noise: the transform is exercised on each step
    "wavlm": {"family": "wavlm", "objective": {"name": "denoising", "mix_prob": 1.0, "noise_prob": 0.5}},
    # Swap (two views, exchange after each layer) and one of two label sets dropped per step: the
    # drop must be the same on both ranks, and DDP must accept the dropped head's unused weights
    "mshubert": {"family": "hubert", "objective": {"name": "mshubert", "head_layers": [1, 2], "drop_sets": 1}},
    # the EMA decay anneals over the whole run (0 = train.steps), so every step uses another tau
    "data2vec": {"family": "hubert", "objective": {"name": "data2vec", "average_top_k_layers": 2, "ema_decay": 0.9,
                                                   "ema_end_decay": 0.99, "ema_anneal_end_step": 0}},
}


def method_objective(method: str, k: int) -> dict:
    """The method's objective table; MS-HuBERT's levels are the phone labels' K and K // 2."""
    obj = dict(METHODS[method]["objective"])
    return {**obj, "levels": [k, k // 2]} if obj["name"] == "mshubert" else obj


def write_method_labels(tmp: Path, corpus) -> int:
    """Phone labels as the "main" stream (tmp/labels) and as MS-HuBERT's two levels (km<K>: the
    phones, km<K // 2>: phones merged in pairs); returns K."""
    labels, inv = phone_labels(corpus)
    k = len(inv)
    if not (tmp / "labels").exists():
        lab.write_labels(tmp / "labels", labels, k)
        lab.write_labels(tmp / "labels" / f"km{k}", labels, k)
        lab.write_labels(tmp / "labels" / f"km{k // 2}", {u: np.minimum(v // 2, k // 2 - 1) for u, v in labels.items()},
                         k // 2)
    return k


def _spec(tmp: Path, corpus, out: Path, grad_accum: int, method: str) -> Path:
    k = write_method_labels(tmp, corpus)
    spec = {"train": {"steps": STEPS, "lr": 2e-3, "batch_samples": 40000, "grad_accum": grad_accum,
                      "checkpoint_every": 100,
                      "log_every": 2, "seed": 5},
            **METHODS[method], "objective": method_objective(method, k), "noise_files": noise_files(tmp),
            "model": {**MICRO.to_dict(), **({"num_buckets": 32, "max_distance": 64} if method == "wavlm" else {})},
            "num_classes": k,
            "items": [asdict(batches.Item.from_utterance(u)) for u in corpus.select(split="train")],
            "dev_items": [asdict(batches.Item.from_utterance(u)) for u in corpus.select(split="dev")],
            "labels_dir": str(tmp / "labels"), "dev_labels_dir": str(tmp / "labels"), "out_dir": str(out),
            "threads": 1}
    path = out.with_suffix(".json")
    path.write_text(json.dumps(spec))
    return path


def noise_files(tmp: Path) -> list:
    """Three short noise clips (white, low hum, pink-ish) written once into tmp/noise."""
    folder = tmp / "noise"
    if not folder.exists():
        folder.mkdir()
        rng = np.random.default_rng(0)
        t = np.arange(16000) / 16000
        clips = [0.1 * rng.standard_normal(16000), 0.2 * np.sin(2 * np.pi * 50 * t),
                 0.05 * np.cumsum(rng.standard_normal(8000)) / 30]
        for i, x in enumerate(clips):
            sf.write(folder / f"n{i}.wav", x.astype(np.float32), 16000)
    return sorted(str(p) for p in folder.glob("*.wav"))


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_two_process_ddp_matches_single_process(tmp_path, method):
    corpus = make_toy_corpus(tmp_path / "toy", n_train=12, n_dev=3, seed=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    single = subprocess.Popen([sys.executable, "-m", "harness.pretrain.loop",
                               str(_spec(tmp_path, corpus, tmp_path / "single", 2, method))],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "harness.pretrain.loop", str(_spec(tmp_path, corpus, tmp_path / "ddp", 1, method))],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    out = single.communicate(timeout=300)[0]
    assert single.returncode == 0, out

    a = torch.load(tmp_path / "single" / checkpoint.CHECKPOINT, weights_only=False)
    b = torch.load(tmp_path / "ddp" / checkpoint.CHECKPOINT, weights_only=False)
    assert len(b["rng"]) == 2 and len(a["rng"]) == 1  # one RNG state per rank
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-4, atol=2e-5, msg=k)
    # the weights did move (the comparison is not between two untouched inits)
    assert a["family"] == METHODS[method]["family"] and a["objective"] == METHODS[method]["objective"]["name"]
    torch.manual_seed(5)
    from harness.pretrain.objectives import get_objective
    from harness.pretrain.objectives.base import LabelStream
    from upstreams.base import get_family

    fam = get_family(a["family"])
    opts = method_objective(method, a["num_classes"])
    init = get_objective(opts.pop("name")).from_dict(opts).build_model(
        fam.encoder_cls(fam.config_cls.from_dict(a["model_config"])), [LabelStream(**s) for s in a["streams"]],
        loop.TrainConfig()).state_dict()
    moved = max(float((a["model"][k] - init[k]).abs().max()) for k in init)
    assert moved > 1e-3
    la = [json.loads(x) for x in (tmp_path / "single" / checkpoint.LOG).read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "ddp" / checkpoint.LOG).read_text().splitlines()]
    assert [r["loss"] for r in la] == pytest.approx([r["loss"] for r in lb], rel=1e-4)
    da = json.loads((tmp_path / "single" / checkpoint.DONE).read_text())
    db = json.loads((tmp_path / "ddp" / checkpoint.DONE).read_text())
    assert db["world_size"] == 2 and da["world_size"] == 1
    if method == "data2vec":  # no labels: no accuracies, no held-out evaluation
        assert "masked_acc" not in la[0] and "dev_masked_frames" not in db
        return
    assert [r["masked_acc"] for r in la] == pytest.approx([r["masked_acc"] for r in lb], abs=1e-3)
    assert db["dev_masked_frames"] == da["dev_masked_frames"] > 0  # held-out eval sharded over ranks
    assert db["dev_masked_acc"] == pytest.approx(da["dev_masked_acc"], abs=0.02)
