"""What a CTC task's transcript is made of (issue 36): the valid frames of each item only, and,
for an upstream coarser than the head's 50 Hz, every repeated frame of it."""

from __future__ import annotations

import torch

from harness.config import ProbeConfig
from harness.evaluate import build_task
from tasks.base import Batch

VOCAB = ["<blank>", "a", "b", "c"]


def _log_probs(frames):
    """(1, T, V) log-probabilities whose argmax is `frames` (vocabulary ids)."""
    return torch.log(torch.nn.functional.one_hot(torch.tensor(frames), len(VOCAB)).float() * 0.97 + 0.01)[None]


def test_pr_decodes_the_valid_frames_of_each_item_of_a_padded_batch():
    task = build_task("pr")
    info = {"vocab": VOCAB}
    task.build_head(8, 50.0, info, ProbeConfig(head_dim=16))
    # item 0: 5 valid frames "a a _ b _" then padding whose argmax is "c"; item 1: all 8 valid
    lp = torch.cat([_log_probs([1, 1, 0, 2, 0, 3, 3, 3]), _log_probs([3, 0, 3, 1, 1, 0, 2, 2])])
    lens = torch.tensor([5, 8])
    out = task.decode((lp, lens), Batch(["u0", "u1"], lens, ["a b", "c c a b"]))
    assert out == ["a b", "c c a b"]
    assert task.score(dict(zip(["u0", "u1"], out)), {"u0": "a b", "u1": "c c a b"}, info, "test")["per"] == 0.0


def test_a_coarse_upstream_repeats_its_frames_and_their_lengths_for_the_head():
    """At 25 Hz the PR head sees every frame twice (RepeatFrames): lengths double with them, so
    the decoder reads the whole item and no padding."""
    torch.manual_seed(0)
    task = build_task("pr")
    info = {"vocab": VOCAB}
    head = task.build_head(8, 25.0, info, ProbeConfig(head_dim=16)).eval()
    x = torch.randn(2, 6, 8)
    lens = torch.tensor([6, 3])
    lp, out_lens = head(x, lens)
    assert lp.shape[:2] == (2, 12) and out_lens.tolist() == [12, 6]
    # item 1 alone (no padding) gives the same transcript as in the batch
    alone = head(x[1:, :3], lens[1:])
    batch = Batch(["u0", "u1"], out_lens, ["", ""])
    assert task.decode((lp, out_lens), batch)[1] == task.decode(alone, Batch(["u1"], alone[1], [""]))[0]
    assert torch.allclose(lp[1, :6], alone[0][0], atol=1e-6)
