"""The flags a board row carries: seeds that learned nothing, emitted (near-)empty transcripts,
hit NaN, or were scored on substitute phones; the legend the pages print above them."""

from __future__ import annotations

from harness.board.markdown import fmt
from harness.board.select import NEAR_EMPTY

FLAG_LEGEND = ("⚠ flags on a row (k/n = seeds of the selected lr): *learned nothing*: its dev metric never beat "
               "the task's trivial answer; *near-empty output*: its test transcripts hold fewer than "
               f"{NEAR_EMPTY:.0%} of the reference tokens (it never left the CTC blank plateau; the ratio is "
               "shown); *NaN*: non-finite loss steps were skipped or a test metric is NaN; *substitute phones*: PR on a "
               "real corpus scored on espeak phones instead of SUPERB's lexicon. †: a stated departure from the "
               "reference recipe, given under the task table.")


def flags(r) -> str:
    """" ⚠ ..." for the seeds of a row that learned nothing, emitted (near-)empty output or hit NaN."""
    n = r["n_seeds"]
    out = []
    k = int(r.get("learned_nothing") or 0)
    if k:
        out.append(f"learned nothing ({k}/{n} seeds)")
    k = int(r.get("empty_output") or 0)
    if k:
        out.append(f"near-empty output ({k}/{n} seeds; output/reference tokens {fmt(r['output_ratio'])})")
    k = int(r.get("nan_runs") or 0)
    if k:
        out.append(f"NaN ({k}/{n} seeds)")
    k = int(r.get("substitute_phones") or 0)
    if k and r.get("corpus_kind") == "real":  # synth's reference phones are espeak's by construction
        out.append(f"substitute phones ({k}/{n} seeds: espeak, not SUPERB's lexicon; pass --lexicon FILE)")
    return "".join(f" ⚠ {x}" for x in out)
