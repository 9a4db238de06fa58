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


@pytest.mark.parametrize("flag,value,code,message", [
    # enums: the parser names the option and its choices (exit 2, as for every bad choice)
    ("--cache-dtype", "int4", 2, "Invalid value for '--cache-dtype': Value error, 'int4' is not one of 'float16', 'int8'"),
    ("--extract-dtype", "fp8", 2, "Invalid value for '--extract-dtype': Value error, 'fp8' is not one of 'float32', "
                                  "'bfloat16', 'float16'"),
    ("--extract-dtype", "float16", 1, "extract_dtype float16 needs a CUDA device"),
])
def test_cache_and_extraction_precisions_are_one_line(tmp_path, flag, value, code, message):
    from tests.conftest import make_tone_corpus

    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=3)
    r = CliRunner().invoke(app, ["eval", "--upstream", "fbank", "--task", "lid", flag, value, "--corpus", str(corpus),
                                 "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")],
                           terminal_width=400)
    assert r.exit_code == code, r.output
    flat = " ".join(r.output.replace("│", " ").split())
    assert message in flat and "Traceback" not in r.output
    assert not (tmp_path / "cache" / "features").exists()


@pytest.mark.parametrize("key,value", [("cache_dtype", "int4"), ("extract_dtype", "fp8")])
def test_a_config_file_precision_outside_the_choices_is_one_line(key, value):
    """The same choices reach the config object, which a config file or a launcher fills."""
    from harness.config import CACHE_DTYPES, EXTRACT_DTYPES, EvalConfig
    from harness.errors import ConfigError

    choices = CACHE_DTYPES if key == "cache_dtype" else EXTRACT_DTYPES
    with pytest.raises(ConfigError, match=f"config key '{key}' must be one of {', '.join(choices)}, got '{value}'"):
        EvalConfig(**{key: value})
