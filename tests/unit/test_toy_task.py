"""A task is one file (docs/add-a-task.md): a toy task written into a temporary module registers
itself on import, `harness eval`'s code path probes it, and the board shows it with the metrics
it declares, read from its run folders alone."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap

import pytest

from harness import leaderboard
from harness.evaluate import evaluate
from harness.request import EvalRequest
from harness.registry import TASKS
from tests.conftest import make_tone_corpus

# What docs/add-a-task.md asks of a task file: a registered Task subclass that declares its
# metrics (tasks.base.Metric) and its version as data, a quick and a paper profile, and the
# methods its base class leaves open (here: which class an utterance is, and the scores).
TOY_TASK = '''
"""toy_tone: which of three tones an utterance holds (the tone corpus stores it as `language`)."""

from harness.registry import register_task
from tasks.base import ClassificationTask, Metric, Splits, accuracy_metric, pools_by_subset_split, require


@register_task("toy_tone")
class ToyTone(ClassificationTask):
    name = "toy_tone"
    primary_metric = "tone_acc"
    metrics = (accuracy_metric("tone_acc"), Metric("tone_err", higher_is_better=False, unit="%", perfect=0.0))
    versions = {1: "runs without a recorded version", 2: "three tones; accuracy and error rate"}
    baseline_cmvn = False  # a steady tone's CMVN'd filter banks are all zero: nothing to classify
    profiles = {"quick": dict(steps=60, lrs=(3e-3,), batch_seconds=8.0, eval_every=20, head_dim=32),
                "paper": dict(steps=60, lrs=(3e-3, 1e-3), batch_seconds=8.0, eval_every=20, head_dim=32)}

    def label(self, utt):
        return utt.language

    def prepare(self, corpus):
        splits = {s: require(corpus.select(split=s, subset="speech"), self.name, corpus, f"{s} tones")
                  for s in ("train", "dev", "test")}
        classes = sorted({self.label(u) for u in splits["train"]})
        return Splits(**splits, info={"classes": classes}, pools=pools_by_subset_split(corpus, splits))

    def score(self, preds, refs, info, split):
        acc = super().score(preds, refs, info, split)["acc"]
        return {"tone_acc": acc, "tone_err": 100.0 - acc}
'''


@pytest.fixture()
def toy_task(tmp_path, monkeypatch):
    """Import the toy task file from a temporary folder into a copy of the task registry, so the
    real registry (which tests compare with tasks.MODULES and TASK_NAMES) never holds it."""
    monkeypatch.setattr(TASKS, "_items", dict(TASKS._items))
    monkeypatch.setattr(TASKS, "_meta", dict(TASKS._meta))
    path = tmp_path / "toy_tone_task.py"
    path.write_text(textwrap.dedent(TOY_TASK))
    spec = importlib.util.spec_from_file_location("toy_tone_task", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "toy_tone_task", module)
    spec.loader.exec_module(module)
    return TASKS.get("toy_tone")


def test_a_toy_task_in_its_own_module_reaches_the_board(toy_task, tmp_path):
    task = toy_task()
    # the invariants every registered task keeps (tests/unit/test_board_instrument.py)
    assert task.version == 2 and task.metric(task.primary_metric).higher_is_better is task.higher_is_better

    corpus = make_tone_corpus(tmp_path / "tones")
    res = evaluate(EvalRequest("fbank", "toy_tone", str(corpus), tmp_path / "runs", tmp_path / "cache"),
                   log=lambda *_: None)
    assert len(res) == 1
    r = res[0]
    # the declarations travel with the run: the board reads them from result.json, not from code
    assert r["task"] == "toy_tone" and r["task_version"] == 2 and r["primary_metric"] == "tone_acc"
    assert [m["name"] for m in r["metric_specs"]] == ["tone_acc", "tone_err"]
    assert r["metric_specs"][1] == {"name": "tone_err", "higher_is_better": False, "unit": "%",
                                    "perfect": 0.0, "trivial": None, "version": 1}
    acc = r["metrics"]["test"]["tone_acc"]
    assert acc > 80.0  # three tones: chance is 33 %
    assert r["metrics"]["test"]["tone_err"] == pytest.approx(100.0 - acc)
    trivial = r["extra"]["trivial_baseline"]  # Task.trivial_preds, scored by the toy's own score
    assert trivial["test"] == pytest.approx({"tone_acc": 100 / 3, "tone_err": 200 / 3})  # 2 test tones per class

    pages = leaderboard.build(tmp_path / "runs", tmp_path / "board")
    md = (tmp_path / "board" / "tones.md").read_text()
    assert (tmp_path / "board" / "tones.md") in pages
    assert "### Task toy_tone (primary: tone_acc, higher is better; task version 2)" in md
    summary = md[md.index("### Summary"):].split("\n\n")[1]
    assert "tone_acc ↑" in summary.splitlines()[0]
    assert f"{acc:.2f}" in summary  # fbank's row holds its test accuracy
    assert "test tone_err" in md  # the second declared metric has its column in the task table
    assert "| toy_tone | constant answer: the most frequent test class (aa) | tone_acc ↑ 33.33;" in md
    row = json.loads((tmp_path / "board" / "board.json").read_text())
    assert [(x["task"], x["metric"], x["task_version"]) for x in row] == [("toy_tone", "tone_acc", 2)]
