"""Issue 33 item 7: `harness eval` ends with where its runs are and what to run next, and
third-party progress bars (transformers' "Loading weights") stay out of its output."""

from pathlib import Path

from harness.cli_eval import closing_lines


def test_closing_lines_name_the_run_folders_and_the_next_command():
    results = [{"corpus": "synth", "upstream": "random:hubert_tiny", "task": "ks"}] * 3 + [
        {"corpus": "synth", "upstream": "fbank", "task": "pr"}]
    lines = closing_lines(results, Path("runs"))
    assert lines == ["run folders: runs/synth/random-hubert_tiny/ks (3 finished run(s))",
                     "run folders: runs/synth/fbank/pr (1 finished run(s))",
                     "next: harness leaderboard --runs runs   (board in runs/board)"]


def test_transformers_loading_bar_is_silenced(tmp_path, capfd):
    from harness.evaluate import build_upstream
    from tests.unit.test_source_hf import _save

    folder, _ = _save(tmp_path, "wav2vec2_group")  # runs in transformers: AutoModel.from_pretrained
    capfd.readouterr()
    up = build_upstream(f"hf:{folder}")
    out, err = capfd.readouterr()
    assert up.spec.num_layers == 3  # it loaded (2 blocks + the CNN output)
    assert "Loading weights" not in out + err and "it/s" not in out + err, err
