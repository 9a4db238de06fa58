"""End to end: `harness analyze` on the tiny synth corpus through the CLI."""

import json

from typer.testing import CliRunner

from harness.cli import app


def test_analyze_writes_a_layer_analysis_run_folder(tiny_corpus, tmp_path):
    args = ["analyze", "--upstream", "random:hubert_tiny", "--corpus", str(tiny_corpus), "--runs", str(tmp_path / "runs"),
            "--cache", str(tmp_path / "cache"), "--max-frames", "3000", "--clusters", "10",
            "--measure", "cca_phone,cca_word,mi_phone,mi_speaker,probe_layer", "--probe-steps", "4"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    found = list((tmp_path / "runs").glob("synth/random-hubert_tiny/analyze/*/result.json"))
    assert len(found) == 1
    r = json.loads(found[0].read_text())
    assert r["kind"] == "layer_analysis" and r["num_layers"] == len(r["layers"]) == 5
    assert r["sample"]["frames"] == 3000 and r["seeds"]["frames"] == 0 and r["upstream_weights"]
    h_phone = r["sample"]["phone_entropy_bits"]
    for row in r["layers"]:
        assert 0 < row["cca_phone"] < 1
        assert 0 < row["cca_word"] <= 1
        assert 0 < row["mi_phone"] <= h_phone + 1e-9 and row["mi_phone_chance"] < row["mi_phone"]
        assert 0 < row["mi_speaker"] <= r["sample"]["speaker_entropy_bits"] + 1e-9
        assert 0 <= row["pr_per"] and 0 <= row["sid_acc"] <= 100
    assert {"features_s", "cca_phone_s", "kmeans_s", "mi_phone_s", "probe_layer_s", "total_s", "cpu_s"} <= set(r["timing"])
    w = r["sample"]["words"]
    assert w["kept"] > w["vocabulary"] >= 2 and w["unmatched"] < w["utterances"] and "cca_word_s" in r["timing"]
    assert "layer  cca_phone" in out.output
    again = CliRunner().invoke(app, args)  # finished: read back, not recomputed
    assert again.exit_code == 0 and json.loads(found[0].read_text())["finished_at"] == r["finished_at"]
    bad = CliRunner().invoke(app, args[:-4] + ["--measure", "cca_wrod"])
    assert bad.exit_code == 1 and "not a measure" in bad.output
