"""The committed demo board is exactly what its result store renders (issue 31 item 5): a clone
can re-render leaderboards/synth.md from leaderboards/store/ and get the same page."""

from pathlib import Path

from harness.board_store import board_differences, store_problems

BOARD = Path(__file__).resolve().parents[2] / "leaderboards"


def test_the_demo_board_re_renders_from_its_store():
    assert store_problems(BOARD / "store") == []
    assert board_differences(BOARD) == []
