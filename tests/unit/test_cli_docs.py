"""Issue 32 item 8 (CLI part): docs/cli.md is what the typer app gives, every option has help,
choices are enums that --help lists and that agree with the lists they repeat, --version, and
`harness list recipes`."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from harness import __version__
from harness import cli_options
from harness.cli import app


def _commands(group, prefix="harness"):
    """(name, click command) of every command of the app, groups included, recursively."""
    yield prefix, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, f"{prefix} {name}")


def test_docs_cli_md_is_current():
    from harness.cli_docs import PAGE, main, render

    assert PAGE.read_text() == render(), "docs/cli.md is stale: run python -m harness.cli_docs"
    assert main(["--check"]) == 0


def test_the_docs_page_names_every_command_and_option():
    from harness.cli_docs import render

    page = render()
    for name, cmd in _commands(typer.main.get_command(app)):
        assert f"`{name}`" in page or name == "harness", name
        for p in cmd.params:
            for opt in getattr(p, "opts", []):
                if opt.startswith("--"):
                    assert f"`{opt}" in page, (name, opt)


def test_every_option_and_argument_has_help():
    missing = [f"{name} {p.name}" for name, cmd in _commands(typer.main.get_command(app))
               for p in cmd.params if not (getattr(p, "help", None) or "").strip()]
    assert missing == []


def test_enums_agree_with_the_lists_they_repeat():
    from harness.board.export import FORMATS as BOARD_FORMATS
    from harness.config import CACHE_DTYPES, EXTRACT_DTYPES
    from harness.extraction import DTYPES
    from harness.data.synth_spec import SIZES
    from harness.export import FORMATS as EXPORT_FORMATS
    from harness.launch import LAUNCHERS
    from harness.registry import TASKS, load_all
    from harness.report import FORMATS as REPORT_FORMATS

    assert [e.value for e in cli_options.Launcher] == list(LAUNCHERS)
    assert {e.value for e in cli_options.ReportFormat} == set(REPORT_FORMATS)
    assert [e.value for e in cli_options.SynthSize] == list(SIZES)
    assert [e.value for e in cli_options.ExportFormat] == list(EXPORT_FORMATS)
    assert [e.value for e in cli_options.BoardFormat] == list(BOARD_FORMATS)
    assert [e.value for e in cli_options.CacheDtype] == list(CACHE_DTYPES)
    assert [e.value for e in cli_options.ExtractDtype] == list(EXTRACT_DTYPES) == list(DTYPES)
    load_all()
    for name in TASKS.names():
        task = TASKS.get(name)
        assert set(task.profiles) == {e.value for e in cli_options.Profile}, name


@pytest.mark.parametrize("command, shown", [
    (["eval"], ["quick|paper", "local|slurm", "[cpu|cuda|cuda:N|mps]"]),
    (["report"], ["markdown|github"]),
    (["ci"], ["markdown|github"]),
    (["export"], ["hf|s3prl"]),
    (["leaderboard"], ["csv|json|parquet"]),
    (["data", "synth"], ["tiny|small|medium"]),
    (["list"], ["upstreams|tasks|recipes"]),
])
def test_help_lists_the_choices(command, shown):
    out = CliRunner().invoke(app, [*command, "--help"], terminal_width=250).output
    flat = re.sub(r"\s+", "", out)
    for s in shown:
        assert s in flat, (command, s)


@pytest.mark.parametrize("args, choices", [
    (["eval", "--upstream", "fbank", "--task", "lid", "--profile", "papr"], "'quick', 'paper'"),
    (["eval", "--upstream", "fbank", "--task", "lid", "--launcher", "sge"], "'local', 'slurm'"),
    (["report", "--format", "html"], "'markdown', 'github'"),
    (["data", "synth", "--size", "huge"], "'tiny', 'small', 'medium'"),
])
def test_a_value_outside_the_choices_is_refused_by_name(tmp_path, monkeypatch, args, choices):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, args, terminal_width=250)
    assert r.exit_code == 2 and choices in re.sub(r"[\s│]+", " ", r.output), r.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_version():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"harness {__version__}"


def test_list_recipes():
    from harness.pretrain.recipe_files import available_recipes

    r = CliRunner().invoke(app, ["list", "recipes"])
    assert r.exit_code == 0, r.output
    rows = {ln.split()[0]: ln.split() for ln in r.output.splitlines()}
    assert sorted(rows) == sorted(available_recipes())
    assert rows["mshubert_tiny_noswap"][1:3] == ["base", "mshubert_tiny"]
    assert rows["hubert_tiny"][1:3] == ["base", "-"]
    assert "HuBERT on the CPU" in " ".join(rows["hubert_tiny"])
