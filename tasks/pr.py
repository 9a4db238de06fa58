"""PR: phoneme recognition, frame-wise linear head + CTC, scored by PER (PROTOCOL section 3).

On synth the targets are espeak's phonemes (English utterances); on LibriSpeech the phones the
corpus loader derived from the text."""

from __future__ import annotations

from harness.registry import register_task
from tasks.base import CTCTask, Splits, pools_by_subset_split, require
from tasks.heads import FrameCTCHead
from tasks.metrics import error_rate


@register_task("pr")
class PhonemeRecognition(CTCTask):
    name = "pr"
    primary_metric = "per"
    profiles = {
        # quick: one lr for the demo budget (1e-2 was dev-best for three of the four demo upstreams;
        # at 3e-3 fbank stays on the CTC blank plateau)
        "quick": dict(steps=500, lrs=(1e-2,), batch_seconds=24.0, eval_every=125, head_dim=256,
                      optimizer="adamw"),
        "paper": dict(steps=100_000, lrs=(1e-2,), batch_seconds=32 * 12.0, max_batch_items=32,
                      eval_every=1000, head_dim=256, optimizer="adamw"),
    }

    def tokens(self, utt):
        return (utt.custom.get("phones") or "").split()

    def prepare(self, corpus):
        def pick(split):
            utts = [u for u in corpus.select(split=split, subset="speech")
                    if (u.language or "en").startswith("en") and u.custom.get("phones")]
            return require(utts, self.name, corpus, f"English {split} utterances with phones")

        splits = {s: pick(s) for s in ("train", "dev", "test")}
        info = {"vocab": self.vocab_from(splits["train"])}
        return Splits(**splits, info=info, pools=pools_by_subset_split(corpus, splits))

    def make_head(self, dim, info, cfg):
        return FrameCTCHead(dim, cfg.head_dim, len(info["vocab"]))

    def score(self, preds, refs, info, split):
        ids = list(refs)
        return {"per": error_rate([refs[i] for i in ids], [preds[i] for i in ids])}
