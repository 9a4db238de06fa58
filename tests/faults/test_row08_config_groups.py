"""Row 8 of issue 15: runs of one upstream and task made with different configs (here: --steps)
are not seeds of one experiment; the leaderboard shows the newest config's runs alone and says
how many older configs it set aside, instead of averaging them into a huge interval."""

import json

from typer.testing import CliRunner

from harness import leaderboard
from harness.cli import app
from tests.conftest import make_tone_corpus


def test_row08_runs_of_different_configs_are_not_pooled_as_seeds(tmp_path):
    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=6)
    base = ["eval", "--upstream", "fbank", "--task", "lid", "--corpus", str(corpus), "--lr", "0.003",
            "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")]
    for steps in ("4", "20"):
        r = CliRunner().invoke(app, [*base, "--steps", steps])
        assert r.exit_code == 0, r.output
    results = {json.loads(p.read_text())["timing"]["steps"]: json.loads(p.read_text())
               for p in (tmp_path / "runs").rglob("result.json")}
    assert sorted(results) == [4, 20] and results[4]["config_hash"] != results[20]["config_hash"]

    best = leaderboard.select_best(leaderboard.collect(tmp_path / "runs"))
    assert len(best) == 1
    row = best.iloc[0]
    assert row["n_seeds"] == 1 and row["run_ids"] == [results[20]["run_id"]]  # the newest config alone
    assert row["test.acc.mean"] == results[20]["metrics"]["test"]["acc"]
    assert row["set_aside"] == {results[4]["config_hash"]: 1}

    r = CliRunner().invoke(app, ["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "boards")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "boards" / "tones.md").read_text()
    assert f"fbank: 1 older config(s) set aside (1 run(s), config hash {results[4]['config_hash']})" in page
    lid_row = next(ln for ln in page.split("### Task lid")[1].splitlines() if ln.startswith("| fbank |"))
    # one seed: the bare mean, no interval, let alone a pooled one (lid's † marks its departure:
    # it has no reference recipe)
    assert lid_row.split("|")[2].split("⚠")[0].strip() == f"{results[20]['metrics']['test']['acc']:.2f} †"
    details = page.split("Run details")[-1]
    assert results[20]["run_id"] in details and results[4]["run_id"] not in details
