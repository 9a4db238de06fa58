"""ML-SUPERB ASR+LID: targets `[lang] TRANSCRIPT` over all languages; the first language tag of
the greedy output is the LID decision, CER is scored on the transcript without tags.

Primary metric: cer_normal (ML-SUPERB reports LID accuracy and CER side by side). CER chooses the
dev checkpoint because LID accuracy saturates early (100% on synth after a few hundred updates)
and a dev-best chosen by it would freeze the first checkpoint that reaches it, however poor its
transcripts.

Registered as `asr_lid_10min` and `asr_lid_1h`."""

from __future__ import annotations

from tasks.base import MLSuperbTask, register_mlsuperb


@register_mlsuperb("asr_lid")
class ASRWithLID(MLSuperbTask):
    primary_metric = "cer_normal"
    higher_is_better = False
    with_tag = True
    quick = dict(steps=300, lrs=(2e-3,), batch_seconds=32.0, max_batch_items=16, eval_every=100,
                 head_dim=96, head_layers=1, head="lite", dropout=0.1, optimizer="adam", weight_decay=1e-6)

    def score(self, preds, refs, info, split):
        cer = self.grouped_cer(preds, refs, info)
        return {"lid_acc": self.lid_scores(preds, refs, info)["acc"],
                "cer_normal": cer["cer_normal"], "cer_fewshot": cer["cer_fewshot"]}

    def extra_results(self, preds, refs, info):
        return {**super().extra_results(preds, refs, info),
                "per_language_lid_acc": self.lid_scores(preds, refs, info)["per_language"]}
