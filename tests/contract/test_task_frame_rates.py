"""Every task runs on 40 ms and 80 ms upstreams (CV-HuBERT's rates) on the tiny synth corpus and
gives finite metrics: nothing downstream assumes 20 ms frames.

The upstreams are random-init HuBERTs of the `tiny_40ms` / `tiny_80ms` CNN geometry with 32
channels and 2 layers, exported and evaluated by path (the registered tiny presets give the same
frames; their 128-channel CNN made feature extraction take most of a minute per rate here). Two
probe updates each: this checks shapes, alignment and scoring at every rate, not learning
(tests/e2e covers learning at 20 ms). ML-SUPERB tasks run at the 10 min budget only: the 1 h
variants are the same code on more utterances."""

import json
import math
from dataclasses import replace

import pytest

from harness.registry import TASKS, load_all
from upstreams.hubert import HubertConfig

load_all()
RATES_MS = [40, 80]
TASK_NAMES = [t for t in TASKS.names() if not t.endswith("_1h")]
FAST = {"steps": 2, "eval_every": 2}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    from upstreams.base import export_encoder
    from upstreams.hubert import build_random_encoder

    root = tmp_path_factory.mktemp("rates")
    for ms in RATES_MS:
        cfg = replace(HubertConfig.tiny(), conv_channels=(32,) * 7, encoder_dim=32, encoder_layers=2,
                      encoder_ffn_dim=64).at_frame_ms(ms)
        export_encoder(build_random_encoder(cfg), "hubert", root / f"up{ms}", f"random-micro-{ms}ms")
    return root


@pytest.mark.parametrize("ms", RATES_MS)
@pytest.mark.parametrize("task", TASK_NAMES)
def test_task_runs_at_coarse_frame_rates(ms, task, tiny_corpus, roots):
    from harness.evaluate import evaluate
    from harness.request import EvalRequest

    res = evaluate(EvalRequest(str(roots / f"up{ms}"), task, str(tiny_corpus), roots / "runs", roots / "cache",
                               lrs=[3e-3], overrides=FAST), log=lambda *_: None)
    assert len(res) == 1
    r = res[0]
    assert r["upstream"] == f"random-micro-{ms}ms" and r["num_layers"] == 3
    spec = json.loads(next((roots / "runs").rglob(f"{r['run_id'].split('/')[-1]}/config.json")).read_text())
    assert spec["upstream_spec"]["frame_rate_hz"] == 1000 / ms
    for split in ("dev", "test"):
        value = r["metrics"][split][r["primary_metric"]]
        assert math.isfinite(value), (split, r["metrics"])
    assert len(r["layer_weights"]["softmax"]) == 3
    floor = r["extra"].get("ctc_floor_test")
    if task == "pr" and floor is not None:  # the per-frame PR head's cap at this rate, when it binds
        assert floor["emit_rate_hz"] == 1000 / ms and 0 < floor["per"] <= r["metrics"]["test"]["per"] + 1e-9
    elif task != "pr":
        assert floor is None  # only PR's metric is the error rate of the tokens its head emits
