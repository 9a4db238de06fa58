"""ML-SUPERB LID: the CTC head learns one `[lang]` token per utterance; the decision is the first
language token of the greedy output, "[UNK]" when there is none (docs/protocol.md section 3, row lid).
All languages take part (normal ones at the budget, few-shot ones with 5 utterances).

Extras on test: per-language accuracy, and per-language "CER" = token error rate of the decoded
tag sequence against the single reference tag (a tag counts as one token; insertions count).

Registered as `lid_ctc_10min` and `lid_ctc_1h`. The classification form is the task `lid`."""

from __future__ import annotations

from tasks.base import accuracy_metric
from tasks.base_mlsuperb import MLSuperbTask, register_mlsuperb
from tasks.metrics import split_tokens, token_error_rate


@register_mlsuperb("lid_ctc")
class CTCLanguageID(MLSuperbTask):
    primary_metric = "acc"
    secondary_metric = "macro_acc"
    higher_is_better = True
    metrics = (accuracy_metric("acc"), accuracy_metric("macro_acc"))
    versions = {1: "unversioned runs", 2: "the definition when tasks began to declare versions (2026-12-07); version 1 runs were made by earlier code"}
    with_tag = True
    with_text = False
    # quick: a one-token CTC target sits on the all-blank plateau for hundreds of updates. A tag is
    # true of any stretch of its utterance, so training takes 1 s crops, 32 per batch, at lr 1e-3
    # with clip 5 (synth small, 500 updates, dev acc: fbank 42, mfcc 33, hubert_tiny-it1 32).
    # 2 s crops cost twice as much and did no better (44 / 24 / 24); 300 updates of whole
    # utterances at 2e-3 never emitted a tag (acc 0).
    quick = dict(steps=500, lrs=(1e-3,), batch_seconds=32.0, max_batch_items=32, eval_every=125, crop_seconds=1.0,
                 grad_clip=5.0, head_dim=96, head_layers=1, head="lite", dropout=0.1, optimizer="adam",
                 weight_decay=1e-6)

    def score(self, preds, refs, info, split):
        s = self.lid_scores(preds, refs, info)
        return {"acc": s["acc"], "macro_acc": s["macro_acc"]}

    def extra_results(self, preds, refs, info):
        per_cer = {lang: token_error_rate([split_tokens(refs[i]) for i in ids], [split_tokens(preds[i]) for i in ids])
                   for lang, ids in self.by_language(refs, info).items()}
        return {**super().extra_results(preds, refs, info),
                "per_language_acc": self.lid_scores(preds, refs, info)["per_language"], "per_language_cer": per_cer}
