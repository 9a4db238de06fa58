"""ML-SUPERB ASR+LID: targets `[lang] TRANSCRIPT` over all languages; the first language tag of
the greedy output is the LID decision, CER is scored on the transcript without tags.

Primary metric: cer_normal (ML-SUPERB reports LID accuracy and CER side by side); CER chooses the
dev checkpoint, as the transcript is most of the target.

Quick profile: the tag is one token of ~40 per target and must win over blank in the greedy
output, so LID lags the transcript by far. On synth small (12 languages, 10-minute budget,
fbank, lite head) no tag is decoded before ~400 updates and dev LID reaches 16% at 1000
updates, 32% at 1500 (lr 7e-4, batches of 32 s). 300 updates at 2e-3 gave 2% (below the majority
class, 24%); 600 updates of 64 s batches at 1e-3 gave 22%; higher lrs were worse.

Registered as `asr_lid_10min` and `asr_lid_1h`."""

from __future__ import annotations

from tasks.base import accuracy_metric, error_rate_metric
from tasks.base_mlsuperb import MLSuperbTask, register_mlsuperb


@register_mlsuperb("asr_lid")
class ASRWithLID(MLSuperbTask):
    primary_metric = "cer_normal"
    secondary_metric = "lid_acc"
    higher_is_better = False
    metrics = (error_rate_metric("cer_normal", 2), accuracy_metric("lid_acc"), error_rate_metric("cer_fewshot", 2))
    versions = {1: "unversioned runs (some with the macro-averaged CER, before 3c700bb)", 2: "the definition when tasks began to declare versions (2026-12-07); version 1 runs were made by earlier code"}
    with_tag = True
    quick = dict(steps=1500, lrs=(7e-4,), batch_seconds=32.0, max_batch_items=16, eval_every=250, grad_clip=5.0,
                 head_dim=96, head_layers=1, head="lite", dropout=0.0, optimizer="adam", weight_decay=1e-6)

    def score(self, preds, refs, info, split):
        cer = self.grouped_cer(preds, refs, info)
        return {"lid_acc": self.lid_scores(preds, refs, info)["acc"],
                "cer_normal": cer["cer_normal"], "cer_fewshot": cer["cer_fewshot"]}

    def extra_results(self, preds, refs, info):
        return {**super().extra_results(preds, refs, info),
                "per_language_lid_acc": self.lid_scores(preds, refs, info)["per_language"]}
