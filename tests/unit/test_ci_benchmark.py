"""harness ci's stages in order, with the heavy ones replaced by recorders: the layer analysis of
the pre-trained upstream runs before the board is built (so the board's Layer analysis section
has it), and can be turned off."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.analysis.run as analysis_run
import harness.data.synth as synth
import harness.leaderboard as leaderboard
import harness.report as report
import harness.sweep as sweep
from harness import ci


@pytest.fixture
def calls(monkeypatch):
    seen = []
    monkeypatch.setattr(synth, "generate", lambda path, size, seed: (seen.append(("corpus", size)), Path(path))[1])
    monkeypatch.setattr(sweep, "run_pretrainings", lambda recipes, corpus, runs, workers, log: (
        seen.append(("pretrain", tuple(recipes))), [Path(runs) / recipes[0]])[1])
    monkeypatch.setattr(sweep, "run_jobs", lambda jobs, workers, log: (seen.append(("probes", len(jobs))), 0)[1])
    monkeypatch.setattr(analysis_run, "analyze", lambda up, corpus, runs, cache, log: seen.append(("analyze", up)))
    monkeypatch.setattr(leaderboard, "build", lambda runs, out: seen.append(("board", str(out))))
    monkeypatch.setattr(report, "write_report", lambda runs, out, **k: (seen.append(("report",)), Path(out) / "R.md")[1])
    return seen


def test_the_analysis_runs_on_the_ci_upstream_before_the_board(calls, tmp_path):
    out = ci.benchmark(tmp_path / "runs", tmp_path / "cache", tmp_path / "board", data=tmp_path / "data",
                       log=lambda *_: None)
    kinds = [c[0] for c in calls]
    assert kinds == ["corpus", "pretrain", "probes", "analyze", "board", "report"]
    assert calls[3][1] == str(tmp_path / "runs" / ci.RECIPE / "iter1" / "upstream")
    assert out.exit_code == 0


def test_the_analysis_can_be_left_out(calls, tmp_path):
    ci.benchmark(tmp_path / "runs", tmp_path / "cache", tmp_path / "board", data=tmp_path / "data",
                 analysis=False, log=lambda *_: None)
    assert "analyze" not in [c[0] for c in calls]
