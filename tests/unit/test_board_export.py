"""Issue 33 items 1 and 4: the board as data files, and a default that never destroys a board."""

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness import leaderboard, scores
from harness.board import export, manifest
from harness.cli import app
from harness.errors import HarnessError
from tests.unit.test_leaderboard import PRIMARY, UPSTREAMS, write_run


@pytest.fixture()
def runs(tmp_path):
    root = tmp_path / "runs"
    for (up, task), by_lr in PRIMARY.items():
        for lr, seeds in by_lr.items():
            for seed, (dev, test) in enumerate(seeds, start=1):
                write_run(root, "synth", "synth", up, task, lr, seed, dev, test, UPSTREAMS[up])
    return root


def test_board_json_loads_with_pandas_and_holds_the_selected_rows(runs, tmp_path):
    out = tmp_path / "lb"
    paths = leaderboard.build(runs, out, ["csv"])
    assert out / "board.json" in paths and out / "board.csv" in paths
    df = pd.read_json(out / "board.json", dtype=False)
    assert list(df.columns) == export.COLUMNS and len(df) == 4
    r = df[(df["upstream"] == "random:hubert_tiny") & (df["task"] == "asr")].iloc[0]
    # lr 1e-4 has the best dev mean (15.5 against 20); its two test seeds are 14 and 18
    mean, ci = scores.mean_ci95([14.0, 18.0])
    assert (r["lr"], r["mean"], r["ci95"], r["dev_mean"]) == (1e-4, mean, pytest.approx(ci), 15.5)
    assert (r["metric"], r["higher_is_better"], r["n_seeds"], r["seeds"]) == ("wer", False, 2, "1,2")
    assert r["git_sha"] == "abc123def456" and r["config_hash"].startswith("h") and r["selected_on"] == "dev"
    assert r["task_version"] == 1 and r["corpus_version"] == "unversioned"
    assert r["lr_grid"] == "0.0001:15.5,0.001:20"  # the dev mean of every lr searched, in lr order
    assert r["run_ids"] == "random-hubert_tiny-asr-lr0.0001-s1,random-hubert_tiny-asr-lr0.0001-s2"
    assert df[df["task"] == "ks"]["higher_is_better"].tolist() == [True, True]
    # no metric declarations in these runs: no absolute score, a null in the file
    assert df["score"].isna().all() and (df["score_name"] == "").all()
    csv = pd.read_csv(out / "board.csv", dtype={"seeds": str, "git_sha": str}, keep_default_na=False,
                      na_values=[""])
    assert csv[["upstream", "task", "mean", "lr", "seeds"]].equals(df[["upstream", "task", "mean", "lr", "seeds"]])


def _task_row(task, mean, ci):
    return {"corpus": "synth", "corpus_kind": "synth", "profile": "quick", "upstream": "u", "task": task,
            "primary_metric": "acc", "higher_is_better": True, "test.acc.mean": mean, "test.acc.ci": ci,
            "metric_specs": [{"name": "acc", "trivial": 0.0, "perfect": 100.0}], "n_seeds": 3,
            "seeds": [1337, 1338, 1339], "lr": 1e-3, "selected_on": "dev", "config_hashes": ["c1"],
            "git_shas": ["g1"], "run_ids": ["a", "b", "c"], "task_version": 2, "corpus_version": "synth-v2"}


def test_absolute_score_and_its_interval_are_in_the_file():
    """Seven synth tasks at 50 % accuracy (trivial 0, perfect 100) are 500 points each; a 10-point
    half-width per task is 100 points, and sqrt(7 * 100^2) / 7 = 37.80 for the mean of seven."""
    best = pd.DataFrame([_task_row(t, 50.0, 10.0) for t in ("pr", "ks", "sid", "asr", "asv", "sd", "ss")])
    t = export.board_rows(best)
    assert t["score"].tolist() == pytest.approx([500.0] * 7)
    assert t["score_ci95"].tolist() == pytest.approx([100 / math.sqrt(7)] * 7)
    assert set(t["score_name"]) == {export.SYNTH_SCORE}
    assert t["task"].tolist() == sorted(t["task"]) and set(t["task_version"]) == {2}
    # one task short: no score
    assert export.board_rows(best[best["task"] != "ss"])["score"].isna().all()


def test_parquet_reads_back_as_the_json_and_csv_table_with_the_documented_dtypes(runs, tmp_path):
    r = CliRunner().invoke(app, ["leaderboard", "--runs", str(runs), "--out", str(tmp_path / "lb"),
                                 "--format", "parquet", "--format", "csv"])
    assert r.exit_code == 0, r.output
    parquet = pd.read_parquet(tmp_path / "lb" / "board.parquet")
    assert list(parquet.columns) == export.COLUMNS and len(parquet) == 4
    assert {c: str(t) for c, t in parquet.dtypes.items()} == export.DTYPES
    # the all-null score column stays float64 in parquet; JSON needs the dtypes to say so
    assert parquet["score"].isna().all() and parquet["ci95"].notna().any()
    as_json = pd.read_json(tmp_path / "lb" / "board.json", dtype=export.DTYPES)
    floats = [c for c, t in export.DTYPES.items() if t == "float64"]
    as_csv = pd.read_csv(tmp_path / "lb" / "board.csv", dtype=export.DTYPES, keep_default_na=False,
                         na_values={c: [""] for c in floats})
    pd.testing.assert_frame_equal(parquet, as_json)
    pd.testing.assert_frame_equal(parquet, as_csv)
    best = leaderboard.select_best(leaderboard.collect(runs))
    pd.testing.assert_frame_equal(parquet, export.board_rows(best))


def test_an_empty_board_has_the_documented_dtypes_in_parquet(tmp_path):
    (j, p) = export.write_board(pd.DataFrame(), tmp_path, ["parquet"])
    empty = pd.read_parquet(p)
    assert empty.empty and {c: str(t) for c, t in empty.dtypes.items()} == export.DTYPES
    assert pd.read_json(j, dtype=export.DTYPES).empty


def test_an_unknown_format_writes_nothing(runs, tmp_path):
    best = leaderboard.select_best(leaderboard.collect(runs))
    with pytest.raises(HarnessError, match="unknown board format 'xml'"):
        export.write_board(best, tmp_path / "x", ["xml"])
    assert not (tmp_path / "x").exists()


def test_default_out_is_next_to_the_runs_and_foreign_files_survive(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["leaderboard", "--runs", str(runs), "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert (runs / "board" / "synth.md").is_file() and (runs / "board" / "board.csv").is_file()
    assert not (tmp_path / "leaderboards").exists()
    # a committed board: its pages and PNGs were written by someone else's build (no manifest)
    board = tmp_path / "leaderboards"
    theirs = [board / "synth" / "quick" / "heatmap_upstream_wavlm_raw.png", board / "synth" / "quick" / "curve_x.png",
              board / "notes.md"]
    for p in theirs:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"theirs")
    assert CliRunner().invoke(app, ["leaderboard", "--runs", str(runs), "--out", str(board)]).exit_code == 0
    assert all(p.read_bytes() == b"theirs" for p in theirs)
    assert (board / "synth" / "quick" / "heatmap_task_ks_raw.png").is_file()
    # a file this build wrote and the next one does not write again goes; theirs stay
    ours = board / "synth" / "quick" / "heatmap_upstream_random-hubert_tiny_raw.png"
    assert manifest.NAME and ours.is_file()
    for d in runs.rglob("result.json"):
        if "hubert" in str(d):
            d.unlink()
    assert CliRunner().invoke(app, ["leaderboard", "--runs", str(runs), "--out", str(board)]).exit_code == 0
    assert not ours.exists() and all(p.read_bytes() == b"theirs" for p in theirs)


def test_manifest_never_deletes_outside_the_board(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "precious.txt"
    out.mkdir()
    outside.write_text("keep")
    (out / "mine.png").write_text("x")
    deleted = manifest.replace(out, {"../precious.txt", str(outside), "mine.png", "gone.png"}, [])
    assert deleted == [(out / "mine.png").resolve()] and outside.read_text() == "keep"
    assert manifest.read(out) == set()
    (out / manifest.NAME).write_text("not json")
    assert manifest.read(out) == set()


def test_bad_format_is_refused_by_the_enum(runs, tmp_path):
    r = CliRunner().invoke(app, ["leaderboard", "--runs", str(runs), "--format", "xml"])
    assert r.exit_code == 2 and "'xml' is not one of 'csv'," in r.output
    assert "Traceback" not in r.output and not (runs / "board").exists()
