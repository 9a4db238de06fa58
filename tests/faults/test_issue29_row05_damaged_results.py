"""Issue 29, row 5: a damaged result.json is named by the board and redone by eval.

Two seeds; one seed's result.json truncated, stripped of its metrics, or unreadable by the user:
`harness leaderboard` names that run (one line to the terminal, a section on the page) instead
of showing the other seed alone without a word, and the eval rerun says in one line that the
result is damaged and redoes it (on f051749: exit 0 and no notice on the board; the rerun died
in a JSONDecodeError traceback, or took a result without metrics for finished forever).
"""

from __future__ import annotations

import json
import pathlib

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.evaluate import evaluate
from harness.request import EvalRequest
from tests.conftest import make_tone_corpus

FAST = {"steps": 4, "eval_every": 2, "batch_seconds": 8.0}


def _damage(path: pathlib.Path, how: str, monkeypatch) -> None:
    if how == "truncated":
        path.write_text(path.read_text()[:200])
    elif how == "no_metrics":
        r = json.loads(path.read_text())
        del r["metrics"]
        path.write_text(json.dumps(r))
    else:  # unreadable: chmod does not stop root, so the read raises what the kernel would
        real = pathlib.Path.read_text

        def read_text(self, *a, **k):
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *a, **k)

        monkeypatch.setattr(pathlib.Path, "read_text", read_text)


@pytest.mark.parametrize("how", ["truncated", "no_metrics", "unreadable"])
def test_row05_a_damaged_result_is_named_on_the_board_and_redone(tmp_path, monkeypatch, how):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4)
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    first = evaluate(EvalRequest("fbank", "lid", str(corpus), runs, cache, seeds=2, lrs=[1e-3], overrides=FAST),
                     log=lambda *_: None)
    damaged = sorted(runs.rglob("result.json"))[1]
    _damage(damaged, how, monkeypatch)

    r = CliRunner().invoke(app, ["leaderboard", "--runs", str(runs), "--out", str(tmp_path / "boards")])
    assert r.exit_code == 0, r.output
    named = [ln for ln in r.output.splitlines() if "unreadable result" in ln]
    assert len(named) == 1 and damaged.parent.name in named[0], r.output
    page = (tmp_path / "boards" / "tones.md").read_text()
    assert "## Unreadable results" in page and damaged.relative_to(runs).as_posix() in page

    lines = []  # an unreadable result is redone too: the new one replaces it by a rename
    again = evaluate(EvalRequest("fbank", "lid", str(corpus), runs, cache, seeds=2, lrs=[1e-3], overrides=FAST),
                     log=lines.append)
    monkeypatch.undo()
    said = [ln for ln in lines if "is damaged" in ln]
    assert len(said) == 1 and str(damaged) in said[0] and "running it again" in said[0]
    assert sum(ln.startswith("skip ") for ln in lines) == 1  # the sound seed is not redone
    redone = json.loads(damaged.read_text())
    assert redone["seed"] == first[1]["seed"]
    assert redone["metrics"]["test"] == pytest.approx(first[1]["metrics"]["test"])
    assert sorted(x["seed"] for x in again) == [first[0]["seed"], first[1]["seed"]]
