"""ML-SUPERB tasks end to end: evaluate() on the tiny synth corpus (4 languages, es few-shot) for
mono_asr, ml_asr, lid_ctc and asr_lid at the 10-minute budget.

Learning is checked on the CTC loss (every probe's) and on ml_asr's CER against an empty output
(100%). LID by a single CTC tag learns slowly (a few hundred updates before it beats the majority
class on tiny), too slow for this test; tests/unit/test_mlsuperb.py checks the decision rule."""

import json

import pytest

FAST = {"steps": 120, "eval_every": 40, "batch_seconds": 16.0}
FAST_MONO = {"steps": 90, "eval_every": 30, "batch_seconds": 16.0}  # x 3 languages
METRICS = {
    "mono_asr_10min": {"cer"},
    "ml_asr_10min": {"cer", "cer_normal", "cer_fewshot"},
    "lid_ctc_10min": {"acc", "macro_acc"},
    "asr_lid_10min": {"lid_acc", "cer_normal", "cer_fewshot"},
}


@pytest.fixture(scope="module")
def runs(tiny_corpus, tmp_path_factory):
    from harness.evaluate import evaluate
    from harness.request import EvalRequest

    root = tmp_path_factory.mktemp("mls")
    out = {}
    for task in METRICS:
        res = evaluate(EvalRequest("fbank", task, str(tiny_corpus), root / "runs", root / "cache", lrs=[2e-3],
                                   overrides=FAST_MONO if task.startswith("mono") else FAST), log=lambda *_: None)
        assert len(res) == 1
        out[task] = res[0]
    return root, out


def test_runs_finish_with_the_schema_metrics(runs):
    root, out = runs
    assert len(list((root / "runs").rglob("result.json"))) == 4
    for task, r in out.items():
        for split in ("dev", "test"):
            assert set(r["metrics"][split]) == METRICS[task], (task, split)
        prim = r["metrics"]["test"][r["primary_metric"]]
        assert prim == prim and 0 <= prim, task
        w = r["layer_weights"]["softmax"]
        assert len(w) == r["num_layers"] == 1 and abs(sum(w) - 1) < 1e-6
        budget = r["extra"]["budget"]
        assert budget["budget"] == "10min" and budget["budget_scale"] == 0.1
        assert budget["budget_seconds_scaled"] == pytest.approx(60.0)
        assert all(s <= 60.0 for lang, s in budget["train_seconds"].items() if lang != "es")
        json.dumps(r)  # plain values only


def test_languages_and_per_language_extras(runs):
    _, out = runs
    for task, r in out.items():
        per = r["extra"]["per_language_cer"]
        langs = {"en", "de", "fr"} if task.startswith("mono") else {"en", "de", "fr", "es"}
        assert set(per) == langs, task
        if task != "mono_asr_10min":
            assert r["extra"]["budget"]["train_utts"]["es"] == 5  # few-shot language: 5 utterances
    ml = out["ml_asr_10min"]
    per, test = ml["extra"]["per_language_cer"], ml["metrics"]["test"]
    assert test["cer_fewshot"] == pytest.approx(per["es"])
    # pooled over the normal languages' utterances (a weighted mean of theirs; exact pooling is
    # checked against jiwer in tests/unit/test_metric_references.py)
    normal = [per["en"], per["de"], per["fr"]]
    assert min(normal) - 1e-9 <= test["cer_normal"] <= max(normal) + 1e-9
    assert min(per.values()) - 1e-9 <= test["cer"] <= max(per.values()) + 1e-9
    for task in ("lid_ctc_10min", "asr_lid_10min"):
        assert set(out[task]["extra"]["per_language_acc" if task.startswith("lid") else "per_language_lid_acc"]) == {
            "en", "de", "fr", "es"}


def test_mono_asr_one_probe_per_language(runs):
    _, out = runs
    r = out["mono_asr_10min"]
    per, lw = r["extra"]["per_language_cer"], r["extra"]["per_language_layer_weights"]
    assert set(lw) == {"en", "de", "fr"} and all(len(w) == 1 for w in lw.values())
    assert r["metrics"]["test"]["cer"] == pytest.approx(sum(per.values()) / 3)
    assert {h["subset"] for h in r["history"]} == {"en", "de", "fr"}
    assert r["extra"]["budget"]["mono_languages"] == ["de", "en", "fr"]


def test_ctc_tasks_learn(runs):
    """The CTC loss (running mean) falls in every probe, and every transcribing task beats an
    empty output (CER 100) on dev."""
    _, out = runs
    for task, r in out.items():
        by_subset = {}
        for h in r["history"]:
            by_subset.setdefault(h.get("subset"), []).append(h["train_loss"])
        for sub, losses in by_subset.items():
            assert losses[-1] < 0.8 * losses[0], (task, sub, losses)
    for task, metric in (("mono_asr_10min", "cer"), ("ml_asr_10min", "cer_normal"), ("asr_lid_10min", "cer_normal")):
        assert out[task]["metrics"]["dev"][metric] < 95, task
