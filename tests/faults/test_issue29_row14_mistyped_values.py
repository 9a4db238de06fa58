"""Issue 29, row 14: mistyped values are refused in one line; names stay inside the runs store.

- result.json with "higher_is_better": "false" (a string, which reads as true): the board names
  it as unreadable and does not flip the direction; eval redoes that run.
- an export whose safetensors holds an int64 tensor where the model has a float parameter: one
  line naming the file and the tensor (on f051749 it was cast silently).
- an upstream named `..`: its run folder lies inside --runs (on f051749 it escaped one level).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError
from harness.evaluate import build_upstream, evaluate
from harness.request import EvalRequest
from harness.results import run_dir, slug
from tests.conftest import make_tone_corpus
from upstreams.base import WEIGHTS_FILE, export_encoder

FAST = {"steps": 4, "eval_every": 2, "batch_seconds": 8.0}


def test_row14_a_string_direction_is_refused_in_one_line(tmp_path):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4)
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    evaluate(EvalRequest("fbank", "lid", str(corpus), runs, cache, lrs=[1e-3], overrides=FAST), log=lambda *_: None)
    path = next(runs.rglob("result.json"))
    r = json.loads(path.read_text())
    assert r["higher_is_better"] is True  # accuracy
    r["higher_is_better"] = "false"
    path.write_text(json.dumps(r))
    out = CliRunner().invoke(app, ["leaderboard", "--runs", str(runs), "--out", str(tmp_path / "boards")])
    assert out.exit_code == 1 and "Traceback" not in out.output  # its only run is unreadable: nothing to show
    named = [ln for ln in out.output.splitlines() if "unreadable result" in ln]
    assert len(named) == 1 and "higher_is_better must be true or false, got 'false'" in named[0]
    lines = []
    evaluate(EvalRequest("fbank", "lid", str(corpus), runs, cache, lrs=[1e-3], overrides=FAST), log=lines.append)
    assert any("is damaged" in ln and "higher_is_better" in ln for ln in lines)
    assert json.loads(path.read_text())["higher_is_better"] is True


def test_row14_integer_weights_in_an_export_are_refused(tmp_path):
    up = build_upstream("random:hubert_tiny")
    folder = export_encoder(up.encoder, "hubert", tmp_path / "exp", name="exp")
    sd = load_file(str(folder / WEIGHTS_FILE))
    key = sorted(k for k, v in sd.items() if v.is_floating_point())[0]
    sd[key] = (sd[key] * 100).to(torch.int64)
    save_file(sd, str(folder / WEIGHTS_FILE))
    with pytest.raises(HarnessError) as e:
        build_upstream(str(folder))
    msg = str(e.value)
    assert "\n" not in msg and WEIGHTS_FILE in msg and key in msg and "int64" in msg and "float32" in msg


@pytest.mark.parametrize("name", ["..", ".", "", ".hidden", "../../etc"])
def test_row14_names_stay_inside_the_runs_store(tmp_path, name):
    root = tmp_path / "runs"
    d = run_dir(root, name, name, "lid", 1e-3, 1, "abc").resolve()
    assert root.resolve() in d.parents and len(d.relative_to(root.resolve()).parts) == 4
    assert slug(name) not in ("", ".", "..") and not slug(name).startswith(".")


def test_row14_an_upstream_named_dotdot_runs_inside_the_runs_store(tmp_path):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4)
    up = build_upstream("random:hubert_tiny")
    folder = export_encoder(up.encoder, "hubert", tmp_path / "exp", name="..")
    runs = tmp_path / "store" / "runs"
    res = evaluate(EvalRequest(str(folder), "lid", str(corpus), runs, tmp_path / "cache", lrs=[1e-3],
                               overrides={**FAST, "steps": 2}), log=lambda *_: None)[0]
    assert res["upstream"] == ".."
    (found,) = list((tmp_path / "store").rglob("result.json"))
    assert runs.resolve() in found.resolve().parents
    assert found.resolve().relative_to(runs.resolve()).parts[:3] == ("tones", "_..", "lid")
