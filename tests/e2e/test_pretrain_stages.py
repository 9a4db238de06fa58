"""A recipe with stages (WavLabLM: a HuBERT teacher, WavLM denoising stage 1 on every language,
stage 2 continuing on a language-balanced subset) run by `python -m harness.pretrain`, killed
with SIGKILL inside stage 2 and resumed, ends with exactly the weights of an uninterrupted run;
stage 2 starts from stage 1's weights and trains on the balanced subset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from harness.pretrain import checkpoint, loop
from harness.pretrain.toy import make_toy_corpus
from tests.e2e.test_pretrain_ddp import noise_files
from upstreams.hubert import HubertConfig

ROOT = Path(__file__).resolve().parents[2]
MICRO = replace(HubertConfig.tiny(), conv_channels=(32,) * 7, encoder_dim=64, encoder_layers=2, encoder_heads=4,
                encoder_ffn_dim=128, final_dim=32, dropout=0.1, attention_dropout=0.1, dropout_input=0.1,
                layerdrop=0.0)
STAGE2_STEPS = 40


def _recipe(tmp: Path) -> Path:
    m = {k: (list(v) if isinstance(v, tuple) else v) for k, v in MICRO.to_dict().items()}
    train = {"steps": 6, "lr": 2e-3, "batch_samples": 48000, "checkpoint_every": 3, "log_every": 3, "seed": 3}
    recipe = tmp / "stages.yaml"
    recipe.write_text(json.dumps({  # JSON is YAML
        "name": "stages", "data": {"min_seconds": 1.0},
        "model": {"family": "wavlm", "preset": "tiny", **m, "num_buckets": 32, "max_distance": 64},
        "objective": {"name": "denoising", "mix_prob": 1.0, "noise_prob": 0.5},
        "cluster": {"k": 10, "sample_fraction": 1.0, "niter": 10}, "train": train,
        "iterations": [
            {"model": {"family": "hubert", "preset": "tiny", **m}, "objective": {"name": "masked_prediction"},
             "features": {"source": "mfcc"}},
            {"features": {"source": "layer", "layer": 1}},
            {"continue": True, "data": {"balance": "language", "per_language": 3},
             "train": {"steps": STAGE2_STEPS, "lr": 1e-4, "checkpoint_every": 2, "warmup_frac": 0.0}}]}))
    return recipe


def _run(recipe: Path, corpus: Path, out: Path, noise: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.Popen([sys.executable, "-m", "harness.pretrain", "--recipe", str(recipe), "--corpus",
                             str(corpus), "--out", str(out), "--threads", "1", "--noise", str(noise)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_stage_two_continues_stage_one_and_resumes_across_the_boundary(tmp_path):
    # languages aa (8 train utterances), bb (4), cc (2): per_language 3 keeps 3 + 3 + 2
    corpus = make_toy_corpus(tmp_path / "toy", n_train=14, n_dev=3, seed=4,
                             languages=("aa", "bb", "aa", "cc", "aa", "bb", "aa"))
    noise_files(tmp_path)
    recipe = _recipe(tmp_path)
    full, killed = tmp_path / "full", tmp_path / "killed"
    ref = _run(recipe, corpus.root, full, tmp_path / "noise")
    p = _run(recipe, corpus.root, killed, tmp_path / "noise")
    ck = killed / "iter3" / "train" / checkpoint.CHECKPOINT
    deadline = time.time() + 240
    while not ck.exists():
        assert p.poll() is None, p.stdout.read()
        assert time.time() < deadline, "stage 2 wrote no checkpoint within 240 s"
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    at_kill = torch.load(ck, map_location="cpu", weights_only=False)["step"]
    assert 0 < at_kill < STAGE2_STEPS and not (killed / "iter3" / "train" / checkpoint.DONE).exists()
    resumed = _run(recipe, corpus.root, killed, tmp_path / "noise")
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    assert f"resuming at step {at_kill}" in out and "stages-it3" in out
    assert ref.wait(timeout=300) == 0, ref.stdout.read()

    a = torch.load(full / "iter3" / "train" / checkpoint.CHECKPOINT, map_location="cpu", weights_only=False)
    b = torch.load(ck, map_location="cpu", weights_only=False)
    assert a["step"] == b["step"] == STAGE2_STEPS and a["family"] == "wavlm" and a["objective"] == "denoising"
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k

    # stage 2 continued stage 1 (its weights stay close to stage 1's, far from a fresh init) ...
    s1 = checkpoint.final_model_state(full / "iter2" / "train")
    s2 = a["model"]
    torch.manual_seed(0)
    fresh = {k: v for k, v in _fresh_model(a).state_dict().items()}
    moved = sum(float((s2[k] - s1[k]).abs().sum()) for k in s1)
    from_fresh = sum(float((s2[k] - fresh[k]).abs().sum()) for k in s1)
    assert 0 < moved < 0.2 * from_fresh, (moved, from_fresh)
    # ... on its labels (no clustering of its own) and on the balanced subset
    assert not (full / "iter3" / "labels").exists() and not (full / "iter3" / "clusters").exists()
    summary = json.loads((full / "iter3" / "summary.json").read_text())
    assert summary["continues"] == 2 and summary["labels"].endswith("iter2/labels/main")
    assert f"continues iteration 2 on its labels, {STAGE2_STEPS} steps on 8 utterances" in out
    # the export is a WavLM upstream that harness eval can load by path
    from upstreams.base import load_exported

    up = load_exported(full / "iter3" / "upstream")
    assert up.spec.family == "wavlm" and up.spec.name == "stages-it3"


def _fresh_model(ck: dict):
    from harness.pretrain.objectives import get_objective
    from harness.pretrain.objectives.base import LabelStream
    from upstreams.base import get_family

    fam = get_family(ck["family"])
    return get_objective(ck["objective"])().build_model(
        fam.encoder_cls(fam.config_cls.from_dict(ck["model_config"])), [LabelStream("main", ck["num_classes"])],
        loop.TrainConfig())
