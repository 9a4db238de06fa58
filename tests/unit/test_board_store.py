"""A committed board re-rendered from its result store matches exactly, and every kind of drift
is named (harness.board_store) - on a tiny hand-made store."""

from __future__ import annotations

import json

import pytest

from harness.board_store import board_differences, copy_store, first_difference, store_problems
from harness.errors import HarnessError
from harness.leaderboard import build
from tests.unit.test_leaderboard import PRIMARY, UPSTREAMS, write_run


@pytest.fixture()
def board(tmp_path):
    """A board folder whose store holds 2 upstreams x 2 tasks x 2 lrs x 2 seeds, its page built
    from that store as a session would commit it."""
    b = tmp_path / "leaderboards" / "tiny"
    store = b / "store"
    for (up, task), by_lr in PRIMARY.items():
        for lr, seeds in by_lr.items():
            for seed, (dev, test) in enumerate(seeds, start=1):
                write_run(store, "synth", "synth", up, task, lr, seed, dev, test, UPSTREAMS[up])
    build(store, b)
    return b


def test_a_board_rerenders_exactly_from_its_store(board):
    assert (board / "synth.md").is_file()
    assert board_differences(board) == []
    assert store_problems(board / "store") == []
    # the store holds result.json and config.json only: 2 x 2 x 2 x 2 runs, two files each
    assert len([p for p in (board / "store").rglob("*") if p.is_file()]) == 32


def test_a_hand_edited_number_is_caught_with_its_line(board):
    page = board / "synth.md"
    text = page.read_text()
    lines = text.split("\n")
    i = next(k for k, ln in enumerate(lines) if "fbank" in ln and "±" in ln)
    edited = lines[i].replace("±", "+-", 1)
    page.write_text("\n".join(lines[:i] + [edited] + lines[i + 1:]))
    (diff,) = board_differences(board)
    assert diff == f"{page}: line {i + 1}: committed {edited!r} / rendered {lines[i]!r}"
    page.write_text(text + " ")  # one trailing space: still a difference
    (diff,) = board_differences(board)
    assert "line" in diff and "<end of page>" not in diff


def test_a_run_missing_from_the_store_changes_the_page(board):
    res = sorted((board / "store").rglob("result.json"))[0]
    res.unlink()
    (res.parent / "config.json").unlink()
    (diff,) = board_differences(board)
    assert diff.startswith(f"{board / 'synth.md'}: line ")


def test_a_changed_result_changes_the_page(board):
    for res in (board / "store").rglob("result.json"):  # every fbank run's test metric + 1
        r = json.loads(res.read_text())
        if r["upstream"] == "fbank":
            r["metrics"]["test"][r["primary_metric"]] += 1.0
            res.write_text(json.dumps(r))
    (diff,) = board_differences(board)
    assert diff.startswith(f"{board / 'synth.md'}: line ")


def test_store_holds_only_results_and_configs(board):
    w = next((board / "store").rglob("result.json")).parent / "probe.pt"
    w.write_bytes(b"weights")
    assert board_differences(board) == [f"{w}: a board's store holds only result.json, config.json, summary.json, "
                                        "curves.png"]
    assert store_problems(board / "nowhere") == [f"{board / 'nowhere'}: no such folder"]
    (board / "empty").mkdir()
    assert store_problems(board / "empty") == [f"{board / 'empty'}: no result.json"]


def test_pages_missing_on_either_side_are_named(board):
    (board / "extra.md").write_text("# a page no store renders\n")
    (board / "REPORT.md").write_text("Generated at some time\n")  # never compared
    assert board_differences(board) == [f"{board / 'extra.md'}: committed but {board / 'store'} renders no such page"]
    (board / "extra.md").unlink()
    (board / "synth.md").unlink()
    assert board_differences(board) == [f"{board / 'synth.md'}: rendered from {board / 'store'} but not committed"]


def test_first_difference():
    assert first_difference("a\nb\n", "a\nb\n") == ""
    assert first_difference("a\nb", "a\nc") == "line 2: committed 'b' / rendered 'c'"
    assert first_difference("a", "a\nz") == "line 2: committed '<end of page>' / rendered 'z'"


def test_a_pretraining_board_needs_its_iterations_summaries_in_the_store(tmp_path):
    """The Pre-training diagnostics section is read from iter<k>/summary.json (and curves.png) in
    the run store: with them in the store the board re-renders exactly; without them the
    re-render loses the section, and the difference is named."""
    b = tmp_path / "board"
    store = b / "store"
    facts = {"family": "hubert", "layers": 5, "width": 128, "frame_rate_hz": 50.0, "params": 1000, "source": "x",
             "pretraining": {"corpus": "synth", "utterances": 10, "hours": 0.1, "updates": 12, "recipe": "micro",
                             "iteration": 1, "objective": "masked_prediction", "step": 12, "train_seconds": 6.0}}
    for up in ("fbank", "micro-it1"):
        for seed in (1, 2):
            write_run(store, "synth", "synth", up, "ks", 1e-3, seed, 50.0 + seed, 40.0 + seed, 5,
                      **({"upstream_facts": facts} if up == "micro-it1" else {}))
    it = store / "pretrain" / "micro" / "iter1"
    it.mkdir(parents=True)
    (it / "summary.json").write_text(json.dumps({
        "name": "micro-it1", "iteration": 1, "k": 12, "features": {"source": "mfcc"}, "finished_at": "2025-01-01",
        "label_quality": {"dev": {"pnmi": 0.25, "phone_purity": 0.5, "clusters_used": 12}},
        "train": {"steps": 12, "train_seconds": 6.0}, "masked_acc": {"dev": 0.2, "majority_label": 0.1}}))
    (it / "curves.png").write_bytes(b"png")
    build(store, b)
    page = (b / "synth.md").read_text()
    assert "### Pre-training diagnostics" in page and "| micro-it1 | MFCC | 12 | 0.250 |" in page
    assert board_differences(b) == []
    (it / "summary.json").unlink()
    (diff,) = board_differences(b)
    assert diff.startswith(f"{b / 'synth.md'}: line ")


def test_a_board_built_from_full_runs_rerenders_from_its_copied_store(tmp_path):
    """copy_store keeps what the board reads and drops the rest (weights, logs): the page built
    from the full run folders is exactly the one its store re-renders."""
    runs = tmp_path / "runs"
    for (up, task), by_lr in PRIMARY.items():
        for lr, seeds in by_lr.items():
            for seed, (dev, test) in enumerate(seeds, start=1):
                d = write_run(runs, "synth", "synth", up, task, lr, seed, dev, test, UPSTREAMS[up])
                (d / "probe.pt").write_bytes(b"weights")
                (d / "train.log").write_text("log\n")
    board = tmp_path / "board"
    build(runs, board)
    assert copy_store(runs, board / "store") == 32
    assert store_problems(board / "store") == [] and board_differences(board) == []
    with pytest.raises(HarnessError, match="exists already"):
        copy_store(runs, board / "store")
    with pytest.raises(HarnessError, match="no such run store"):
        copy_store(tmp_path / "nowhere", tmp_path / "s2")
