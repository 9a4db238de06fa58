"""End to end on the tiny synth corpus: eval every task -> leaderboard -> report, via the CLI."""

import json

import pytest
from typer.testing import CliRunner

from harness.cli import app

TASKS = ["pr", "asr", "ks", "sid", "asv", "lid"]
FAST = {"steps": 30, "eval_every": 15}


@pytest.fixture(scope="module")
def board(tiny_corpus, tmp_path_factory):
    from harness.evaluate import evaluate
    from harness.leaderboard import build
    from harness.report import write_report
    from harness.request import EvalRequest

    root = tmp_path_factory.mktemp("e2e")
    for up in ("fbank", "random:hubert_tiny"):
        for task in TASKS:
            evaluate(EvalRequest(up, task, str(tiny_corpus), root / "runs", root / "cache", lrs=[3e-3], overrides=FAST),
                     log=lambda *_: None)
    paths = build(root / "runs", root / "boards")
    report = write_report(root / "runs", root / "boards")
    return root, paths, report


def test_every_run_finished_with_metrics(board):
    root, _, _ = board
    results = [json.loads(p.read_text()) for p in (root / "runs").rglob("result.json")]
    assert sorted({(r["upstream"], r["task"]) for r in results}) == sorted(
        (u, t) for u in ("fbank", "random:hubert_tiny") for t in TASKS)
    for r in results:
        m = r["metrics"]["test"][r["primary_metric"]]
        assert m == m  # not NaN
        assert len(r["layer_weights"]["softmax"]) == r["num_layers"]
        assert abs(sum(r["layer_weights"]["softmax"]) - 1) < 1e-5
        facts = r["upstream_facts"]  # what the board's summary shows, copied at eval time
        assert facts["layers"] == r["num_layers"] and (facts["params"] == 0) == (r["upstream"] == "fbank")
        # what made the number: the task's and metrics' versions and the corpus version
        from harness.evaluate import build_task

        task = build_task(r["task"])
        assert r["task_version"] == task.version >= 2 and r["corpus_version"] == "synth-v2"
        assert [m["name"] for m in r["metric_specs"]] == [m.name for m in task.metrics]
        tokens = r["extra"].get("test_output_tokens")  # transcription tasks only: (output, reference) per item
        assert (tokens is not None) == (r["task"] in ("pr", "asr"))
        assert tokens is None or all(ref > 0 and hyp >= 0 for hyp, ref in tokens.values())


def test_runs_save_their_trivial_baseline(board, tiny_corpus):
    """Each run scores its task's trivial answer on test: the most frequent test class for the
    classification tasks (its share of the test set), an empty output (100% errors) for PR/ASR,
    a constant trial score (EER 50) for ASV."""
    from collections import Counter

    from harness.data.corpora import load_corpus
    from harness.evaluate import build_task

    root, _, _ = board
    corpus = load_corpus(str(tiny_corpus))
    for p in (root / "runs").rglob("result.json"):
        r = json.loads(p.read_text())
        triv = r["extra"].get("trivial_baseline")
        if r["task"] == "asv":  # one embedding for all: every trial scores the same
            assert triv["what"] == "a constant score for every trial"
            assert triv["test"] == {"eer": 50.0, "mindcf": 1.0} and r["trivial_dev"] == 50.0
        elif r["task"] in ("pr", "asr"):
            assert triv["what"] == "empty output" and triv["test"][r["primary_metric"]] == pytest.approx(100.0)
        else:
            task = build_task(r["task"])
            splits = task.prepare(corpus)
            counts = Counter(task.target(u, splits.info) for u in splits.test)
            top = max(counts.values())
            assert triv["test"]["acc"] == pytest.approx(100 * top / sum(counts.values())), r["task"]
    md = (root / "boards" / "synth.md").read_text()
    assert "### Trivial baselines (test)" in md
    assert "| ks | constant answer: the most frequent test class (" in md and "| pr | empty output | per ↓ 100.00 |" in md
    assert "| asv | a constant score for every trial | eer ↓ 50.00" in md


def test_leaderboard_and_report(board):
    root, paths, report = board
    md = (root / "boards" / "synth.md").read_text()
    for t in TASKS:
        assert t in md
    assert "trivial answer = 0" in md and "random:hubert_tiny" in md and "task versions: " in md
    assert "| random:hubert_tiny | 1.21M | 5 | 50 Hz | none (random init) | – | " in md
    assert "| fbank | 0 | 1 | 100 Hz | none (no weights) | – | " in md
    pngs = list((root / "boards").rglob("*.png"))
    assert len(pngs) >= 4
    text = report.read_text()
    for line in text.splitlines():
        if "](" in line and ".png" in line:
            link = line.split("](")[1].split(")")[0]
            assert (report.parent / link).exists(), link


def test_cli_lists_and_fails_in_one_line(tiny_corpus, tmp_path):
    r = CliRunner().invoke(app, ["list", "tasks"])
    assert r.exit_code == 0 and set(TASKS) <= set(r.output.split())
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbnk", "--task", "pr", "--corpus", str(tiny_corpus),
                                 "--runs", str(tmp_path / "r"), "--cache", str(tmp_path / "c")])
    assert r.exit_code == 1
    assert "unknown upstream 'fbnk'" in r.output and "Traceback" not in r.output


def test_cli_eval_runs_and_skips_when_finished(tiny_corpus, tmp_path):
    args = ["eval", "--upstream", "mfcc", "--task", "lid", "--corpus", str(tiny_corpus), "--lr", "0.003",
            "--steps", "10", "--runs", str(tmp_path / "r"), "--cache", str(tmp_path / "c")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "r").rglob("result.json"))) == 1
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "skip mfcc / lid" in r.output


def test_retrained_export_with_the_same_name_is_not_skipped(tmp_path):
    """An export re-trained in place keeps its readable name; its old probe runs must not be
    taken for its new ones (the config hash covers the weights)."""
    from harness.evaluate import evaluate
    from harness.request import EvalRequest
    from tests.conftest import make_tone_corpus
    from upstreams.base import export_encoder
    from upstreams.hubert import HubertConfig, build_random_encoder

    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4)
    cfg = HubertConfig.tiny()
    request = EvalRequest(str(tmp_path / "up"), "lid", str(corpus), tmp_path / "r", tmp_path / "c", lrs=[3e-3],
                          overrides={"steps": 2, "eval_every": 2})
    export_encoder(build_random_encoder(cfg, seed=1), "hubert", tmp_path / "up", name="mine")
    first = evaluate(request, log=lambda *_: None)
    assert evaluate(request, log=lambda *_: None)[0]["run_id"] == first[0]["run_id"]  # same weights: skipped
    export_encoder(build_random_encoder(cfg, seed=2), "hubert", tmp_path / "up", name="mine")
    second = evaluate(request, log=lambda *_: None)
    assert second[0]["upstream"] == first[0]["upstream"] == "mine"
    assert second[0]["run_id"] != first[0]["run_id"]
    assert len(list((tmp_path / "r").rglob("result.json"))) == 2
