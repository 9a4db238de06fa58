"""Issue 12 item 5: the CLI checks names and values before it generates or reads a corpus."""

import pytest
from typer.testing import CliRunner

from harness.cli import app


@pytest.mark.parametrize("device,message", [
    ("gpu", "config key 'device' must be cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("cuda:7", "device 'cuda:7' asked for, but this machine has"),
])
def test_unknown_or_absent_device_is_one_line(tmp_path, device, message):
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "lid", "--device", device,
                                 "--corpus", str(tmp_path / "nowhere"), "--runs", str(tmp_path / "runs"),
                                 "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 1, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "runs").exists()


def test_corpus_help_lists_every_registered_kind():
    from harness.data.corpora import corpus_kinds

    out = CliRunner().invoke(app, ["eval", "--help"], terminal_width=400).output
    for kind in corpus_kinds():
        assert (kind if kind == "synth" else f"{kind}:DIR") in out, kind


def test_missing_corpus_folder_is_one_line(tmp_path):
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "lid", "--corpus",
                                 f"librispeech:{tmp_path / 'nowhere'}", "--runs", str(tmp_path / "runs")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "nowhere does not exist" in r.output and not (tmp_path / "runs").exists()


def test_data_prepare_builds_manifests_ahead_of_time(tmp_path):
    from tests.unit.test_corpora import make_librispeech

    root = make_librispeech(tmp_path / "ls")
    cache = tmp_path / "manifests"
    r = CliRunner().invoke(app, ["data", "prepare", f"librispeech:{root}", "--cache-dir", str(cache)])
    assert r.exit_code == 0, r.output
    (folder,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert (folder / "corpus.json").is_file()
    assert r.output.startswith("librispeech (real) in ")
    assert "speech/train:" in r.output and "skipped unreadable files: 0" in r.output
    # the next load reads the prepared manifests back (no rebuild: the folder keeps its mtime)
    mtime = (folder / "corpus.json").stat().st_mtime_ns
    assert CliRunner().invoke(app, ["data", "prepare", f"librispeech:{root}", "--cache-dir", str(cache)]).exit_code == 0
    assert (folder / "corpus.json").stat().st_mtime_ns == mtime
