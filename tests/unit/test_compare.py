"""harness compare / report --format github / the CI benchmark's workflow, on hand-made run folders."""

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness import compare as cmp
from harness.cli import app
from harness.errors import HarnessError
from harness.report import write_report
from tests.unit.test_leaderboard import write_run

ROOT = Path(__file__).resolve().parents[2]


def store(root, values, seeds=3, spread=1.0):
    """Runs (one lr) whose test primary metric is value - spread, value, value + spread over 3 seeds.
    ``values``: {(upstream, task): value}; tasks asr (wer, lower is better) and ks (acc)."""
    for (up, task), v in values.items():
        for s in range(seeds):
            x = v + (s - 1) * spread if seeds > 1 else v
            write_run(root, "synth", "synth", up, task, 1e-3, s + 1, x, x, 3 if up != "fbank" else 1)
    return root


BASE = {("fbank", "asr"): 50.0, ("up", "asr"): 20.0, ("fbank", "ks"): 40.0, ("up", "ks"): 80.0}


def test_regression_beyond_intervals_is_flagged_and_noise_is_not(tmp_path):
    base = store(tmp_path / "base", BASE)
    # up/asr WER 20 -> 30 (intervals +-2.48 do not overlap: regression); up/ks 80 -> 81 (inside:
    # noise); fbank/asr 50 -> 40 (improvement); fbank/ks missing in new
    new = store(tmp_path / "new", {("fbank", "asr"): 40.0, ("up", "asr"): 30.0, ("up", "ks"): 81.0})
    cells = {(c.upstream, c.task, c.metric): c for c in cmp.compare(base, new)}
    asr = cells[("up", "asr", "wer")]
    assert asr.verdict == cmp.DOWN and asr.rule == "intervals" and asr.diff == pytest.approx(10.0)
    assert asr.base_ci == pytest.approx(4.302652729749464 * 1.0 / 3 ** 0.5)  # t_{.975,2} * s / sqrt(3)
    assert cells[("up", "ks", "acc")].verdict == cmp.SAME
    assert cells[("fbank", "asr", "wer")].verdict == cmp.UP
    assert cells[("fbank", "ks", "acc")].verdict == "missing in new"
    assert [(c.upstream, c.task) for c in cmp.regressions(list(cells.values()))] == [("up", "asr")]
    md = cmp.to_markdown(list(cells.values()))
    assert md.startswith("1 primary metric(s) regressed ▼, 1 improved ▲, 1 metric(s) missing")
    first_row = md.splitlines()[4]
    assert "| asr | up | wer ↓ (primary) |" in first_row and "**▼**" in first_row  # regressions first


def test_single_seed_uses_the_threshold(tmp_path):
    base = store(tmp_path / "base", {("up", "ks"): 80.0}, seeds=1)
    small = store(tmp_path / "small", {("up", "ks"): 78.5}, seeds=1)
    big = store(tmp_path / "big", {("up", "ks"): 77.0}, seeds=1)
    (c,) = cmp.compare(base, small)
    assert c.verdict == cmp.SAME and c.rule == "threshold 2"
    (c,) = cmp.compare(base, big)
    assert c.verdict == cmp.DOWN
    (c,) = cmp.compare(base, big, threshold=5.0)
    assert c.verdict == cmp.SAME and c.rule == "threshold 5"
    with pytest.raises(HarnessError, match="--threshold"):
        cmp.compare(base, big, threshold=float("nan"))
    with pytest.raises(HarnessError, match="no finished runs were found under .*nowhere"):
        cmp.compare(base, tmp_path / "nowhere")


def test_cli_compare_exit_code(tmp_path):
    base = store(tmp_path / "base", BASE)
    same = store(tmp_path / "same", BASE)
    worse = store(tmp_path / "worse", {**BASE, ("up", "ks"): 60.0})
    r = CliRunner().invoke(app, ["compare", str(base), str(same)])
    assert r.exit_code == 0, r.output
    assert "0 primary metric(s) regressed" in r.output
    r = CliRunner().invoke(app, ["compare", str(base), str(worse), "--out", str(tmp_path / "cmp.md")])
    assert r.exit_code == 1
    assert "**▼**" in (tmp_path / "cmp.md").read_text()


def test_github_report_shows_regressions_and_layer_weights_as_text(tmp_path, monkeypatch):
    base = store(tmp_path / "base", BASE)
    new = store(tmp_path / "new", {**BASE, ("up", "asr"): 35.0})
    out = tmp_path / "board"
    page = write_report(new, out, fmt="github", base_runs=base)
    assert page == out / "GITHUB.md"
    md = page.read_text()
    assert md.splitlines()[2].startswith("**1 regression(s)** ▼")
    # the summary row of the new store: value #rank per task
    assert "**▼**" in md and re.search(r"^\| up \|.*\| 35\.00 #1 \| 80\.00 #1 \|", md, re.M)
    # a step summary shows no image of the artifact: the task heatmaps are text tables instead.
    # up's 3 layers: asr corrected weights 3:2:1 (50, 33, 17 %), ks 1:2:3; blocks in eighths of the
    # table's top (50 %): 33.3/50 * 8 = 5.3 -> ▅, 16.7/50 * 8 = 2.7 -> ▃; * above uniform 33.3 %
    assert not re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)
    asr = md[md.index("Layer weights, asr"):]
    assert "| upstream | L0 | L1 | L2 |" in asr and "| up | █ 50* | ▅ 33 | ▃ 17 |" in asr
    assert "| up | ▃ 17 | ▅ 33 | █ 50* |" in md[md.index("Layer weights, ks"):]
    assert "| fbank |" not in asr.split("\n\n")[1]  # one layer: nothing to weigh, as in the heatmaps
    assert "The uploaded board artifact (`benchmark-board`) holds the heatmaps" in md
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    clean = write_report(new, tmp_path / "b2", fmt="github").read_text()
    assert "[The uploaded board artifact](https://github.com/o/r/actions/runs/42#artifacts)" in clean
    assert "No base store to compare with." in clean and "▼" not in clean
    with pytest.raises(HarnessError, match="unknown report format 'html'"):
        write_report(new, out, fmt="html")


def test_workflow_parses_and_calls_existing_commands():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "benchmark.yml").read_text())
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    steps = [s for job in wf["jobs"].values() for s in job["steps"]]
    uses = [s["uses"] for s in steps if "uses" in s]
    assert all(re.fullmatch(r"actions/[a-z-]+(/[a-z]+)?@[0-9a-f]{40}", u) for u in uses), uses  # test_workflow.py
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    assert sum(u.startswith("actions/cache") for u in uses) >= 2  # the venv and the run store
    scripts = "\n".join(s["run"] for s in steps if "run" in s)
    script = ROOT / "scripts" / "ci_benchmark.sh"
    assert "scripts/ci_benchmark.sh" in scripts and script.stat().st_mode & stat.S_IXUSR
    for word in re.findall(r"^\s*([A-Za-z_./-]+)", scripts, flags=re.M):
        if word in ("if", "then", "fi", "else", "base"):
            continue
        assert (ROOT / word).exists() or shutil.which(word), word
    # the script calls the CLI with options that exist
    text = script.read_text()
    assert "./run setup" in text and "harness ci" in text
    help_text = CliRunner().invoke(app, ["ci", "--help"]).output
    for opt in re.findall(r"(--[a-z-]+)", scripts):
        assert opt in help_text, opt
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
