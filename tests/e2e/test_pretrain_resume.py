"""A pre-training run killed with SIGKILL mid-training and resumed ends with exactly the weights
of an uninterrupted run (CPU, same seed), dropout and LayerDrop on so that RNG states matter;
for HuBERT, for WavLM with utterance and noise mixing on (the mixing draws must resume too) and
for MS-HuBERT (Swap, a label set dropped per step: the drop pattern must resume too) and for
data2vec (no labels; its EMA teacher, updated after every step, must resume too: it is in the
checkpoint's model state; its decay anneals over the whole run, so the steps after the kill
use other taus than those before)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from harness.pretrain import batches, checkpoint
from harness.pretrain.toy import make_toy_corpus
from tests.e2e.test_pretrain_ddp import METHODS, method_objective, noise_files, write_method_labels
from upstreams.hubert import HubertConfig

ROOT = Path(__file__).resolve().parents[2]
MICRO = replace(HubertConfig.tiny(), conv_channels=(32,) * 7, encoder_dim=64, encoder_layers=3, encoder_heads=4,
                encoder_ffn_dim=128, final_dim=32, dropout=0.1, attention_dropout=0.1, dropout_input=0.1,
                layerdrop=0.3)
STEPS = 60


def _spec(tmp: Path, corpus, out: Path, method: str) -> Path:
    k = write_method_labels(tmp, corpus)
    items = [asdict(batches.Item.from_utterance(u)) for u in corpus.select(split="train")]
    spec = {"train": {"steps": STEPS, "lr": 2e-3, "batch_samples": 48000, "checkpoint_every": 5, "log_every": 10,
                      "seed": 11},
            **METHODS[method], "objective": method_objective(method, k), "noise_files": noise_files(tmp),
            "model": {**MICRO.to_dict(), **({"num_buckets": 32, "max_distance": 64} if method == "wavlm" else {})},
            "num_classes": k, "items": items,
            "labels_dir": str(tmp / "labels"), "out_dir": str(out), "threads": 1}
    path = out.with_suffix(".json")
    path.write_text(json.dumps(spec))
    return path


def _run(spec: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.Popen([sys.executable, "-m", "harness.pretrain.loop", str(spec)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _weights(out: Path):
    return torch.load(out / checkpoint.CHECKPOINT, map_location="cpu", weights_only=False)


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_sigkill_then_resume_gives_the_same_weights(tmp_path, method):
    corpus = make_toy_corpus(tmp_path / "toy", n_train=10, n_dev=0, seed=1)
    full, killed = tmp_path / "full", tmp_path / "killed"
    ref = _run(_spec(tmp_path, corpus, full, method))  # uninterrupted, in parallel with the killed one
    p = _run(_spec(tmp_path, corpus, killed, method))
    deadline = time.time() + 120
    while not (killed / checkpoint.CHECKPOINT).exists():
        assert p.poll() is None, p.stdout.read()
        assert time.time() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    at_kill = _weights(killed)["step"]
    assert not (killed / checkpoint.DONE).exists() and 0 < at_kill < STEPS, at_kill

    resumed = _run(_spec(tmp_path, corpus, killed, method))
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    assert f"resuming at step {at_kill}" in out
    assert ref.wait(timeout=300) == 0, ref.stdout.read()

    a, b = _weights(full), _weights(killed)
    assert a["step"] == b["step"] == STEPS
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    if method == "data2vec":  # the teacher is in the state (so it resumed) and is its own, not a copy of the student
        t, s = a["model"]["teacher.layers.1.fc1.weight"], a["model"]["encoder.encoder.layers.1.fc1.weight"]
        assert not torch.equal(t, s)
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    # the logs agree too (the resumed run dropped the lines written after its checkpoint)
    la = [json.loads(x) for x in (full / checkpoint.LOG).read_text().splitlines()]
    lb = [json.loads(x) for x in (killed / checkpoint.LOG).read_text().splitlines()]
    assert [r["step"] for r in la] == [r["step"] for r in lb]
    assert [r["loss"] for r in la] == pytest.approx([r["loss"] for r in lb], rel=1e-9)
