"""python -m harness.pretrain (torchrun's entry: torchrun --nproc_per_node G -m harness.pretrain ...).

It is `harness pretrain` itself: the command and its options are defined once, in
harness/cli_pretrain.py (registered on the app by harness/cli.py), and run here under another
program name."""

from __future__ import annotations

from typing import List, Optional


def command():
    """The click command of `harness pretrain` (harness/cli_pretrain.py, on the app of harness/cli.py)."""
    from typer.main import get_command

    from harness.cli import app

    return get_command(app).commands["pretrain"]


def main(argv: Optional[List[str]] = None) -> int:
    """Run `harness pretrain` with `argv` (default: sys.argv[1:]); returns the exit status."""
    try:
        command().main(args=argv, prog_name="python -m harness.pretrain", standalone_mode=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
