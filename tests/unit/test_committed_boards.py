"""Each committed board is exactly what its result store renders (issue 31 item 5): a clone can
re-render every board folder that ships a store (leaderboards/ and leaderboards/<name>/) and get
the same pages."""

from pathlib import Path

import pytest

from harness.board_store import board_differences, store_problems

ROOT = Path(__file__).resolve().parents[2] / "leaderboards"
BOARDS = sorted(p.parent for p in [ROOT / "store", *ROOT.glob("*/store")] if p.is_dir())


def test_the_demo_board_ships_its_store():
    assert ROOT in BOARDS


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_each_committed_board_re_renders_from_its_store(board):
    assert store_problems(board / "store") == []
    assert board_differences(board) == []
