"""LID (classification form): a frame-vote classifier over languages (see
heads.FrameVoteClassifier for why not a plain mean-pool); accuracy and macro accuracy.

The ML-SUPERB `[iso]`-token form of LID is a separate task (it needs the CTC head)."""

from __future__ import annotations

from harness.registry import register_task
from tasks.base import accuracy_metric, ClassificationTask, pools_by_subset_split, require, Splits
from tasks.heads import FrameVoteClassifier
from tasks.base_lr import superb_lr_grid
from tasks.metrics import accuracy, macro_accuracy, per_class_accuracy


@register_task("lid")
class LanguageIdentification(ClassificationTask):
    name = "lid"
    metrics = (accuracy_metric("acc"), accuracy_metric("macro_acc"))
    versions = {1: "unversioned runs", 2: "the definition when tasks began to declare versions (2026-12-07); version 1 runs were made by earlier code"}
    departures = (
        "no reference recipe: SUPERB has no language identification and ML-SUPERB's is the CTC [iso]-token form "
        "(task lid_ctc); the paper profile borrows ML-SUPERB's 10-minute optimiser, batch and update count and "
        "searches SUPERB's lr grid around its 1e-4",
    )
    profiles = {
        # quick: one lr for the demo budget (3e-3 was dev-best for three of the four demo upstreams)
        "quick": dict(steps=800, lrs=(3e-3,), batch_seconds=16.0, eval_every=200, head_dim=128),
        # no reference recipe (see departures): ML-SUPERB's Adam, weight decay, batch 8 x 4 and
        # 10-minute update count, with the SUPERB lr grid around its lr
        "paper": dict(steps=75_000, lrs=superb_lr_grid(1e-4), batch_seconds=8 * 12.0, max_batch_items=8, grad_accum=4,
                      eval_every=5000, head_dim=256, optimizer="adam", weight_decay=1e-6),
    }

    def label(self, utt):
        return utt.language

    def build_head(self, dim, frame_rate, info, cfg):
        super().build_head(dim, frame_rate, info, cfg)  # class index
        return FrameVoteClassifier(dim, cfg.head_dim, len(info["classes"]))

    def prepare(self, corpus):
        def pick(split):
            utts = [u for u in corpus.select(split=split, subset="speech") if u.language]
            return require(utts, self.name, corpus, f"{split} utterances with a language")

        splits = {s: pick(s) for s in ("train", "dev", "test")}
        langs = sorted({u.language for u in splits["train"]})
        if len(langs) < 2:
            from harness.errors import HarnessError

            raise HarnessError(f"corpus {corpus.name} has {len(langs)} language(s): LID needs at least 2")
        return Splits(**splits, info={"classes": langs}, pools=pools_by_subset_split(corpus, splits))

    def score(self, preds, refs, info, split):
        ids = list(refs)
        r, p = [refs[i] for i in ids], [preds[i] for i in ids]
        return {"acc": accuracy(r, p), "macro_acc": macro_accuracy(r, p)}

    def extra_results(self, preds, refs, info):
        ids = list(refs)
        return {"per_language_acc": per_class_accuracy([refs[i] for i in ids], [preds[i] for i in ids])}
