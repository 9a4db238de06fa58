"""The `harness` command line: thin wrappers over library functions. The commands live in
harness/cli_data.py, cli_eval.py, cli_pretrain.py and cli_board.py (what they share in
harness/cli_options.py); this module makes the typer app and registers them."""

from __future__ import annotations

import sys

import typer

from harness.cli_board import ci, compare, leaderboard, report
from harness.cli_data import data_prepare, data_synth, data_verify, list_cmd
from harness.cli_eval import analyze, eval_cmd, export_cmd
from harness.cli_pretrain import ablate, pretrain

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Pre-train, probe and rank self-supervised speech models.")
data_app = typer.Typer(no_args_is_help=True, help="Make or inspect corpora.")
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        from harness import __version__

        print(f"harness {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="print the harness version and exit")):
    """Pre-train, probe and rank self-supervised speech models."""


# the order of registration is the order of `harness --help` and docs/cli.md
app.command("list")(list_cmd)
data_app.command("synth")(data_synth)
data_app.command("prepare")(data_prepare)
data_app.command("verify")(data_verify)
app.command("eval")(eval_cmd)
app.command("export")(export_cmd)
app.command()(pretrain)
app.command()(ablate)
app.command()(leaderboard)
app.command()(report)
app.command()(compare)
app.command()(analyze)
app.command()(ci)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
