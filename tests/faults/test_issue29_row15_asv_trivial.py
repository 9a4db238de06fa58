"""Issue 29, row 15: ASV has a trivial answer, so a probe at chance is flagged.

The trivial answer is one embedding for every utterance: every trial gets the same score, so EER
is 50 % and normalised minDCF 1.0 (scored by the task's own scorer). A probe on a corpus whose
utterances are all one recording (nothing tells the speakers apart) stays at EER 50 on dev and is
marked "learned nothing" on its result and on the board (on f051749 ASV had no trivial answer:
never flagged).
"""

from __future__ import annotations

import shutil

from harness import leaderboard
from harness.data.corpus import load_manifest_dir
from harness.evaluate import evaluate
from harness.request import EvalRequest
from tasks.asv import SpeakerVerification
from tests.conftest import make_tone_corpus


def test_row15_the_trivial_answer_is_a_constant_score():
    task = SpeakerVerification()
    refs = {u: u[0] for u in ("a1", "a2", "b1", "b2", "c1")}
    trials = [(1, "a1", "a2"), (0, "a1", "b1"), (1, "b1", "b2"), (0, "b2", "c1"), (0, "a2", "c1")]
    what, preds = task.trivial_preds(refs, {})
    assert "constant" in what and set(preds) == set(refs)
    assert task.score(preds, refs, {"trials": {"dev": trials}}, "dev") == {"eer": 50.0, "mindcf": 1.0}


def _one_recording_corpus(root):
    """24 utterances of four speakers that are all a copy of one recording, with dev and test
    trial lists (every pair of the split's utterances, target when the speakers match)."""
    c = make_tone_corpus(root, n_per_class=30, classes=("aa",))
    files = sorted((c / "audio").glob("*.wav"))
    for f in files[1:]:
        shutil.copyfile(files[0], f)
    corp = load_manifest_dir(c)
    for split in ("dev", "test"):
        us = corp.select(split=split)
        lines = [f"{int(a.speaker == b.speaker)} {a.id} {b.id}\n" for i, a in enumerate(us) for b in us[i + 1:]]
        assert {ln[0] for ln in lines} == {"0", "1"}
        (c / f"trials_{split}.txt").write_text("".join(lines))
    return c


def test_row15_an_asv_probe_at_chance_is_marked(tmp_path):
    corpus = _one_recording_corpus(tmp_path / "one")
    r = evaluate(EvalRequest("fbank", "asv", str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-3],
                             overrides={"steps": 4, "eval_every": 2, "batch_seconds": 8.0}), log=lambda *_: None)[0]
    assert r["trivial_dev"] == 50.0
    assert r["extra"]["trivial_baseline"]["test"] == {"eer": 50.0, "mindcf": 1.0}
    assert [h["dev_eer"] for h in r["history"]] == [50.0, 50.0]  # identical embeddings: one score
    assert r["learned_nothing"] is True
    page = leaderboard.build(tmp_path / "runs", tmp_path / "boards", log=lambda *_: None)[0].read_text()
    row = next(ln for ln in page.splitlines() if ln.startswith("| fbank |") and "learned nothing" in ln)
    assert "⚠ learned nothing (1/1 seeds)" in row
