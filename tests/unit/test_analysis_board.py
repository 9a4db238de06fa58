"""The board's Layer analysis section (harness/board/analysis_section.py) on hand-made runs."""

import matplotlib.image as mpimg

from harness import leaderboard
from harness.board import analysis_section as A
from harness.results import atomic_write_json
from tests.unit.test_leaderboard import weights, write_run


def _analysis(root, upstream, finished_at, cca, measures=("cca_phone", "mi_phone", "mi_speaker")):
    layers = [{"layer": i, "cca_phone": cca[i], "mi_phone": 1.0 + i, "mi_phone_norm": (1.0 + i) / 5.5,
               "mi_phone_chance": 0.3, "mi_speaker": 0.5, "mi_speaker_norm": 0.5 / 3, "mi_speaker_chance": 0.03}
              for i in range(len(cca))]
    res = {"kind": "layer_analysis", "run_id": f"{upstream}/analyze/{finished_at[-2:]}", "corpus": "synth",
           "upstream": upstream, "num_layers": len(cca), "measures": list(measures), "layers": layers,
           "settings": {"clusters": 50, "keep_variance": 0.99}, "finished_at": finished_at, "git_sha": "abc",
           "sample": {"frames": 1000, "utterances": 9, "phones": 40, "speakers": 8, "phone_entropy_bits": 5.5,
                      "speaker_entropy_bits": 3.0},
           "timing": {"cca_phone_s": 1.5, "kmeans_s": 2.0, "total_s": 9.0, "cpu_s": 7.0}}
    atomic_write_json(root / "synth" / upstream.replace(":", "-") / "analyze" / finished_at[-2:] / "result.json", res)


def test_board_shows_the_newest_analysis_next_to_the_weighted_sum_weights(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "synth", "synth", "random:hubert_tiny", "ks", 1e-2, 1, 80.0, 81.0, 5)
    _analysis(root, "random:hubert_tiny", "2026-01-01T00:00:01", [0.9, 0.8, 0.7, 0.6, 0.5])
    _analysis(root, "random:hubert_tiny", "2026-01-01T00:00:02", [0.11, 0.22, 0.33, 0.44, 0.55])
    s = leaderboard.scan(root)
    assert len(s.runs) == 1 and s.broken == []  # analyses are not probe runs, and not broken ones
    paths = leaderboard.build(root, tmp_path / "boards")
    page = (tmp_path / "boards" / "synth.md").read_text()
    sec = page.split("## Layer analysis", 1)[1].split("## Run details", 1)[0]
    w = weights(5, "ks")
    for i, c in enumerate([0.11, 0.22, 0.33, 0.44, 0.55]):  # the newer analysis, with the board's ks weights
        assert f"| {i} | {c:.3f} | {1.0 + i:.3f} | 0.300 | 0.500 | 0.030 | {100 * w[i]:.1f} |" in sec
    assert "0.900" not in sec
    fig = tmp_path / "boards" / "synth" / "analysis_random-hubert_tiny.png"
    assert fig in paths and mpimg.imread(fig).shape[2] in (3, 4)
    assert "(synth/analysis_random-hubert_tiny.png)" in sec
    assert "kmeans 2" in sec and "(CPU 7.0)" in sec


def test_no_section_without_analyses_and_stale_figures_are_removed(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "synth", "synth", "random:hubert_tiny", "ks", 1e-2, 1, 80.0, 81.0, 5)
    stale = tmp_path / "boards" / "synth" / "analysis_gone.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    leaderboard.build(root, tmp_path / "boards")
    assert "## Layer analysis" not in (tmp_path / "boards" / "synth.md").read_text()
    assert not stale.exists()


def test_a_store_of_analyses_only_gets_a_page_and_an_empty_store_still_fails(tmp_path):
    import pytest

    from harness.errors import HarnessError

    root = tmp_path / "runs"
    with pytest.raises(HarnessError, match="no finished runs were found under"):
        leaderboard.build(root, tmp_path / "boards")
    _analysis(root, "random:hubert_tiny", "2026-01-01T00:00:01", [0.11, 0.22, 0.33])
    paths = leaderboard.build(root, tmp_path / "boards")
    page = (tmp_path / "boards" / "synth.md").read_text()
    assert page.startswith("# Layer analysis: synth") and "No finished probe runs on synth" in page
    assert "| 2 | 0.330 | 3.000 | 0.300 | 0.500 | 0.030 |" in page  # no weight columns: no probes
    assert "weight" not in page.split("| layer |", 1)[1].split("\n", 1)[0]
    assert tmp_path / "boards" / "synth" / "analysis_random-hubert_tiny.png" in paths
    assert not (tmp_path / "boards" / "board.json").exists()
    # a probed corpus beside an analysed-only one: each gets its own page
    write_run(root, "other", "synth", "random:hubert_tiny", "ks", 1e-2, 1, 80.0, 81.0, 5)
    leaderboard.build(root, tmp_path / "boards2")
    assert (tmp_path / "boards2" / "synth.md").read_text().startswith("# Layer analysis: synth")
    assert (tmp_path / "boards2" / "other.md").read_text().startswith("# Leaderboard: other")


def test_board_weights_leave_out_single_layer_and_mismatched_rows():
    import pandas as pd

    rows = pd.DataFrame([{"upstream": "u", "task": "pr", "lw_softmax": [0.2, 0.8]},
                         {"upstream": "u", "task": "pr", "lw_softmax": [0.4, 0.6]},
                         {"upstream": "u", "task": "sid", "lw_softmax": [1.0]},
                         {"upstream": "v", "task": "pr", "lw_softmax": [0.5, 0.5]}])
    got = A.board_weights(rows, "u")
    assert list(got) == ["pr"]
    assert abs(got["pr"][0] - 0.3) < 1e-12 and abs(got["pr"][1] - 0.7) < 1e-12
