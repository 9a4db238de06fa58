"""Issue 29, row 4: a feature pool built with --skip-bad is never read by a run without it.

One audio file of a schema-folder corpus corrupted: `eval --skip-bad` finishes and skips it;
the same eval without the flag on the same --cache stops with one line naming the file (on
f051749 it exited 0, reading the pool built with the skip, although its config said
skip_bad: false).
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from harness.cli import app
from tests.conftest import make_tone_corpus

BAD = "bb_001"


def _eval(tmp_path, corpus, runs, *flags):
    return CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "lid", "--corpus", str(corpus),
                                    "--steps", "4", "--runs", str(tmp_path / runs),
                                    "--cache", str(tmp_path / "cache"), *flags])


def test_row04_a_pool_built_with_skips_is_not_used_without_skip_bad(tmp_path):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4, bad_ids=(BAD,))
    r = _eval(tmp_path, corpus, "runs_skip", "--skip-bad")
    assert r.exit_code == 0, r.output
    res = json.loads(next((tmp_path / "runs_skip").rglob("result.json")).read_text())
    assert res["skipped_bad"] == 1 and BAD in res["skipped_files"]

    r = _eval(tmp_path, corpus, "runs_strict")
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and f"{BAD}.wav" in lines[0], lines
    assert list((tmp_path / "runs_strict").rglob("result.json")) == []
