"""SID: speaker identification over the corpus's training speakers, random crops, accuracy."""

from __future__ import annotations

from harness.registry import register_task
from tasks.base import FEATURE_CACHE_CROPS, ClassificationTask, Splits, pools_by_subset_split, require
from tasks.base_lr import superb_lr_grid


@register_task("sid")
class SpeakerIdentification(ClassificationTask):
    name = "sid"
    versions = {1: "unversioned runs", 2: "the definition when tasks began to declare versions (2026-12-07); version 1 runs were made by earlier code"}
    baseline_cmvn = False  # mean-pool head: fbank/mfcc without CMVN, as SUPERB's FBANK row
    departures = (
        FEATURE_CACHE_CROPS,
    )
    reference_lr = 1e-4
    profiles = {
        # quick: one lr for the demo budget (3e-3 was dev-best for three of the four demo upstreams)
        "quick": dict(steps=400, lrs=(3e-3,), batch_seconds=32.0, eval_every=100, head_dim=256,
                      crop_seconds=3.0),
        # s3prl downstream/voxceleb1/config.yaml: Adam 1e-4, 8 utterances x accumulation 4, clip 1,
        # max_timestep 128000 samples (8 s crops), dev every 5000 of 200k updates, projector 256.
        # lrs: the maintainers' voxceleb1/sid.sh grid (s3prl issue 268: 1e-1 was HuBERT's best)
        "paper": dict(steps=200_000, lrs=superb_lr_grid(reference_lr, runfile=(1e-1, 1e-2, 1e-3, 1e-4)),
                      batch_seconds=8 * 8.0, max_batch_items=8, grad_accum=4,
                      grad_clip=1.0, eval_every=5000, head_dim=256, crop_seconds=8.0, optimizer="adam"),
    }

    def label(self, utt):
        return utt.speaker

    def prepare(self, corpus):
        train = require([u for u in corpus.select(split="train", subset="speech") if u.speaker],
                        self.name, corpus, "train utterances with speakers")
        speakers = sorted({u.speaker for u in train})
        known = set(speakers)

        def pick(split):
            utts = [u for u in corpus.select(split=split, subset="speech") if u.speaker in known]
            return require(utts, self.name, corpus, f"{split} utterances of training speakers")

        splits = {"train": train, "dev": pick("dev"), "test": pick("test")}
        return Splits(**splits, info={"classes": speakers}, pools=pools_by_subset_split(corpus, splits))
