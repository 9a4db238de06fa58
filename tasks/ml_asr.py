"""ML-SUPERB multilingual ASR: one probe over all languages (normal ones at the budget, few-shot
ones with 5 utterances), character CTC; CER macro-averaged over normal and few-shot languages.

Registered as `ml_asr_10min` and `ml_asr_1h`."""

from __future__ import annotations

from tasks.base import error_rate_metric
from tasks.base_mlsuperb import MLSuperbTask, register_mlsuperb


@register_mlsuperb("ml_asr")
class MultilingualASR(MLSuperbTask):
    primary_metric = "cer_normal"
    secondary_metric = "cer_fewshot"
    higher_is_better = False
    metrics = (error_rate_metric("cer_normal", 2), error_rate_metric("cer_fewshot", 2))
    versions = {1: "unversioned runs (some with the macro-averaged CER, before 3c700bb)", 2: "the definition when tasks began to declare versions (2026-12-07); version 1 runs were made by earlier code"}
    quick = dict(steps=300, lrs=(2e-3,), batch_seconds=32.0, max_batch_items=16, eval_every=100,
                 head_dim=96, head_layers=1, head="lite", dropout=0.1, optimizer="adam", weight_decay=1e-6)

    def score(self, preds, refs, info, split):
        return self.grouped_cer(preds, refs, info)
