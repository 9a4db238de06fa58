"""Issue 32 item 7: one pre-training front end, and names and values checked before any corpus
work for `pretrain`, `ablate` and `data` (as `eval` does, tests/unit/test_cli_checks.py).

`python -m harness.pretrain` (torchrun's entry) is `harness pretrain` itself; the tests compare
the options each one's --help lists, and run the module entry in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _py(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _options(help_text: str) -> set:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text))


def test_module_entry_and_typer_command_take_the_same_options(tmp_path):
    typer_help = CliRunner().invoke(app, ["pretrain", "--help"], terminal_width=200).output
    r = subprocess.run([sys.executable, "-m", "harness.pretrain", "--help"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "python -m harness.pretrain" in r.stdout  # its own program name
    opts = _options(typer_help)
    assert opts == _options(r.stdout)
    # the options both front ends had before, --threads (once argparse's only) included
    assert {"--recipe", "--corpus", "--out", "--iterations", "--noise", "--set", "--export-every",
            "--threads"} <= opts


def test_misspelt_recipe_fails_before_torch_and_corpus(tmp_path):
    """`harness pretrain --recipe hubert_tinny` (default corpus synth, which would be generated):
    one line with a suggestion, exit 1, no corpus folder, and torch never imported (what keeps it
    well under 3 s)."""
    r = _py("import sys\nfrom harness.pretrain.__main__ import main\n"
            "rc = main(['--recipe', 'hubert_tinny'])\n"
            "print('RC', rc, 'TORCH', 'torch' in sys.modules)\n", tmp_path)
    assert "RC 1 TORCH False" in r.stdout, r.stdout + r.stderr
    err = [ln for ln in (r.stdout + r.stderr).splitlines() if "error:" in ln]
    assert len(err) == 1 and "unknown recipe 'hubert_tinny' (did you mean hubert_tiny" in err[0]
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, message", [
    (["--recipe", "hubert_tinny"], "did you mean hubert_tiny"),
    (["--recipe", "nowhere/r.yaml"], "recipe file nowhere/r.yaml does not exist"),
    (["--set", "train.stepz=3"], "did you mean steps"),
    (["--set", "train.steps=-3"], "train.steps must be >= 1, got -3"),
    (["--set", "modle.preset=tiny"], "TABLE one of"),
    (["--iterations", "0"], "--iterations must be an integer >= 1, got 0"),
    (["--export-every", "-1"], "--export-every -1: must be >= 0"),
    (["--threads", "-2"], "--threads -2: must be >= 0"),
    (["--noise", "no_such_noise"], "--noise no_such_noise: no such folder"),
    (["--pretrain-seed", "-1"], "pre-training seed must be an integer >= 0, got -1"),
])
def test_pretrain_checks_names_and_values_before_corpus_work(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)  # the default corpus `synth` would be generated under data/synth
    r = CliRunner().invoke(app, ["pretrain", *args])
    assert r.exit_code == 1, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_module_entry_refuses_to_generate_synth_under_torchrun(tmp_path, monkeypatch):
    """Every torchrun rank runs the command: none may generate the synth corpus."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    r = CliRunner().invoke(app, ["pretrain", "--recipe", "hubert_ci", "--corpus", "synth:tiny"])
    assert r.exit_code == 1 and "run `harness data synth` first" in r.output, r.output
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("args, message", [
    (["ablate", "mshubret"], "unknown ablation 'mshubret'"),
    (["ablate", "mshubert", "--workers", "0"], "--workers must be an integer >= 1, got 0"),
    (["ablate", "wavlm", "--pretrain-seeds", "0"], "--pretrain-seeds must be an integer >= 1, got 0"),
    (["data", "synth", "--size", "huge"], "huge"),
    (["data", "synth", "--size", "tiny", "--workers", "0"], "workers must be at least 1"),
])
def test_ablate_and_data_check_before_corpus_work(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, args)
    assert r.exit_code != 0, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_ablation_recipes_are_loaded_before_corpus_work(tmp_path, monkeypatch):
    """A bad recipe inside an ablation fails before the corpus: shown by an ablation whose second
    recipe is misspelt."""
    from harness import ablation

    bad = ablation.Ablation(**{**ablation.get_ablation("mshubert").__dict__,
                               "recipes": ("mshubert_tiny", "mshubert_tiny_noswapp")})
    monkeypatch.setitem(ablation.ABLATIONS, "bad", bad)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["ablate", "bad"])
    assert r.exit_code == 1 and "did you mean mshubert_tiny_noswap" in r.output, r.output
    assert not (tmp_path / "data").exists()
